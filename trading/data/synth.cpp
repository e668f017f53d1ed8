#include "trading/data/synth.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>

#include "kernels/error.h"

namespace attnlab::data {

namespace {

// Standard normals by Box-Muller; the second value of each pair is kept for the next call.
class Normal {
 public:
  explicit Normal(uint64_t seed) : rng_(seed) {}
  double operator()() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = uniform(), u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * std::numbers::pi * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

 private:
  double uniform() { return (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53; }  // in (0, 1)
  std::mt19937_64 rng_;
  double spare_ = 0;
  bool has_spare_ = false;
};

}  // namespace

SynthResult generate_synthetic(const SynthConfig& c) {
  ATTNLAB_CHECK(c.n_symbols > 0, "generate_synthetic: n_symbols must be > 0");
  ATTNLAB_CHECK(c.n_bars >= 2, "generate_synthetic: n_bars must be >= 2, got ", c.n_bars);
  ATTNLAB_CHECK(c.signal_lookback > 0, "generate_synthetic: signal_lookback must be > 0");
  ATTNLAB_CHECK(c.bar_ms > 0, "generate_synthetic: bar_ms must be > 0");
  ATTNLAB_CHECK(c.noise_vol > 0 && c.start_price > 0 && c.base_volume > 0 && c.wick_vol >= 0,
                "generate_synthetic: noise_vol, start_price, base_volume must be > 0 and wick_vol >= 0");
  ATTNLAB_CHECK(c.signal != SignalKind::LeadLag || c.n_symbols >= 2,
                "generate_synthetic: LeadLag needs at least 2 symbols (a leader and a follower)");
  ATTNLAB_CHECK(c.signal != SignalKind::OwnMomentum || std::fabs(c.beta) * c.signal_lookback < 1.0,
                "generate_synthetic: OwnMomentum with |beta| * k = ", std::fabs(c.beta) * c.signal_lookback,
                " >= 1 explodes");
  const size_t N = c.n_symbols, T = c.n_bars, k = c.signal_lookback;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Normal normal(c.seed);

  SynthResult out;
  out.beta = c.beta;
  out.noise_vol = c.noise_vol;
  out.log_ret.assign(N, std::vector<double>(T, nan));
  out.signal.assign(N, std::vector<double>(T, nan));
  auto& r = out.log_ret;
  auto& x = out.signal;
  // Returns first (all symbols, bar by bar, so a follower only ever sees the leader's past).
  for (size_t t = 1; t < T; ++t) {
    for (size_t i = 0; i < N; ++i) {
      const double xi = std::isnan(x[i][t - 1]) ? 0.0 : x[i][t - 1];
      r[i][t] = c.beta * xi + c.noise_vol * normal();
    }
    if (t >= k)
      for (size_t i = 0; i < N; ++i) {
        const size_t src = c.signal == SignalKind::LeadLag ? 0 : i;
        if (c.signal == SignalKind::LeadLag && i == 0) continue;
        double s = 0;
        for (size_t j = 0; j < k; ++j) s += r[src][t - j];
        x[i][t] = s;
      }
  }
  // Then bars around the closes.
  for (size_t i = 0; i < N; ++i) {
    OhlcvSeries s;
    s.symbol = "SYN" + std::to_string(i);
    s.reserve(T);
    double close = c.start_price;
    for (size_t t = 0; t < T; ++t) {
      OhlcvBar b;
      b.ts_ms = c.start_ms + static_cast<int64_t>(t) * c.bar_ms;
      b.open = t == 0 ? c.start_price : close;
      if (t > 0) close *= std::exp(r[i][t]);
      b.close = close;
      b.high = std::max(b.open, b.close) * std::exp(c.wick_vol * std::fabs(normal()));
      b.low = std::min(b.open, b.close) * std::exp(-c.wick_vol * std::fabs(normal()));
      const double move = t == 0 ? 0.0 : std::fabs(r[i][t]);
      b.volume = c.base_volume * std::exp(0.3 * normal()) * (1.0 + 50.0 * move);
      b.turnover = b.volume * (b.open + b.high + b.low + b.close) / 4.0;
      s.push_back(b, true);
    }
    s.validate();
    out.series.push_back(std::move(s));
  }
  return out;
}

}  // namespace attnlab::data
