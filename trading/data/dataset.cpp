#include "trading/data/dataset.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "kernels/error.h"

namespace attnlab::data {

std::vector<double> forward_return_targets(const std::vector<double>& log_ret, size_t horizon) {
  ATTNLAB_CHECK(horizon > 0, "forward_return_targets: horizon must be > 0");
  std::vector<double> y(log_ret.size(), std::numeric_limits<double>::quiet_NaN());
  for (size_t t = 0; t + horizon < log_ret.size(); ++t) {
    double s = 0;
    for (size_t k = 1; k <= horizon; ++k) s += log_ret[t + k];
    y[t] = s;
  }
  return y;
}

std::vector<int> direction_labels(const std::vector<double>& targets, double dead_zone) {
  std::vector<int> out(targets.size(), 0);
  for (size_t t = 0; t < targets.size(); ++t) out[t] = targets[t] > dead_zone ? 1 : targets[t] < -dead_zone ? -1 : 0;
  return out;
}

std::vector<size_t> sample_indices(size_t rows, size_t first_valid, size_t lookback, size_t horizon) {
  ATTNLAB_CHECK(lookback > 0, "sample_indices: lookback must be > 0");
  std::vector<size_t> out;
  for (size_t t = first_valid + lookback - 1; t + horizon < rows; ++t) out.push_back(t);
  return out;
}

std::pair<size_t, size_t> window_rows(const std::vector<size_t>& samples, size_t lookback) {
  ATTNLAB_CHECK(!samples.empty() && lookback > 0, "window_rows: need samples and lookback > 0");
  const auto [lo, hi] = std::minmax_element(samples.begin(), samples.end());
  ATTNLAB_CHECK(*lo + 1 >= lookback, "window_rows: sample ", *lo, " has no full window of ", lookback, " rows");
  return {*lo + 1 - lookback, *hi + 1};
}

namespace {

void check_ascending(const std::vector<size_t>& s, const char* who) {
  for (size_t i = 1; i < s.size(); ++i)
    ATTNLAB_CHECK(s[i] > s[i - 1], who, ": sample indices must be strictly ascending (position ", i, ")");
}

// Elements of v after `after + gap` (keeps s > after + gap).
std::vector<size_t> embargo(std::vector<size_t> v, size_t after, size_t gap) {
  v.erase(std::remove_if(v.begin(), v.end(), [&](size_t s) { return s <= after + gap; }), v.end());
  return v;
}

}  // namespace

Split chronological_split(const std::vector<size_t>& samples, size_t gap, double train_frac, double val_frac) {
  check_ascending(samples, "chronological_split");
  ATTNLAB_CHECK(train_frac > 0 && val_frac >= 0 && train_frac + val_frac <= 1.0, "chronological_split: fractions ",
                train_frac, " + ", val_frac, " must lie in (0, 1]");
  const size_t n = samples.size();
  const size_t n_train = static_cast<size_t>(std::floor(train_frac * static_cast<double>(n)));
  const size_t n_val = std::min(n - n_train, static_cast<size_t>(std::floor(val_frac * static_cast<double>(n))));
  Split s;
  s.train.assign(samples.begin(), samples.begin() + n_train);
  s.val.assign(samples.begin() + n_train, samples.begin() + n_train + n_val);
  s.test.assign(samples.begin() + n_train + n_val, samples.end());
  ATTNLAB_CHECK(!s.train.empty(), "chronological_split: no training samples (", n, " samples)");
  s.val = embargo(std::move(s.val), s.train.back(), gap);
  s.test = embargo(std::move(s.test), s.val.empty() ? s.train.back() : s.val.back(), gap);
  return s;
}

std::vector<Fold> walk_forward_splits(const std::vector<size_t>& samples, const WalkForwardConfig& cfg) {
  check_ascending(samples, "walk_forward_splits");
  ATTNLAB_CHECK(cfg.folds > 0, "walk_forward_splits: folds must be > 0");
  const size_t n = samples.size(), blocks = cfg.folds + 1, b = n / blocks;
  ATTNLAB_CHECK(b > 0, "walk_forward_splits: ", n, " samples cannot make ", blocks, " blocks");
  const size_t first = b + n % blocks;  // the first (training-only) block takes the remainder
  const size_t window = cfg.train_size ? cfg.train_size : first;
  std::vector<Fold> folds;
  for (size_t i = 0; i < cfg.folds; ++i) {
    const size_t test_begin = first + i * b;
    const size_t train_begin = cfg.expanding || test_begin < window ? 0 : test_begin - window;
    Fold f;
    f.test.assign(samples.begin() + test_begin, samples.begin() + test_begin + b);
    for (size_t p = train_begin; p < test_begin; ++p)
      if (samples[p] + cfg.gap < f.test.front()) f.train.push_back(samples[p]);
    ATTNLAB_CHECK(!f.train.empty(), "walk_forward_splits: fold ", i, " has no training samples left after a gap of ",
                  cfg.gap);
    folds.push_back(std::move(f));
  }
  return folds;
}

void ZScoreNormalizer::fit(const FeatureSet& fs, size_t row_begin, size_t row_end) {
  ATTNLAB_CHECK(row_begin < row_end && row_end <= fs.rows(), "ZScoreNormalizer::fit: bad row range [", row_begin,
                ", ", row_end, ") for ", fs.rows(), " rows");
  const size_t F = fs.cols();
  const double n = static_cast<double>(row_end - row_begin);
  names = fs.names;
  mean.assign(F, 0.0);
  stddev.assign(F, 0.0);
  for (size_t t = row_begin; t < row_end; ++t)
    for (size_t f = 0; f < F; ++f) {
      ATTNLAB_CHECK(std::isfinite(fs.at(t, f)), "ZScoreNormalizer::fit: non-finite value in column '", fs.names[f],
                    "' at row ", t, " (fit after the warm-up rows)");
      mean[f] += fs.at(t, f);
    }
  for (double& m : mean) m /= n;
  for (size_t t = row_begin; t < row_end; ++t)
    for (size_t f = 0; f < F; ++f) stddev[f] += (fs.at(t, f) - mean[f]) * (fs.at(t, f) - mean[f]);
  for (double& s : stddev) {
    s = std::sqrt(s / n);
    if (s == 0) s = 1.0;
  }
}

void ZScoreNormalizer::transform(FeatureSet& fs) const {
  ATTNLAB_CHECK(fitted(), "ZScoreNormalizer::transform: not fitted");
  ATTNLAB_CHECK(fs.names == names, "ZScoreNormalizer::transform: feature names differ from the ones fitted on");
  const size_t F = fs.cols();
  for (size_t t = 0; t < fs.rows(); ++t)
    for (size_t f = 0; f < F; ++f) fs.values[t * F + f] = transform_value(f, fs.values[t * F + f]);
}

nlohmann::json ZScoreNormalizer::to_json() const {
  return {{"format", "attnlab.zscore"}, {"version", 1}, {"names", names}, {"mean", mean}, {"std", stddev}};
}

ZScoreNormalizer ZScoreNormalizer::from_json(const nlohmann::json& j) {
  ATTNLAB_CHECK(j.is_object() && j.value("format", std::string()) == "attnlab.zscore",
                "ZScoreNormalizer::from_json: not an attnlab.zscore document");
  ATTNLAB_CHECK(j.value("version", 0) == 1, "ZScoreNormalizer::from_json: version ", j.value("version", 0),
                " is not supported (expected 1)");
  ZScoreNormalizer z;
  try {
    z.names = j.at("names").get<std::vector<std::string>>();
    z.mean = j.at("mean").get<std::vector<double>>();
    z.stddev = j.at("std").get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("ZScoreNormalizer::from_json: ", e.what()));
  }
  ATTNLAB_CHECK(z.mean.size() == z.names.size() && z.stddev.size() == z.names.size(), "ZScoreNormalizer::from_json: ",
                z.names.size(), " names, ", z.mean.size(), " means, ", z.stddev.size(), " stds");
  for (double s : z.stddev)
    ATTNLAB_CHECK(std::isfinite(s) && s > 0, "ZScoreNormalizer::from_json: std ", s, " is not positive");
  return z;
}

