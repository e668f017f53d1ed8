// What a train_trader run keeps on disk so that it can be continued: the training state, the best
// checkpoint's metadata, and the history files.
//
// train_state.safetensors (written after every finished epoch through optim::save_training_state: temp
// file + rename) holds the current weights, the AdamW moments, the schedule's step, the optimizer step
// count, the default generator and, as json ("extra"): the format and version, the TrainProgress below,
// every dropout generator's state, the grad scaler (f16), both configs, data_info(ds) (with the data's
// fingerprint) and the caller's run_info. load_train_state restores all of it after checking that the
// model config, the training config and the data fingerprint equal the saved run's, so the continued
// run is bit-identical to one never interrupted: every per-epoch input is a pure function of
// (seed, epoch) or of the restored state. Only whole epochs are resumed.
//
// model.safetensors (nn::save_module) carries checkpoint_config() as its metadata: "model", "train",
// "normalizer", "target_std", "features", "data", "metrics" (best_epoch, val/train loss, steps). A resumed
// run takes its best weights from the model.safetensors beside its state (load_best_weights).
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/module.h"
#include "nn/optim/adamw.h"
#include "nn/optim/grad_scaler.h"
#include "nn/optim/schedule.h"
#include "trading/data/trader_dataset.h"
#include "trading/models/gqa_trader.h"
#include "trading/train/train_config.h"

namespace attnlab::trading {

inline constexpr const char* kModelFile = "model.safetensors";
inline constexpr const char* kTrainStateFile = "train_state.safetensors";

struct EpochRecord {
  int epoch = 0;  // 1-based
  double train_loss = 0, val_loss = 0, lr = 0, seconds = 0;
};

// What the loop carries from one epoch to the next besides the weights, optimizer and schedule.
struct TrainProgress {
  int epoch = 0;                     // epochs finished
  int64_t steps = 0;                 // optimizer steps taken
  bool finished = false;             // the last epoch ran, early stopping fired or max_steps was reached
  bool early_stopped = false;
  int best_epoch = 0;                // 0: the starting weights (start_as_best) are the best
  double best_val_loss = std::numeric_limits<double>::infinity();
  double initial_val_loss = std::numeric_limits<double>::quiet_NaN();  // start_as_best only
  int since_best = 0;                // epochs without improvement (patience)
  double seconds = 0;                // training time of the epochs so far, across resumes
  std::vector<EpochRecord> history;  // every finished epoch
};

// The objects of a run whose state travels with its weights.
struct TrainingObjects {
  GQATrader& model;
  optim::AdamW& opt;
  optim::CosineAnnealingLR& sched;
  optim::GradScaler& scaler;
};

// Writes `path` (see the top of this file). Call between steps.
void save_train_state(const std::string& path, const TrainingObjects& run, const TrainProgress& progress,
                      const TraderDataset& ds, const TrainConfig& cfg);

// Restores the run saved in `path` into `run` (built as that run built its objects: model from the saved
// config, optimizer and schedule from cfg) and returns its progress. attnlab::Error when the model
// config, the training config or the data differ from the saved run's (naming what differs), or the
// metadata is corrupt.
TrainProgress load_train_state(const std::string& path, const TrainingObjects& run, const TraderDataset& ds,
                               const TrainConfig& cfg);

// The train_state.safetensors inside `path_or_dir` when it is a directory, else path_or_dir.
std::string train_state_path(const std::string& path_or_dir);
// The json a train_state file carries: {"format", "version", "epoch", "finished", "model", "train",
// "run_info", "history", ...}. attnlab::Error when the file is missing or not a trader training state.
nlohmann::json read_train_state_info(const std::string& path_or_dir);

struct BestWeights {
  nn::NamedTensorList weights;
  std::string checkpoint;  // the copy in out_dir; empty without out_dir
};
// The best weights of a resumed run: the model.safetensors beside `state_path`, which must hold
// best_epoch. With out_dir set, the file is also copied there (temp file + rename) unless it is already
// that file, so a run resumed into another directory starts with the same best checkpoint.
BestWeights load_best_weights(const std::string& state_path, int best_epoch, const std::string& out_dir);

// The metadata save_module stores with a trained model (with "data": data_info(ds)).
nlohmann::json checkpoint_config(const GQATrader& model, const TraderDataset& ds, const TrainConfig& cfg,
                                 const nlohmann::json& metrics);

// history.csv (epoch,train_loss,val_loss,lr,seconds; rewritten each epoch) and loss_curve.png (+ .dat,
// .gp) in dir.
void write_history_csv(const std::string& dir, const std::vector<EpochRecord>& history);
void plot_history(const std::string& dir, const std::vector<EpochRecord>& history);

}  // namespace attnlab::trading
