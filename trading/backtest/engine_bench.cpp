// Throughput benchmark of run_backtest (declared in engine.h): a synthetic panel, timed end to end.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "kernels/error.h"
#include "trading/backtest/engine.h"

namespace attnlab::backtest {

double bench_backtest_asset_bars_per_second(int n_assets, int n_bars, int repeats) {
  ATTNLAB_CHECK(n_assets >= 1 && n_bars >= 2 && repeats >= 1,
                "bench_backtest: need n_assets >= 1, n_bars >= 2, repeats >= 1; got ", n_assets, ", ",
                n_bars, ", ", repeats);
  const std::size_t N = static_cast<std::size_t>(n_assets), T = static_cast<std::size_t>(n_bars);
  // Geometric random walks (1 % per bar) with opens near the previous close, and predictions that
  // are noise plus a little of the next return, so the strategy trades every asset every bar.
  std::mt19937_64 rng(12345);
  std::normal_distribution<double> z(0.0, 1.0);
  std::vector<std::int64_t> time(T);
  std::vector<double> open(T * N), close(T * N), pred(T * N);
  for (std::size_t t = 0; t < T; ++t) time[t] = static_cast<std::int64_t>(t) * 3'600'000;
  for (std::size_t i = 0; i < N; ++i) {
    double c = 100.0;
    for (std::size_t t = 0; t < T; ++t) {
      const double o = c * std::exp(0.001 * z(rng));
      c = o * std::exp(0.01 * z(rng));
      open[t * N + i] = o;
      close[t * N + i] = c;
    }
  }
  for (std::size_t t = 0; t < T; ++t)
    for (std::size_t i = 0; i < N; ++i) {
      const double next = t + 1 < T ? close[(t + 1) * N + i] / close[t * N + i] - 1.0 : 0.0;
      pred[t * N + i] = 0.2 * next + 0.01 * z(rng);
    }
  Panel panel;
  panel.n_bars = n_bars;
  panel.n_assets = n_assets;
  panel.time_ms = time;
  panel.open = open;
  panel.close = close;
  BacktestConfig cfg;
  cfg.max_position = 1.0 / static_cast<double>(n_assets);
  cfg.slippage_bps = 1.0;
  cfg.record_trades = false;
  cfg.record_weights = true;  // the [T, N] weight output is part of the work being timed

  double best = 0.0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const BacktestResult res = run_backtest(panel, pred, cfg);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ATTNLAB_CHECK(std::isfinite(res.equity.back()), "bench_backtest: equity is not finite");
    best = std::max(best, static_cast<double>(N * T) / s);
  }
  return best;
}

}  // namespace attnlab::backtest