std::span<const double> window_view(const FeatureSet& fs, size_t t, size_t lookback) {
  ATTNLAB_CHECK(lookback > 0, "window_view: lookback must be > 0");
  ATTNLAB_CHECK(t < fs.rows() && t + 1 >= lookback, "window_view: sample ", t, " has no window of ", lookback,
                " rows in ", fs.rows(), " rows");
  return {fs.row(t + 1 - lookback), lookback * fs.cols()};
}

std::vector<double> gather_windows(const FeatureSet& fs, const std::vector<size_t>& samples, size_t lookback) {
  ATTNLAB_CHECK(lookback > 0, "gather_windows: lookback must be > 0");
  std::vector<double> out;
  out.reserve(samples.size() * lookback * fs.cols());
  for (size_t t : samples) {
    const std::span<const double> w = window_view(fs, t, lookback);
    out.insert(out.end(), w.begin(), w.end());
  }
  return out;
}

std::vector<size_t> shuffled(std::vector<size_t> idx, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = idx.size(); i > 1; --i) {
    // Unbiased draw in [0, i): reject the top sliver of the 64-bit range that would favour small values.
    const uint64_t n = i, limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = rng(); while (r >= limit);
    std::swap(idx[i - 1], idx[r % n]);
  }
  return idx;
}

std::vector<std::vector<size_t>> make_batches(const std::vector<size_t>& idx, size_t batch_size, bool drop_last) {
  ATTNLAB_CHECK(batch_size > 0, "make_batches: batch_size must be > 0");
  std::vector<std::vector<size_t>> out;
  for (size_t i = 0; i < idx.size(); i += batch_size) {
    const size_t end = std::min(idx.size(), i + batch_size);
    if (drop_last && end - i < batch_size) break;
    out.emplace_back(idx.begin() + i, idx.begin() + end);
  }
  return out;
}

}  // namespace attnlab::data
