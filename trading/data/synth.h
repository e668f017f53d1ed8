// Seeded synthetic multi-asset OHLCV with a planted, learnable signal: a known answer for testing
// models and backtests (a model that cannot beat the naive forecast here is broken).
//
// Log returns r_i[t] = ln(close_i[t] / close_i[t-1]) follow
//     r_i[t+1] = beta * x_i[t] + noise_vol * z,   z ~ N(0, 1) i.i.d.
// where the signal x_i[t] is known at the close of bar t:
//   LeadLag      x_i[t] = r_0[t-k+1] + ... + r_0[t]   for followers i >= 1: symbol 0 leads, the others
//                follow its last k-bar return one bar later. Symbol 0 itself is a pure random walk
//                (x_0 = NaN: nothing to learn).
//   OwnMomentum  x_i[t] = r_i[t-k+1] + ... + r_i[t]   (= ln(close[t] / close[t-k])): each symbol
//                continues its own last k-bar move (an AR(k) process; needs |beta| * k < 1).
// x is NaN until k returns exist, and contributes 0 there. Bars are consecutive (bar_ms apart, no
// weekends or sessions); open[t] = close[t-1]; high/low extend max/min(open, close) by a random
// wick; volume = base_volume * lognormal * (1 + 50 |r|) > 0; turnover = volume * (o+h+l+c)/4.
// Normals come from our own Box-Muller on std::mt19937_64, so a seed gives the same data everywhere.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "trading/data/ohlcv.h"
#include "trading/data/timeutil.h"

namespace attnlab::data {

enum class SignalKind { LeadLag, OwnMomentum };

struct SynthConfig {
  size_t n_symbols = 3;
  size_t n_bars = 2000;
  int64_t start_ms = 1577836800000;  // 2020-01-01T00:00:00Z
  int64_t bar_ms = kMsPerHour;       // kMsPerDay for daily bars
  uint64_t seed = 42;
  SignalKind signal = SignalKind::LeadLag;
  size_t signal_lookback = 1;  // k
  double beta = 0.3;
  double noise_vol = 0.01;     // per-bar std of the unpredictable part of the log return
  double start_price = 100.0;
  double wick_vol = 0.002;
  double base_volume = 1000.0;
};

struct SynthResult {
  std::vector<OhlcvSeries> series;            // symbols "SYN0", "SYN1", ...
  std::vector<std::vector<double>> signal;    // [N][T]: x_i[t], NaN where undefined
  std::vector<std::vector<double>> log_ret;   // [N][T]: r_i[t], NaN at t = 0
  double beta = 0;                            // the true coefficient (= config.beta)
  double noise_vol = 0;
};

// Throws attnlab::Error on n_symbols == 0, n_bars < 2, k == 0, bar_ms <= 0, non-positive noise or
// price, LeadLag with fewer than 2 symbols, or OwnMomentum with |beta| * k >= 1.
SynthResult generate_synthetic(const SynthConfig& cfg);

}  // namespace attnlab::data
