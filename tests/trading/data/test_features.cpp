// Technical features: hand-computed values, warm-up edges, NaN handling, and the no-look-ahead
// property (changing bars after t changes no feature at or before t).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "kernels/error.h"
#include "trading/data/features.h"
#include "trading/data/synth.h"

using namespace attnlab::data;

namespace {

bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

// Element-wise equality where NaN equals NaN (warm-up rows).
bool same(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i])) return false;
  return true;
}

}  // namespace

TEST_CASE("log returns") {
  const auto r = log_returns({10, 11, 9.9, 9.9});
  REQUIRE(r.size() == 4);
  CHECK(std::isnan(r[0]));
  CHECK(r[1] == doctest::Approx(std::log(1.1)).epsilon(1e-15));
  CHECK(r[2] == doctest::Approx(std::log(0.9)).epsilon(1e-15));
  CHECK(r[3] == 0.0);
  CHECK(log_returns({}).empty());
  CHECK(std::isnan(log_returns({5})[0]));
}

TEST_CASE("rolling mean and std at the edges") {
  const std::vector<double> x = {1, 2, 3, 4, 10};
  const auto m3 = rolling_mean(x, 3);
  CHECK(std::isnan(m3[0]));
  CHECK(std::isnan(m3[1]));
  CHECK(m3[2] == 2.0);
  CHECK(m3[3] == 3.0);
  CHECK(m3[4] == doctest::Approx(17.0 / 3));
  const auto m5 = rolling_mean(x, 5);  // window = whole series: only the last row
  for (int t = 0; t < 4; ++t) CHECK(std::isnan(m5[t]));
  CHECK(m5[4] == 4.0);
  for (double v : rolling_mean(x, 6)) CHECK(std::isnan(v));  // window longer than the series
  CHECK(rolling_mean(x, 1) == x);
  CHECK_THROWS_AS(rolling_mean(x, 0), attnlab::Error);

  const auto s1 = rolling_std(x, 3);  // sample std (ddof = 1), like pandas .rolling(3).std()
  CHECK(std::isnan(s1[1]));
  CHECK(s1[2] == doctest::Approx(1.0));
  CHECK(s1[3] == doctest::Approx(1.0));
  // (3, 4, 10): mean 17/3, squared deviations 64/9 + 25/9 + 169/9 = 258/9
  CHECK(s1[4] == doctest::Approx(std::sqrt(258.0 / 9 / 2)));
  CHECK(rolling_std(x, 3, 0)[4] == doctest::Approx(std::sqrt(258.0 / 9 / 3)));
  CHECK_THROWS_AS(rolling_std(x, 1, 1), attnlab::Error);

  // A NaN inside the window makes the output NaN; once it leaves the window values return.
  const auto r = rolling_mean({NAN, 2, 4, 6}, 2);
  CHECK(std::isnan(r[1]));
  CHECK(r[2] == 3.0);
  CHECK(r[3] == 5.0);
}

TEST_CASE("moving-average ratio and momentum") {
  const auto pr = ma_ratio({2, 4, 6, 8}, 2);
  CHECK(std::isnan(pr[0]));
  CHECK(pr[1] == doctest::Approx(4.0 / 3));
  CHECK(pr[3] == doctest::Approx(8.0 / 7));
  const auto zero = ma_ratio({0, 0, 0, 5}, 3);  // no volume at all -> 1, not 0/0
  CHECK(zero[2] == 1.0);
  CHECK(zero[3] == doctest::Approx(5.0 / (5.0 / 3)));
  const auto mom = momentum({10, 11, 12, 9}, 2);
  CHECK(std::isnan(mom[1]));
  CHECK(mom[2] == doctest::Approx(0.2));
  CHECK(mom[3] == doctest::Approx(9.0 / 11 - 1));
}

TEST_CASE("RSI, Wilder and simple, on a hand-computed sequence") {
  // closes 10, 11, 10.5, 11.5, 12, 11, 11.5 -> changes +1, -0.5, +1, +0.5, -1, +0.5; period 3.
  const std::vector<double> c = {10, 11, 10.5, 11.5, 12, 11, 11.5};
  const auto w = rsi(c, 3, RsiMethod::Wilder);
  const auto s = rsi(c, 3, RsiMethod::Simple);
  for (int t = 0; t < 3; ++t) CHECK((std::isnan(w[t]) && std::isnan(s[t])));
  // t=3: gains (1, 0, 1) -> 2/3, losses (0, .5, 0) -> 1/6, RS 4 -> 80 (both methods start alike)
  CHECK(w[3] == doctest::Approx(80.0));
  CHECK(s[3] == doctest::Approx(80.0));
  // Simple: t=4 gains (0, 1, .5)/3 = .5, losses (.5, 0, 0)/3 = 1/6 -> RS 3 -> 75
  //         t=5 gains .5, losses 1/3 -> RS 1.5 -> 60;  t=6 gains 1/3, losses 1/3 -> 50
  CHECK(s[4] == doctest::Approx(75.0));
  CHECK(s[5] == doctest::Approx(60.0));
  CHECK(s[6] == doctest::Approx(50.0));
  // Wilder: t=4 g = (2/3*2 + .5)/3 = 11/18, l = (1/6*2 + 0)/3 = 1/9 -> RS 5.5 -> 100 - 100/6.5
  //         t=5 g = (11/18*2 + 0)/3 = 11/27, l = (1/9*2 + 1)/3 = 11/27 -> 50
  //         t=6 g = (22/27 + .5)/3 = 35.5/81, l = (22/27)/3 = 22/81 -> RS 35.5/22
  CHECK(w[4] == doctest::Approx(100.0 - 100.0 / 6.5));
  CHECK(w[5] == doctest::Approx(50.0));
  CHECK(w[6] == doctest::Approx(100.0 - 100.0 / (1.0 + 35.5 / 22.0)));
  // Edge cases: only gains -> 100; flat -> 50; only losses -> 0.
  CHECK(rsi({1, 2, 3, 4}, 3)[3] == 100.0);
  CHECK(rsi({5, 5, 5, 5}, 3, RsiMethod::Simple)[3] == 50.0);
  CHECK(rsi({4, 3, 2, 1}, 3)[3] == 0.0);
}

