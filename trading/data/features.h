// Technical features of one OHLCV series, as in the seeds' data preparation, computed causally.
//
// Every column function maps a length-T input to a length-T output whose value at t uses inputs at
// rows <= t only (no look-ahead). Rows before a window is full are NaN ("warm-up"). A NaN inside a
// window makes that output NaN.
//
//   log_return[t]      = ln(close[t] / close[t-1])                         warm-up: t < 1
//   volatility[t]      = sample std (ddof = 1, like pandas .std()) of log_return[t-w+1..t], w = 24
//                                                                          warm-up: t < w
//   volume_ma_ratio[t] = volume[t] / mean(volume[t-w+1..t]) (1 when that mean is 0), w = 24
//                                                                          warm-up: t < w-1
//   price_ma_ratio[t]  = close[t] / mean(close[t-w+1..t]), w = 24          warm-up: t < w-1
//   rsi[t]             = 100 - 100 / (1 + avg_gain / avg_loss) over n = 14 close-to-close changes;
//                        Wilder (default): first average = simple mean of changes 1..n, then
//                        avg = (avg * (n-1) + x) / n;  Simple (the seeds): mean of the last n changes.
//                        avg_loss = 0 gives 100, both 0 (flat prices) gives 50. The seeds add 1e-10
//                        to the loss instead, which makes flat prices read 0 (maximally oversold),
//                        and its pandas .where() turns the undefined first change into a 0, so it
//                        emits a value one bar early from only n-1 real changes.
//                                                                          warm-up: t < n
//   momentum[t]        = close[t] / close[t-n] - 1, n = 24                 warm-up: t < n
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "trading/data/ohlcv.h"

namespace attnlab::data {

enum class RsiMethod { Wilder, Simple };

// ---- column functions -------------------------------------------------------------------------------
// `from`: outputs are computed for rows t >= from only, earlier rows are NaN (a stream needs only its
// newest row; the values computed are the same numbers as with from = 0). RSI is a recursion over the
// whole input and always computes every row.
std::vector<double> log_returns(const std::vector<double>& close, size_t from = 0);
std::vector<double> rolling_mean(const std::vector<double>& x, size_t window, size_t from = 0);
std::vector<double> rolling_std(const std::vector<double>& x, size_t window, size_t ddof = 1, size_t from = 0);
// x / rolling_mean (1 if mean 0)
std::vector<double> ma_ratio(const std::vector<double>& x, size_t window, size_t from = 0);
std::vector<double> rsi(const std::vector<double>& close, size_t period = 14, RsiMethod method = RsiMethod::Wilder);
std::vector<double> momentum(const std::vector<double>& close, size_t lag = 24, size_t from = 0);

// ---- feature matrix ---------------------------------------------------------------------------------
struct FeatureConfig {
  // Which features, in this column order. Known: log_return, volatility, volume_ma_ratio,
  // price_ma_ratio, rsi, momentum. The default is the seeds' set plus momentum (seed 002).
  std::vector<std::string> features = {"log_return", "volatility", "volume_ma_ratio",
                                       "price_ma_ratio", "rsi", "momentum"};
  size_t volatility_window = 24;
  size_t volume_ma_window = 24;
  size_t price_ma_window = 24;
  size_t rsi_period = 14;
  RsiMethod rsi_method = RsiMethod::Wilder;
  size_t momentum_lag = 24;
};

// X: [T, F] row-major, X[t * F + f]; ts_ms[t] is the time of row t.
struct FeatureSet {
  std::vector<std::string> names;  // F column names
  std::vector<int64_t> ts_ms;      // T row times
  std::vector<double> values;      // T * F, row-major
  size_t first_valid = 0;          // first row from which every value to the end is finite (T if none)

  size_t rows() const { return ts_ms.size(); }
  size_t cols() const { return names.size(); }
  double at(size_t t, size_t f) const { return values[t * names.size() + f]; }
  const double* row(size_t t) const { return values.data() + t * names.size(); }
  std::vector<double> column(size_t f) const;
  size_t column_index(const std::string& name) const;  // throws attnlab::Error if absent

  // Recomputes first_valid from the values.
  void update_first_valid();
};

// Throws attnlab::Error for an unknown feature name, a zero window, or an invalid series. Rows before
// `from` are left NaN (the column functions' `from`): streaming computes only the newest row.
FeatureSet compute_features(const OhlcvSeries& s, const FeatureConfig& cfg = {}, size_t from = 0);

// Builds a FeatureSet from columns of equal length (T each); computes first_valid.
FeatureSet make_feature_set(std::vector<std::string> names, std::vector<int64_t> ts_ms,
                            const std::vector<std::vector<double>>& columns);

}  // namespace attnlab::data
