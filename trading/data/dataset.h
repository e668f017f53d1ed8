// Dataset logic at the index level (no tensors): targets, sample indices, leakage-free splits,
// a train-only z-score normalizer, window views and gathering, seeded shuffling and batching.
//
// Vocabulary. Rows t = 0..T-1 are bars (of a FeatureSet). Sample t is the decision made at the close
// of bar t: its input window is rows [t - lookback + 1, t] and its target is what happens over the
// next `horizon` bars, rows t+1..t+horizon. Samples are identified by t.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "trading/data/features.h"

namespace attnlab::data {

// ---- targets ----------------------------------------------------------------------------------------
// y[t] = log_ret[t+1] + ... + log_ret[t+horizon] (= ln(close[t+h] / close[t])); NaN where t+horizon >= T.
std::vector<double> forward_return_targets(const std::vector<double>& log_ret, size_t horizon);

// +1 where y > dead_zone, -1 where y < -dead_zone, else 0 (NaN -> 0).
std::vector<int> direction_labels(const std::vector<double>& targets, double dead_zone = 0.0);

// Samples t whose window lies in the valid rows and whose target exists:
// first_valid + lookback - 1 <= t <= rows - 1 - horizon. Ascending; empty if none.
std::vector<size_t> sample_indices(size_t rows, size_t first_valid, size_t lookback, size_t horizon);

// Rows touched by the windows of `samples`: [min t - lookback + 1, max t + 1). Fit normalizers here.
std::pair<size_t, size_t> window_rows(const std::vector<size_t>& samples, size_t lookback);

// ---- splits -----------------------------------------------------------------------------------------
struct Split {
  std::vector<size_t> train, val, test;
};

// Chronological split of ascending samples: the first train_frac go to train, the next val_frac to
// val, the rest to test; then each later split drops its samples s with s <= last sample of the
// previous split + gap. With gap = horizon every train target (rows <= t + horizon) is in the past at
// the first val decision, and no train target overlaps a val target (same for val/test). With
// gap = horizon + lookback - 1 val windows do not even contain rows that were train targets.
Split chronological_split(const std::vector<size_t>& samples, size_t gap, double train_frac = 0.70,
                          double val_frac = 0.15);

struct WalkForwardConfig {
  size_t folds = 5;
  bool expanding = true;  // true: train on everything before the test block; false: a rolling window
  size_t train_size = 0;  // rolling window length in samples; 0 -> the size of the first block
  size_t gap = 0;         // train keeps t with t + gap < first test sample (use horizon)
};

struct Fold {
  std::vector<size_t> train, test;
};

// Cuts the ascending samples into folds + 1 consecutive blocks (the first gets the remainder); fold i
// tests on block i+1 and trains on what precedes it (all of it, or the last train_size samples).
// Throws attnlab::Error if a block or a training set would be empty.
std::vector<Fold> walk_forward_splits(const std::vector<size_t>& samples, const WalkForwardConfig& cfg);

// ---- normalization ----------------------------------------------------------------------------------
// Per-feature z-score: z = (x - mean) / std, with mean and population std (ddof = 0) fitted on
// training rows only, so validation and test statistics never leak into the inputs. std = 0 (a
// constant column) is stored as 1, leaving that column centred rather than dividing by zero.
class ZScoreNormalizer {
 public:
  std::vector<std::string> names;  // feature names, checked on transform and load
  std::vector<double> mean, stddev;

  // Fits on rows [row_begin, row_end) of fs. Throws attnlab::Error on an empty range or a non-finite
  // value inside it (fit after the warm-up rows).
  void fit(const FeatureSet& fs, size_t row_begin, size_t row_end);
  // Normalizes every row of fs in place (NaN stays NaN). Throws if the names differ from fit's.
  void transform(FeatureSet& fs) const;
  double transform_value(size_t f, double x) const { return (x - mean[f]) / stddev[f]; }
  double inverse_value(size_t f, double z) const { return z * stddev[f] + mean[f]; }
  bool fitted() const { return !mean.empty(); }

  nlohmann::json to_json() const;  // {"format":"attnlab.zscore","version":1,"names":..,"mean":..,"std":..}
  static ZScoreNormalizer from_json(const nlohmann::json& j);  // throws attnlab::Error on a bad document
};

// ---- windows and batches ----------------------------------------------------------------------------
// Sample t's window, rows [t - lookback + 1, t] of fs: a view of lookback * F contiguous row-major values
// inside fs.values (no copy; valid while fs is alive and unresized). Throws attnlab::Error when t has
// no full window (t + 1 < lookback or t >= rows). The tensor form of the same view is
// TraderDataset::window (trading/data/trader_dataset.h).
std::span<const double> window_view(const FeatureSet& fs, size_t t, size_t lookback);

// Inputs of the given samples, [B, lookback, F] row-major (B = samples.size()): the window_views copied
// one after the other (the one copy a batch needs, since the model's matmuls want a contiguous block).
std::vector<double> gather_windows(const FeatureSet& fs, const std::vector<size_t>& samples, size_t lookback);

// A permutation of idx, reproducible from the seed on every platform (Fisher-Yates on std::mt19937_64
// with our own unbiased bounded draw; std::uniform_int_distribution differs between standard libraries).
std::vector<size_t> shuffled(std::vector<size_t> idx, uint64_t seed);

// Consecutive batches of batch_size; the last is shorter unless drop_last drops it.
std::vector<std::vector<size_t>> make_batches(const std::vector<size_t>& idx, size_t batch_size, bool drop_last = false);

}  // namespace attnlab::data