TEST_CASE("compute_features: columns, warm-up and first_valid") {
  SynthConfig cfg;
  cfg.n_symbols = 2;
  cfg.n_bars = 120;
  const OhlcvSeries s = generate_synthetic(cfg).series[1];
  const FeatureSet fs = compute_features(s);
  REQUIRE(fs.cols() == 6);
  CHECK(fs.names == std::vector<std::string>{"log_return", "volatility", "volume_ma_ratio", "price_ma_ratio", "rsi",
                                             "momentum"});
  CHECK(fs.rows() == 120);
  CHECK(fs.ts_ms == s.ts_ms);
  CHECK(fs.first_valid == 24);  // volatility (24 returns) and momentum (lag 24) are the last to warm up
  CHECK(std::isnan(fs.at(23, fs.column_index("volatility"))));
  CHECK(std::isfinite(fs.at(23, fs.column_index("price_ma_ratio"))));  // ratios need w = 24 bars: t >= 23
  CHECK(std::isnan(fs.at(22, fs.column_index("price_ma_ratio"))));
  CHECK(std::isfinite(fs.at(14, fs.column_index("rsi"))));
  CHECK(std::isnan(fs.at(13, fs.column_index("rsi"))));
  CHECK(same(fs.column(fs.column_index("momentum")), momentum(s.close, 24)));
  CHECK(same(fs.column(1), rolling_std(log_returns(s.close), 24, 1)));

  FeatureConfig small;
  small.features = {"rsi", "log_return"};
  small.rsi_period = 5;
  small.rsi_method = RsiMethod::Simple;
  const FeatureSet f2 = compute_features(s, small);
  CHECK(f2.names == std::vector<std::string>{"rsi", "log_return"});
  CHECK(f2.first_valid == 5);
  CHECK(same(f2.column(0), rsi(s.close, 5, RsiMethod::Simple)));
  CHECK(f2.row(7)[1] == f2.at(7, 1));

  CHECK(compute_features(slice_rows(s, 0, 20)).first_valid == 20);  // never fully warm: rows()
  small.features = {"macd"};
  CHECK_THROWS_WITH_AS(compute_features(s, small), doctest::Contains("unknown feature 'macd'"), attnlab::Error);
  CHECK_THROWS_AS(fs.column_index("nope"), attnlab::Error);
}

TEST_CASE("no look-ahead: bars after t do not change features at or before t") {
  SynthConfig cfg;
  cfg.n_bars = 200;
  const OhlcvSeries base = generate_synthetic(cfg).series[1];
  FeatureConfig fc;
  fc.rsi_method = RsiMethod::Wilder;  // recursive: the easiest to get wrong
  const FeatureSet ref = compute_features(base, fc);
  for (size_t cut : {30, 100, 150}) {
    CAPTURE(cut);
    OhlcvSeries changed = base;
    for (size_t t = cut + 1; t < changed.size(); ++t) {  // a different future, still valid bars
      const double k = t % 2 ? 1.7 : 0.6;
      changed.open[t] *= k, changed.high[t] *= k, changed.low[t] *= k, changed.close[t] *= k;
      changed.volume[t] *= 3.0;
    }
    for (auto method : {RsiMethod::Wilder, RsiMethod::Simple}) {
      fc.rsi_method = method;
      const FeatureSet a = compute_features(base, fc), b = compute_features(changed, fc);
      bool past_same = true, future_differs = false;
      for (size_t t = 0; t < a.rows(); ++t)
        for (size_t f = 0; f < a.cols(); ++f) {
          if (t <= cut) past_same = past_same && same(a.at(t, f), b.at(t, f));
          else future_differs = future_differs || !same(a.at(t, f), b.at(t, f));
        }
      CHECK(past_same);
      CHECK(future_differs);  // the test would notice if it changed nothing
    }
  }
  CHECK(ref.first_valid == 24);
}

TEST_CASE("compute_features from a row: the same numbers from there on, NaN before (what a stream asks)") {
  SynthConfig cfg;
  cfg.n_bars = 120;
  const OhlcvSeries s = generate_synthetic(cfg).series[0];
  const FeatureSet all = compute_features(s);
  for (size_t from : {size_t(0), size_t(10), size_t(24), size_t(25), size_t(119)}) {
    CAPTURE(from);
    const FeatureSet part = compute_features(s, {}, from);
    bool equal_after = true, nan_before = true;
    for (size_t t = 0; t < all.rows(); ++t)
      for (size_t f = 0; f < all.cols(); ++f) {
        if (t >= from) equal_after = equal_after && same(part.at(t, f), all.at(t, f));
        else if (part.names[f] != "rsi") nan_before = nan_before && std::isnan(part.at(t, f));
      }
    CHECK(equal_after);
    CHECK(nan_before);
    CHECK(part.first_valid == std::max(from, all.first_valid));
  }
}
