// Training and evaluation of a GQATrader on one OHLCV series' features (the seed's train_model,
// with the data handling made leakage-free).
//
// Data (TraderDataset): sample t = the decision at bar t's close; input = feature rows
// [t - lookback + 1, t] z-scored with statistics fitted on the training windows' rows only; target =
// log_ret[t+1] + ... + log_ret[t+horizon]. Samples are split chronologically (70/15/15 by default) with
// gap = horizon, so no training target overlaps a validation target. Targets are scaled by
// 1 / target_std (std of the training targets): daily log returns are ~1e-2, and a freshly initialised
// head outputs O(1), so unscaled MSE training spends most of its steps shrinking the output. The model
// therefore predicts returns in units of target_std; predict_samples() and evaluate() convert back to
// log returns (regression), and checkpoints store target_std. The reported losses are in scaled units
// (a regression val loss of 1.0 is about the zero forecast's).
//
// Windows are views: the normalized matrix is held once as a Tensor inputs [rows, F] and sample t's
// window is narrow(inputs, 0, t - lookback + 1, lookback), sharing its storage. A batch copies its B
// windows once into a contiguous [B, lookback, F] block (see TraderDataset::windows).
//
// Devices and precision: the model is moved to TrainConfig::device before the optimizer is built; each
// batch is copied there. precision bf16/f16 runs the training forward and loss under an AutocastGuard
// (matmuls and attention in low precision, f32 master weights and gradients); f16 adds an
// optim::GradScaler (its scale is part of the training state). Validation and evaluation run in f32.
//
// Loop (train_trader): AdamW(lr, weight_decay), cosine annealing over the total number of steps,
// clip_grad_norm_(1.0), shuffled batches per epoch (seeded by seed and epoch), validation loss after
// each epoch, best weights kept (and saved with save_module when out_dir is set), early stopping after
// `patience` epochs without improvement. At the end the model holds the best weights.
//
// Resume. With out_dir set, every finished epoch also writes train_state.safetensors
// (optim::save_training_state: temp file + rename) holding the current weights, the AdamW moments,
// the schedule's step, the generators (default + every dropout generator) and, as json, the epoch,
// step, best val loss and epoch, the patience counter, the history, both configs and a fingerprint of
// the data. TrainConfig::resume_from continues such a run: the result (weights, history, best epoch)
// is bit-identical to the run that was never interrupted (tested), because every per-epoch input is a
// pure function of (seed, epoch) or of the restored state. The best weights come back from the
// model.safetensors beside the state file. Only whole epochs are resumed.
//
// Files written into out_dir (when set): model.safetensors (config json in the metadata: "model",
// "train", "normalizer", "features", "data", "metrics"), train_state.safetensors, history.csv
// (epoch,train_loss,val_loss,lr,seconds; rewritten each epoch), loss_curve.png (+ .dat, .gp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "trading/data/trader_dataset.h"
#include "trading/models/gqa_trader.h"

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
  bool causal = false;      // causal attention mask (the seed uses none)
  int64_t max_steps = 0;    // stop after this many optimizer steps in total; 0 = no limit
  // "f32", "bf16" (autocast, f32 master weights) or "f16" (autocast + dynamic loss scaling); see
  // autograd/autocast.h. In to_json only when not "f32", so f32 runs' files are unchanged.
  std::string precision = "f32";
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

inline constexpr const char* kModelFile = "model.safetensors";
inline constexpr const char* kTrainStateFile = "train_state.safetensors";

struct EpochRecord {
  int epoch = 0;  // 1-based
  double train_loss = 0, val_loss = 0, lr = 0, seconds = 0;
};

struct TrainResult {
  std::vector<EpochRecord> history;  // every epoch of the run, the resumed ones included
  double best_val_loss = 0;
  int best_epoch = 0;                // 0: the starting weights (start_as_best) stayed the best
  int64_t steps = 0;
  bool early_stopped = false;
  bool interrupted = false;          // stopped by stop_after_epoch; resume to continue
  int start_epoch = 1;               // first epoch this call ran (> 1 after a resume)
  double initial_val_loss = 0;       // val loss of the starting weights (start_as_best only, else NaN)
  double seconds = 0;
  std::string checkpoint;  // path of the best checkpoint, empty without out_dir
  std::string state;       // path of train_state.safetensors, empty without out_dir
};

// Mean loss (model.compute_loss) over samples in eval mode, no grad.
double evaluate_loss(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx,
                     size_t batch_size = 256, bool causal = false);

// Predictions pred[:, 0] for the samples, eval mode, no grad; regression outputs are multiplied by
// ds.target_std (log-return units), other output types are returned as the model gives them.
std::vector<double> predict_samples(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx,
                                    size_t batch_size = 256, bool causal = false);

// Trains (or, with cfg.resume_from, continues) a run. With resume_from the model must be built with
// the saved config (read it with read_train_state_info) and cfg must equal the saved "train" config;
// the data must be the same (fingerprint checked). attnlab::Error names what differs.
TrainResult train_trader(GQATrader& model, const TraderDataset& ds, const TrainConfig& cfg);

// The train_state.safetensors inside `path_or_dir` when it is a directory, else path_or_dir.
std::string train_state_path(const std::string& path_or_dir);
// The json a train_state file carries: {"format", "version", "epoch", "finished", "model", "train",
// "run_info", "history", ...}. attnlab::Error when the file is missing or not a trader training state.
nlohmann::json read_train_state_info(const std::string& path_or_dir);

// Forecast quality on a split against naive baselines. Direction: a prediction is right when
// (pred > 0) == (target > 0).
struct EvalResult {
  size_t n = 0;
  double mse = 0, direction_accuracy = 0;
  double zero_mse = 0;                 // always forecast 0
  double persistence_mse = 0;          // forecast = the previous horizon's return ln(close[t]/close[t-h])
  double persistence_direction_accuracy = 0;
  double always_up_accuracy = 0;       // fraction of targets > 0
  std::vector<double> predictions;     // [n]
  nlohmann::json to_json() const;
  std::string table() const;           // a printable comparison table
};

EvalResult evaluate(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx,
                    size_t batch_size = 256, bool causal = false);

// The metadata save_module stores with a trained model (with "data": data_info(ds)).
nlohmann::json checkpoint_config(const GQATrader& model, const TraderDataset& ds, const TrainConfig& cfg,
                                 const nlohmann::json& metrics);

}  // namespace attnlab::trading
