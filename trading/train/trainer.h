// Training a GQATrader on one OHLCV series' features (the seed's train_model, with the data handling
// made leakage-free). The pieces live beside this file:
//   trading/data/trader_dataset.h  the samples (z-scored windows, scaled targets, chronological split)
//   trading/train/train_config.h   TrainConfig
//   trading/train/evaluate.h       validation loss, predictions, forecast quality vs baselines
//   trading/train/train_state.h    the resumable state, the best checkpoint's metadata, history files
//
// Objectives (TrainConfig::objective). "window" (the seed's): each sample's lookback-row window is one
// forward and one target. "stream" (trading/train/stream_objective.h): a sliding-window model
// (TraderConfig::window > 0, RoPE, causal, lookback >= its receptive field) trained on segments of
// consecutive rows with a loss at every position past a warm-up of lookback - 1 rows, so that its cached
// stream (a ring of W keys per layer) computes exactly the trained function. Validation and predictions of
// such a model run one forward_sequence per run of samples (evaluate.h; the same numbers as one window per
// sample, to float rounding).
//
// Loop (train_trader): AdamW(lr, weight_decay), cosine annealing over the total number of steps,
// clip_grad_norm_(clip_norm), shuffled batches per epoch (seeded by seed and epoch), validation loss
// after each epoch, best weights kept (and saved with save_module when out_dir is set), early stopping
// after `patience` epochs without improvement. At the end the model holds the best weights. The reported
// losses are in the dataset's scaled units (a regression val loss of 1.0 is about the zero forecast's).
//
// Devices and precision: the model is moved to TrainConfig::device before the optimizer is built; each
// batch is copied there. precision bf16/f16 runs the training forward and loss under an AutocastGuard
// (matmuls and attention in low precision, f32 master weights and gradients); f16 adds an
// optim::GradScaler (its scale is part of the training state). Validation and evaluation run in f32.
//
// Resume: with out_dir set every finished epoch writes train_state.safetensors; TrainConfig::resume_from
// continues such a run, bit-identical to the run that was never interrupted (train_state.h, tested).
//
// Files written into out_dir (when set): model.safetensors (checkpoint_config() in the metadata),
// train_state.safetensors, history.csv (rewritten each epoch), loss_curve.png (+ .dat, .gp).
#pragma once
#include <string>

#include "trading/data/trader_dataset.h"
#include "trading/models/gqa_trader.h"
#include "trading/train/train_config.h"
#include "trading/train/train_state.h"

namespace attnlab::trading {

// A run's progress (TrainProgress: history, best epoch and val loss, steps, ...) and what this call did.
struct TrainResult : TrainProgress {
  bool interrupted = false;  // stopped by stop_after_epoch; resume to continue
  int start_epoch = 1;       // first epoch this call ran (> 1 after a resume)
  std::string checkpoint;    // path of the best checkpoint, empty without out_dir
  std::string state;         // path of train_state.safetensors, empty without out_dir
};

// Trains (or, with cfg.resume_from, continues) a run. With resume_from the model must be built with
// the saved config (read it with read_train_state_info) and cfg must equal the saved "train" config;
// the data must be the same (fingerprint checked). attnlab::Error names what differs.
TrainResult train_trader(GQATrader& model, const TraderDataset& ds, const TrainConfig& cfg);

}  // namespace attnlab::trading
