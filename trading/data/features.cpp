#include "trading/data/features.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/error.h"

namespace attnlab::data {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

std::vector<double> log_returns(const std::vector<double>& close, size_t from) {
  std::vector<double> out(close.size(), kNaN);
  for (size_t t = std::max<size_t>(from, 1); t < close.size(); ++t) out[t] = std::log(close[t] / close[t - 1]);
  return out;
}

// Windows are summed afresh at every t (O(T * w)): w is small, and a running sum would let rounding
// from early rows leak into late ones, so a value would depend on where the series starts.
std::vector<double> rolling_mean(const std::vector<double>& x, size_t w, size_t from) {
  ATTNLAB_CHECK(w > 0, "rolling_mean: window must be > 0");
  std::vector<double> out(x.size(), kNaN);
  for (size_t t = std::max(w - 1, from); t < x.size(); ++t) {
    double s = 0;
    for (size_t i = t + 1 - w; i <= t; ++i) s += x[i];
    out[t] = s / static_cast<double>(w);  // NaN inputs propagate
  }
  return out;
}

std::vector<double> rolling_std(const std::vector<double>& x, size_t w, size_t ddof, size_t from) {
  ATTNLAB_CHECK(w > ddof, "rolling_std: window ", w, " must exceed ddof ", ddof);
  std::vector<double> out(x.size(), kNaN);
  for (size_t t = std::max(w - 1, from); t < x.size(); ++t) {
    double mean = 0;
    for (size_t i = t + 1 - w; i <= t; ++i) mean += x[i];
    mean /= static_cast<double>(w);
    double ss = 0;  // two passes: no catastrophic cancellation on small returns
    for (size_t i = t + 1 - w; i <= t; ++i) ss += (x[i] - mean) * (x[i] - mean);
    out[t] = std::sqrt(ss / static_cast<double>(w - ddof));
  }
  return out;
}

std::vector<double> ma_ratio(const std::vector<double>& x, size_t w, size_t from) {
  std::vector<double> out = rolling_mean(x, w, from);
  for (size_t t = from; t < x.size(); ++t)
    if (!std::isnan(out[t])) out[t] = out[t] == 0 ? 1.0 : x[t] / out[t];
  return out;
}

std::vector<double> rsi(const std::vector<double>& close, size_t n, RsiMethod method) {
  ATTNLAB_CHECK(n > 0, "rsi: period must be > 0");
  const size_t T = close.size();
  std::vector<double> out(T, kNaN), gain(T, 0.0), loss(T, 0.0);
  for (size_t t = 1; t < T; ++t) {
    const double d = close[t] - close[t - 1];
    gain[t] = d > 0 ? d : 0.0;
    loss[t] = d < 0 ? -d : 0.0;
  }
  auto value = [](double g, double l) {
    if (l == 0) return g == 0 ? 50.0 : 100.0;
    return 100.0 - 100.0 / (1.0 + g / l);
  };
  double g = 0, l = 0;
  for (size_t t = n; t < T; ++t) {
    if (method == RsiMethod::Simple || t == n) {  // mean of changes t-n+1..t
      g = l = 0;
      for (size_t i = t + 1 - n; i <= t; ++i) g += gain[i], l += loss[i];
      g /= static_cast<double>(n);
      l /= static_cast<double>(n);
    } else {  // Wilder's smoothing: an EMA with alpha = 1/n, seeded by the first simple mean
      g = (g * static_cast<double>(n - 1) + gain[t]) / static_cast<double>(n);
      l = (l * static_cast<double>(n - 1) + loss[t]) / static_cast<double>(n);
    }
    out[t] = value(g, l);
  }
  return out;
}

std::vector<double> momentum(const std::vector<double>& close, size_t lag, size_t from) {
  ATTNLAB_CHECK(lag > 0, "momentum: lag must be > 0");
  std::vector<double> out(close.size(), kNaN);
  for (size_t t = std::max(lag, from); t < close.size(); ++t) out[t] = close[t] / close[t - lag] - 1.0;
  return out;
}

std::vector<double> FeatureSet::column(size_t f) const {
  ATTNLAB_CHECK(f < cols(), "FeatureSet::column: index ", f, " out of range (", cols(), " columns)");
  std::vector<double> out(rows());
  for (size_t t = 0; t < rows(); ++t) out[t] = at(t, f);
  return out;
}

size_t FeatureSet::column_index(const std::string& name) const {
  for (size_t f = 0; f < names.size(); ++f)
    if (names[f] == name) return f;
  throw Error(cat("FeatureSet: no column '", name, "'"));
}

void FeatureSet::update_first_valid() {
  const size_t T = rows(), F = cols();
  ATTNLAB_CHECK(values.size() == T * F, "FeatureSet: ", values.size(), " values for [", T, ", ", F, "]");
  first_valid = T;
  while (first_valid > 0) {
    const double* r = row(first_valid - 1);
    bool finite = true;
    for (size_t f = 0; f < F; ++f) finite = finite && std::isfinite(r[f]);
    if (!finite) break;
    --first_valid;
  }
}

FeatureSet make_feature_set(std::vector<std::string> names, std::vector<int64_t> ts_ms,
                            const std::vector<std::vector<double>>& columns) {
  ATTNLAB_CHECK(names.size() == columns.size(), "make_feature_set: ", names.size(), " names for ", columns.size(),
                " columns");
  FeatureSet fs;
  fs.names = std::move(names);
  fs.ts_ms = std::move(ts_ms);
  const size_t T = fs.ts_ms.size(), F = fs.names.size();
  fs.values.resize(T * F);
  for (size_t f = 0; f < F; ++f) {
    ATTNLAB_CHECK(columns[f].size() == T, "make_feature_set: column '", fs.names[f], "' has ", columns[f].size(),
                  " rows, expected ", T);
    for (size_t t = 0; t < T; ++t) fs.values[t * F + f] = columns[f][t];
  }
  fs.update_first_valid();
  return fs;
}

FeatureSet compute_features(const OhlcvSeries& s, const FeatureConfig& cfg, size_t from) {
  s.validate(/*check_envelope=*/false);
  std::vector<std::vector<double>> cols;
  for (const auto& name : cfg.features) {
    if (name == "log_return") {
      cols.push_back(log_returns(s.close, from));
    } else if (name == "volatility") {  // the window's returns start volatility_window - 1 rows earlier
      const size_t w = cfg.volatility_window, returns_from = from >= w ? from - (w - 1) : 0;
      cols.push_back(rolling_std(log_returns(s.close, returns_from), w, 1, from));
    } else if (name == "volume_ma_ratio") {
      cols.push_back(ma_ratio(s.volume, cfg.volume_ma_window, from));
    } else if (name == "price_ma_ratio") {
      cols.push_back(ma_ratio(s.close, cfg.price_ma_window, from));
    } else if (name == "rsi") {
      cols.push_back(rsi(s.close, cfg.rsi_period, cfg.rsi_method));
    } else if (name == "momentum") {
      cols.push_back(momentum(s.close, cfg.momentum_lag, from));
    } else {
      throw Error(cat("compute_features: unknown feature '", name,
                      "' (known: log_return, volatility, volume_ma_ratio, price_ma_ratio, rsi, momentum)"));
    }
  }
  return make_feature_set(cfg.features, s.ts_ms, cols);
}

}  // namespace attnlab::data
