// The trader dataset: one OHLCV series' features turned into model samples (the seed's train_model data
// handling, made leakage-free), and what a checkpoint records about it.
//
// Sample t = the decision at bar t's close; input = feature rows [t - lookback + 1, t] z-scored with
// statistics fitted on the training windows' rows only; target = log_ret[t+1] + ... + log_ret[t+horizon].
// Samples are split chronologically (70/15/15 by default) with gap = horizon, so no training target
// overlaps a validation target (the index-level rules are in trading/data/dataset.h). Targets are scaled
// by 1 / target_std (std of the training targets): daily log returns are ~1e-2, and a freshly initialised
// head outputs O(1), so unscaled MSE training spends most of its steps shrinking the output. The model
// therefore predicts returns in units of target_std; predict_samples() and evaluate()
// (trading/train/evaluate.h) convert back to log returns, and checkpoints store target_std.
//
// Windows are views: the normalized matrix is held once as a Tensor inputs [rows, F] and sample t's
// window is narrow(inputs, 0, t - lookback + 1, lookback), sharing its storage. A batch copies its B
// windows once into a contiguous [B, lookback, F] block (see TraderDataset::windows).
//
// Library: this file sits beside dataset.h because it is the same subject, but it holds Tensors, so it
// builds into attnlab_trading (trading/CMakeLists.txt), not into the Tensor-free attnlab_market.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensor/tensor.h"
#include "trading/data/dataset.h"
#include "trading/data/features.h"

namespace attnlab::trading {

struct TraderDataset {
  data::FeatureSet features;      // normalized in place, f64 (rows before first_valid stay NaN)
  Tensor inputs;                  // [rows, F] f32: the same normalized matrix, converted once; every
                                  // window is a view of it
  std::vector<double> log_ret;    // [rows] raw log returns of close (NaN at 0)
  std::vector<double> targets;    // [rows] forward horizon return (NaN where unknown)
  std::vector<size_t> samples;    // every usable sample
  data::Split split;
  data::ZScoreNormalizer normalizer;
  size_t lookback = 0, horizon = 0;
  double target_std = 1.0;        // population std of the training targets (1 when not scaled)

  // Sample t's input [lookback, F]: narrow(inputs, 0, t - lookback + 1, lookback), a view that shares
  // inputs' storage (no copy). attnlab::Error when t has no full window.
  Tensor window(size_t t) const;
  // Inputs [B, lookback, F] f32 for the given samples: the window() views stacked. This is the one
  // copy per batch, and a necessary one: the samples of a shuffled batch are not one strided view of
  // inputs, and the model's matmuls (BLAS) and attention kernels take a contiguous [B, T, F] block.
  Tensor windows(const std::vector<size_t>& idx) const;
  // Scaled targets y / target_std, [B, 1] f32.
  Tensor target_tensor(const std::vector<size_t>& idx) const;
  size_t n_features() const { return features.cols(); }
};

// Builds the dataset from a FeatureSet and the close prices of the same rows. Throws attnlab::Error when
// the lengths differ or a split comes out empty.
TraderDataset make_dataset(data::FeatureSet fs, const std::vector<double>& close, size_t lookback, size_t horizon,
                           double train_frac = 0.70, double val_frac = 0.15, bool scale_targets = true);

// The same with a given normalizer and target scale instead of fitting them (a model trained before,
// e.g. fine-tuned on new data, must see inputs scaled as in its own training). The normalizer's
// feature names must equal fs.names.
TraderDataset make_dataset_fixed(data::FeatureSet fs, const std::vector<double>& close, size_t lookback,
                                 size_t horizon, const data::ZScoreNormalizer& normalizer, double target_std,
                                 double train_frac = 0.70, double val_frac = 0.15);

// What a checkpoint and a training state record about the data a run used: rows, features, first/last
// time, split sizes, "periods" (per split: first and last decision time and the time of the last target
// row, Unix ms) and "fingerprint" (data_fingerprint). `attnlab backtest` compares them with its own data
// to say which bars the model was trained on.
nlohmann::json data_info(const TraderDataset& ds);
// FNV-1a hash (16 hex digits) of what training reads: the normalized matrix, targets, split, target scale.
// Equal for the training data rebuilt with checkpoint_dataset.
std::string data_fingerprint(const TraderDataset& ds);
nlohmann::json split_periods(const TraderDataset& ds);

}  // namespace attnlab::trading
