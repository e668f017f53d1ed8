// TrainConfig: the settings of one train_trader run (trading/train/trainer.h). Everything but the run
// control fields goes into the run's json ("train" in checkpoints and training states), and a resumed run
// must carry the same.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "tensor/dtype.h"  // Device

namespace attnlab::trading {

struct TrainConfig {
  size_t lookback = 64;
  size_t horizon = 1;
  int epochs = 5;
  size_t batch_size = 32;
  double lr = 1e-4;
  double weight_decay = 0.01;
  double clip_norm = 1.0;
  int patience = 5;         // epochs without val improvement before stopping; 0 = never stop early
  uint64_t seed = 0;        // model init (call manual_seed before building the model) and shuffling
  double train_frac = 0.70;
  double val_frac = 0.15;
  int64_t max_steps = 0;    // stop after this many optimizer steps in total; 0 = no limit
  // "f32", "bf16" (autocast, f32 master weights) or "f16" (autocast + dynamic loss scaling); see
  // autograd/autocast.h. In to_json only when not "f32", so f32 runs' files are unchanged.
  std::string precision = "f32";
  // "window" (the seed's: one target per lookback-row window) or "stream" (trading/train/stream_objective.h:
  // a sliding-window model trained on segments with a loss at every position past a warm-up). In to_json
  // only when "stream", with stream_targets (targets per training segment; batch_size still counts
  // targets per step, in whole segments).
  std::string objective = "window";
  size_t stream_targets = 64;
  // Run control (not part of to_json: they do not change what a run computes).
  bool progress = true;     // progress bar on stderr
  Device device = kCPU;     // where the model trains: train_trader moves it there (and leaves it there),
                            // builds the optimizer there and moves each batch there
  std::string out_dir;      // empty: write nothing
  std::string resume_from;  // a train_state.safetensors, or the directory holding one: continue that run
  int stop_after_epoch = 0; // return after this epoch (1-based) as if interrupted; 0 = run to the end
  bool start_as_best = false;  // fine-tuning: the starting weights are "epoch 0" (val loss measured
                               // first) and stay the best unless an epoch beats them
  nlohmann::json run_info;  // stored verbatim in train_state (the CLI keeps the data path there)

  void validate() const;
  nlohmann::json to_json() const;
  // Missing keys keep the defaults; an unknown key or a wrong type is an attnlab::Error naming it.
  static TrainConfig from_json(const nlohmann::json& j);
};

// Checkpoints, training states and config files written before the causal mask became a model property
// (TraderConfig::causal) carry "causal" in their "train" section: moves it into `model`. attnlab::Error
// when both sections give it with different values.
void move_legacy_causal(nlohmann::json& model, nlohmann::json& train);

}  // namespace attnlab::trading
