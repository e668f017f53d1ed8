// Synthetic generator: determinism, OHLCV consistency, and a planted signal that a fitted model can
// find (and that beats the naive zero forecast out of sample).
#include <doctest/doctest.h>

#include <cmath>

#include "kernels/error.h"
#include "trading/data/features.h"
#include "trading/data/synth.h"

using namespace attnlab::data;

namespace {

// Least-squares slope through the origin of y on x over pairs (x[t], y[t+1]), t in [begin, end).
double fit_beta(const std::vector<double>& x, const std::vector<double>& r, size_t begin, size_t end) {
  double sxy = 0, sxx = 0;
  for (size_t t = begin; t < end; ++t)
    if (std::isfinite(x[t])) sxy += x[t] * r[t + 1], sxx += x[t] * x[t];
  return sxy / sxx;
}

}  // namespace

TEST_CASE("same seed, same data; another seed, other data") {
  SynthConfig cfg;
  cfg.n_bars = 300;
  const SynthResult a = generate_synthetic(cfg), b = generate_synthetic(cfg);
  cfg.seed = 43;
  const SynthResult c = generate_synthetic(cfg);
  REQUIRE(a.series.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(a.series[i].close == b.series[i].close);
    CHECK(a.series[i].high == b.series[i].high);
    CHECK(a.series[i].volume == b.series[i].volume);
    CHECK(a.series[i].close != c.series[i].close);
  }
  CHECK(a.series[2].symbol == "SYN2");
}

TEST_CASE("bars are consistent OHLCV on a regular clock") {
  for (auto kind : {SignalKind::LeadLag, SignalKind::OwnMomentum}) {
    SynthConfig cfg;
    cfg.signal = kind;
    cfg.n_bars = 500;
    cfg.bar_ms = kMsPerDay;
    cfg.signal_lookback = 3;
    const SynthResult r = generate_synthetic(cfg);
    for (const auto& s : r.series) {
      CHECK_NOTHROW(s.validate());
      REQUIRE(s.size() == 500);
      CHECK(s.ts_ms[0] == cfg.start_ms);
      for (size_t t = 0; t < s.size(); ++t) {
        CHECK(s.high[t] >= std::max(s.open[t], s.close[t]));
        CHECK(s.low[t] <= std::min(s.open[t], s.close[t]));
        CHECK(s.volume[t] > 0);
        if (t > 0) {
          CHECK(s.ts_ms[t] - s.ts_ms[t - 1] == kMsPerDay);
          CHECK(s.open[t] == s.close[t - 1]);
        }
      }
    }
  }
}

TEST_CASE("the returned signal is computable from past closes") {
  SynthConfig cfg;
  cfg.signal = SignalKind::OwnMomentum;
  cfg.signal_lookback = 4;
  cfg.beta = 0.1;
  cfg.n_bars = 200;
  const SynthResult r = generate_synthetic(cfg);
  const auto& s = r.series[1];
  const auto mom = momentum(s.close, 4);  // close[t] / close[t-4] - 1
  for (size_t t = 0; t < 4; ++t) CHECK(std::isnan(r.signal[1][t]));
  for (size_t t = 4; t < s.size(); ++t) CHECK(r.signal[1][t] == doctest::Approx(std::log1p(mom[t])).epsilon(1e-9));
  for (size_t t = 1; t < s.size(); ++t)
    CHECK(r.log_ret[1][t] == doctest::Approx(std::log(s.close[t] / s.close[t - 1])).epsilon(1e-9));
}

TEST_CASE("planted lead-lag signal: recovered by least squares, beats the zero forecast out of sample") {
  SynthConfig cfg;
  cfg.n_bars = 4000;
  cfg.beta = 0.5;
  cfg.noise_vol = 0.01;
  const SynthResult r = generate_synthetic(cfg);
  CHECK(r.beta == 0.5);
  const size_t T = cfg.n_bars, split = T * 7 / 10;
  for (size_t i = 1; i < cfg.n_symbols; ++i) {  // followers
    CAPTURE(i);
    const auto& x = r.signal[i];
    const auto& y = r.log_ret[i];
    // Standard error of the slope is noise / (std(x) sqrt(n)) = 1 / sqrt(2800) ~ 0.019: allow ~4 of them.
    const double beta_hat = fit_beta(x, y, 1, split);
    CHECK(beta_hat == doctest::Approx(0.5).epsilon(0.15));
    double mse_model = 0, mse_zero = 0;
    for (size_t t = split; t + 1 < T; ++t) {
      mse_model += (y[t + 1] - beta_hat * x[t]) * (y[t + 1] - beta_hat * x[t]);
      mse_zero += y[t + 1] * y[t + 1];
    }
    // Expected ratio noise^2 / (noise^2 + beta^2 var x) = 1 / 1.25 = 0.8.
    CHECK(mse_model / mse_zero < 0.9);
  }
  // The leader has nothing to learn.
  for (double v : r.signal[0]) CHECK(std::isnan(v));
}

TEST_CASE("bad configurations are errors") {
  SynthConfig cfg;
  cfg.n_symbols = 1;  // LeadLag needs a follower
  CHECK_THROWS_WITH_AS(generate_synthetic(cfg), doctest::Contains("LeadLag needs at least 2 symbols"), attnlab::Error);
  cfg.signal = SignalKind::OwnMomentum;
  cfg.beta = 0.4;
  cfg.signal_lookback = 3;  // 1.2 >= 1: explodes
  CHECK_THROWS_WITH_AS(generate_synthetic(cfg), doctest::Contains("explodes"), attnlab::Error);
  cfg.signal_lookback = 2;
  CHECK_NOTHROW(generate_synthetic(cfg));
  cfg.noise_vol = 0;
  CHECK_THROWS_AS(generate_synthetic(cfg), attnlab::Error);
  cfg.noise_vol = 0.01;
  cfg.n_bars = 1;
  CHECK_THROWS_AS(generate_synthetic(cfg), attnlab::Error);
}
