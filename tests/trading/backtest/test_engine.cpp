// Backtest engine on hand-made 3-5 bar series. Each expected number is derived in the comment above it:
// E = equity at the execution price, u = units, "fee" = commission rate, "s" = slippage rate.
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/error.h"
#include "trading/backtest/engine.h"

using namespace attnlab::backtest;

namespace {

// Owns the arrays a Panel points into.
struct Data {
  std::vector<std::int64_t> time;
  std::vector<double> open, close;
  Panel panel(std::int64_t n_assets) const {
    Panel p;
    p.n_assets = n_assets;
    p.n_bars = static_cast<std::int64_t>(time.size());
    p.time_ms = time;
    p.open = open;
    p.close = close;
    return p;
  }
};

Data hourly(std::vector<double> open, std::vector<double> close, std::int64_t n_assets) {
  Data d;
  const std::size_t T = close.size() / static_cast<std::size_t>(n_assets);
  for (std::size_t t = 0; t < T; ++t) d.time.push_back(static_cast<std::int64_t>(t) * 3'600'000);
  d.open = std::move(open);
  d.close = std::move(close);
  return d;
}

// Full-size long/short/flat signals: threshold sizing, |w| = 1, no costs.
BacktestConfig all_in(Execution e) {
  BacktestConfig c;
  c.initial_capital = 1000;
  c.sizing = Sizing::threshold;
  c.threshold = 0.001;
  c.max_position = 1.0;
  c.cost_bps = 0;
  c.slippage_bps = 0;
  c.execution = e;
  return c;
}

}  // namespace

TEST_CASE("engine: next-open execution, long then short then flat") {
  const Data d = hourly({100, 102, 99, 105}, {101, 100, 104, 103}, 1);
  const std::vector<double> pred = {0.01, -0.01, 0.0, 0.01};
  const BacktestResult r = run_backtest(d.panel(1), pred, all_in(Execution::next_open));
  // Bar 0: nothing can be held yet.
  CHECK(r.equity[0] == 1000);
  // Bar 1: long at open 102 with E = 1000 -> u = 1000/102; marked at close 100.
  CHECK(r.equity[1] == doctest::Approx(1000.0 * 100 / 102).epsilon(1e-12));
  // Bar 2: E at open 99 = 1000*99/102; short u = -E/99 = -1000/102; equity = E * (2 - 104/99) = 1000*94/102.
  CHECK(r.equity[2] == doctest::Approx(1000.0 * 94 / 102).epsilon(1e-12));
  // Bar 3: flatten at open 105: E * (2 - 105/99) = 1000*93/102. The bar-3 LONG is never executed.
  CHECK(r.equity[3] == doctest::Approx(1000.0 * 93 / 102).epsilon(1e-12));
  CHECK(r.returns[0] == 0.0);
  CHECK(r.returns[2] == doctest::Approx(94.0 / 100.0 - 1.0).epsilon(1e-12));
  CHECK(r.weights[1] == doctest::Approx(1.0));
  CHECK(r.weights[2] == doctest::Approx(-(1000.0 / 102 * 104) / (1000.0 * 94 / 102)).epsilon(1e-12));
  CHECK(r.weights[3] == 0.0);
  REQUIRE(r.fills.size() == 3);
  CHECK(r.fills[0].side == 1);
  CHECK(r.fills[1].side == -1);
  CHECK(r.fills[1].delta_units == doctest::Approx(-2000.0 / 102).epsilon(1e-12));
  CHECK(r.fills[2].side == 1);  // buying back the short
  CHECK(r.metrics.n_bars == 3);
  CHECK(r.metrics.total_return == doctest::Approx(93.0 / 102 - 1).epsilon(1e-12));
  CHECK(r.metrics.exposure == doctest::Approx(2.0 / 3.0));
  // Turnover (traded notional / E at execution): 1 (buy), 2 (flip), then the short's 105 per unit
  // against E = 93 per unit -> 105/93; averaged over 3 bars.
  CHECK(r.metrics.turnover_per_bar == doctest::Approx((1.0 + 2.0 + 105.0 / 93) / 3).epsilon(1e-12));
}

TEST_CASE("engine: next-close execution on the same series") {
  const Data d = hourly({100, 102, 99, 105}, {101, 100, 104, 103}, 1);
  const std::vector<double> pred = {0.01, -0.01, 0.0, 0.01};
  const BacktestResult r = run_backtest(d.panel(1), pred, all_in(Execution::next_close));
  // Bar 1: buy 10 at close 100 -> 1000. Bar 2: E = 10*104 = 1040, short 10. Bar 3: short gains 1 * 10.
  CHECK(r.equity[1] == doctest::Approx(1000.0));
  CHECK(r.equity[2] == doctest::Approx(1040.0));
  CHECK(r.equity[3] == doctest::Approx(1050.0));
  CHECK(r.fills[0].fill_price == 100.0);
  // Realized return of a decision's holding period: close[t+1] / close[t] - 1; NaN at the last bar.
  CHECK(r.fills[0].realized_return == doctest::Approx(0.04));
  CHECK(r.fills[1].realized_return == doctest::Approx(103.0 / 104 - 1));
  CHECK(std::isnan(r.fills[2].realized_return));
}

TEST_CASE("engine: commission on traded notional, exact to the cent") {
  const Data d = hourly({100, 102, 99, 105}, {101, 100, 104, 103}, 1);
  const std::vector<double> pred = {0.01, -0.01, 0.0, 0.01};
  BacktestConfig c = all_in(Execution::next_close);
  c.cost_bps = 10;  // 0.1 %
  const BacktestResult r = run_backtest(d.panel(1), pred, c);
  // Bar 1: u = 10 at 100, fee 1 -> cash -1, equity 999.
  CHECK(r.costs[1] == doctest::Approx(1.0));
  CHECK(r.equity[1] == doctest::Approx(999.0).epsilon(1e-13));
  // Bar 2: E = -1 + 10*104 = 1039; u -> -1039/104; traded (10 + 1039/104)*104 = 2079 -> fee 2.079.
  CHECK(r.costs[2] == doctest::Approx(2.079).epsilon(1e-12));
  CHECK(r.equity[2] == doctest::Approx(1039.0 - 2.079).epsilon(1e-13));
  // Bar 3: E = 1036.921 + 1039/104 (short gains 1 per unit); fee (1039/104)*103*0.001.
  const double e3 = 1036.921 + 1039.0 / 104;
  CHECK(r.equity[3] == doctest::Approx(e3 - 1039.0 / 104 * 103 * 0.001).epsilon(1e-13));
  CHECK(r.turnover[2] == doctest::Approx(2079.0 / 1039.0).epsilon(1e-12));
}

TEST_CASE("engine: slippage moves the fill against the trader; trade log and round trip") {
  const Data d = hourly({100, 100, 110}, {100, 105, 120}, 1);
  const std::vector<double> pred = {0.01, 0.0, 0.01};
  BacktestConfig c = all_in(Execution::next_open);
  c.slippage_bps = 50;  // 0.5 %
  const BacktestResult r = run_backtest(d.panel(1), pred, c);
  // Bar 1: buy 10 at mid 100 -> fill 100.5, slippage 5: cash -5, equity -5 + 10*105 = 1045.
  CHECK(r.equity[1] == doctest::Approx(1045.0));
  // Bar 2: sell 10 at mid 110 -> fill 109.45, slippage 5.5: equity -5 + 1100 - 5.5 = 1089.5.
  CHECK(r.equity[2] == doctest::Approx(1089.5));
  REQUIRE(r.fills.size() == 2);
  const Fill& buy = r.fills[0];
  CHECK(buy.bar == 1);
  CHECK(buy.time_ms == 3'600'000);
  CHECK(buy.asset == 0);
  CHECK(buy.side == 1);
  CHECK(buy.weight_before == 0.0);
  CHECK(buy.weight_target == 1.0);
  CHECK(buy.delta_units == doctest::Approx(10.0));
  CHECK(buy.mid_price == 100.0);
  CHECK(buy.fill_price == doctest::Approx(100.5));
  CHECK(buy.cost == doctest::Approx(5.0));
  CHECK(buy.predicted_return == 0.01);
  CHECK(buy.realized_return == doctest::Approx(0.10));  // open 100 -> next open 110
  const Fill& sell = r.fills[1];
  CHECK(sell.side == -1);
  CHECK(sell.fill_price == doctest::Approx(109.45));
  CHECK(sell.cost == doctest::Approx(5.5));
  CHECK(sell.weight_before == doctest::Approx(1100.0 / 1095.0));
  CHECK(sell.weight_target == 0.0);
  CHECK(sell.realized_return == doctest::Approx(120.0 / 110 - 1));  // last bar: to its close
  REQUIRE(r.round_trips.size() == 1);
  CHECK(r.round_trips[0].entry_bar == 1);
  CHECK(r.round_trips[0].exit_bar == 2);
  CHECK(r.round_trips[0].side == 1);
  CHECK(r.round_trips[0].pnl == doctest::Approx(89.5));
  CHECK(r.metrics.round_trips == 1);
  CHECK(r.metrics.win_rate_trades == 1.0);
  CHECK(r.metrics.fills == 2);
}

TEST_CASE("engine: a flip splits its cost between the closed and the opened trip") {
  const Data d = hourly({100, 100, 100, 100}, {100, 100, 100, 100}, 1);
  const std::vector<double> pred = {0.01, -0.01, 0.0, 0.0};
  BacktestConfig c = all_in(Execution::next_close);
  c.cost_bps = 10;
  const BacktestResult r = run_backtest(d.panel(1), pred, c);
  // Bar 1: buy 10, fee 1 -> 999. Bar 2: -> -9.99 units, traded 19.99, fee 1.999 (1.0 closes the long).
  // Bar 3: buy back 9.99, fee 0.999.
  CHECK(r.equity[3] == doctest::Approx(1000 - 1 - 1.999 - 0.999).epsilon(1e-13));
  REQUIRE(r.round_trips.size() == 2);
  CHECK(r.round_trips[0].side == 1);
  CHECK(r.round_trips[0].pnl == doctest::Approx(-2.0).epsilon(1e-12));
  CHECK(r.round_trips[1].side == -1);
  CHECK(r.round_trips[1].entry_bar == 2);
  CHECK(r.round_trips[1].exit_bar == 3);
  CHECK(r.round_trips[1].pnl == doctest::Approx(-1.998).epsilon(1e-12));
  CHECK(r.metrics.win_rate_trades == 0.0);
}

TEST_CASE("engine: tanh sizing as the seeds, weights right after execution") {
  const Data d = hourly({100, 100, 100}, {100, 100, 100}, 1);
  const std::vector<double> pred = {0.05, -0.02, 0.0};
  BacktestConfig c;  // defaults: tanh(10 p) * 0.1
  c.cost_bps = 0;
  c.execution = Execution::next_close;
  const BacktestResult r = run_backtest(d.panel(1), pred, c);
  CHECK(r.weights[1] == doctest::Approx(std::tanh(0.5) * 0.1).epsilon(1e-12));
  CHECK(r.weights[2] == doctest::Approx(std::tanh(-0.2) * 0.1).epsilon(1e-12));
  CHECK(raw_target_weight(0.05, c) == doctest::Approx(std::tanh(0.5) * 0.1));
  CHECK(std::isnan(raw_target_weight(NAN, c)));
}

TEST_CASE("engine: threshold signals") {
  const Signal l = threshold_signal(0.002, 0.001);
  CHECK(l.direction == 1);
  CHECK(l.confidence == doctest::Approx(2.0));
  const Signal s = threshold_signal(-0.003, 0.001);
  CHECK(s.direction == -1);
  CHECK(s.confidence == doctest::Approx(3.0));
  const Signal n = threshold_signal(-0.0005, 0.001);
  CHECK(n.direction == 0);
  CHECK(n.confidence == doctest::Approx(0.5));
  CHECK(threshold_signal(NAN, 0.001).direction == 0);
  CHECK(std::string(signal_name(1)) == "LONG");
  CHECK(std::string(signal_name(-1)) == "SHORT");
  CHECK(std::string(signal_name(0)) == "NEUTRAL");
}

TEST_CASE("engine: multi-asset shared capital, per-asset and gross limits") {
  // 3 assets; targets +0.6 / -0.6 / NaN (hold, nothing held); asset 0 capped at 0.5; gross 1.1 > 1.
  const Data d = hourly({10, 20, 50, 10, 20, 50, 11, 18, 50}, {10, 20, 50, 10, 20, 50, 11, 18, 50}, 3);
  const std::vector<double> pred = {1, -1, NAN, NAN, NAN, NAN, 0, 0, 0};
  BacktestConfig c = all_in(Execution::next_close);
  c.max_position = 0.6;
  c.asset_limit = {0.5, 0.6, 0.6};
  c.gross_limit = 1.0;
  const BacktestResult r = run_backtest(d.panel(3), pred, c);
  // Scale 1/1.1: w = 0.5/1.1 and -0.6/1.1 -> u0 = (500/1.1)/10, u1 = -(600/1.1)/20.
  CHECK(r.weights[3 + 0] == doctest::Approx(0.5 / 1.1).epsilon(1e-12));
  CHECK(r.weights[3 + 1] == doctest::Approx(-0.6 / 1.1).epsilon(1e-12));
  CHECK(r.weights[3 + 2] == 0.0);
  CHECK(r.gross_exposure[1] == doctest::Approx(1.0));
  // Bar 2: all NaN -> hold. Asset 0 gains 1 per unit, asset 1 (short) gains 2 per unit:
  // 1000 + 500/11 + 600/11 = 1100; weights drift to u * close / 1100.
  CHECK(r.equity[2] == doctest::Approx(1100.0).epsilon(1e-13));
  CHECK(r.weights[6 + 0] == doctest::Approx(500.0 / 1.1 / 10 * 11 / 1100).epsilon(1e-12));
  CHECK(r.weights[6 + 1] == doctest::Approx(-600.0 / 1.1 / 20 * 18 / 1100).epsilon(1e-12));
  CHECK(r.fills.size() == 2);  // nothing traded on the NaN row

  c.nan_policy = NanPolicy::flat;  // the NaN row now closes both positions at close[2]
  const BacktestResult f = run_backtest(d.panel(3), pred, c);
  CHECK(f.equity[2] == doctest::Approx(1100.0).epsilon(1e-13));
  CHECK(f.weights[6 + 0] == 0.0);
  CHECK(f.weights[6 + 1] == 0.0);
  CHECK(f.fills.size() == 4);
}

TEST_CASE("engine: a held (NaN) position uses up gross room") {
  const Data d = hourly({10, 10, 10, 10, 20, 10}, {10, 10, 10, 10, 20, 10}, 2);
  const std::vector<double> pred = {1, -1, NAN, 1, 0, 0};
  BacktestConfig c = all_in(Execution::next_close);
  c.max_position = 0.8;
  const BacktestResult r = run_backtest(d.panel(2), pred, c);
  // Bar 1: 0.8 and -0.8 scaled to +-0.5 -> u = 50, -50.
  CHECK(r.weights[2] == doctest::Approx(0.5));
  CHECK(r.weights[3] == doctest::Approx(-0.5));
  // Bar 2: E = 1000 + 50*10 = 1500; held asset 0 is 1000/1500; room 1/3 -> asset 1 goes to +1/3.
  CHECK(r.equity[2] == doctest::Approx(1500.0));
  CHECK(r.weights[4] == doctest::Approx(2.0 / 3.0));
  CHECK(r.weights[5] == doctest::Approx(1.0 / 3.0));
  CHECK(r.gross_exposure[2] == doctest::Approx(1.0));
}

TEST_CASE("engine: rebalance band skips small drifts") {
  const Data d = hourly({100, 100, 101}, {100, 100, 101}, 1);
  const std::vector<double> pred = {1, 1, 1};
  BacktestConfig c = all_in(Execution::next_open);
  c.max_position = 0.5;
  c.rebalance_band = 0.01;
  // Bar 2: drifted weight 505/1005 is 0.0025 from 0.5 -> no trade inside a 0.01 band.
  CHECK(run_backtest(d.panel(1), pred, c).fills.size() == 1);
  c.rebalance_band = 0.0;
  CHECK(run_backtest(d.panel(1), pred, c).fills.size() == 2);
}

TEST_CASE("engine: buy-and-hold benchmark, equal weight, one entry cost") {
  const Data d = hourly({10, 20, 10, 25, 11, 30}, {10, 20, 12, 24, 13, 18}, 2);
  const std::vector<double> pred(6, 0.0);
  BacktestConfig c = all_in(Execution::next_open);
  c.cost_bps = 10;
  c.slippage_bps = 20;
  const BacktestResult r = run_backtest(d.panel(2), pred, c);
  // 500 per asset at open[1] * 1.002 * 1.001.
  const double k = 1.002 * 1.001;
  const double u0 = 500 / (10 * k), u1 = 500 / (25 * k);
  CHECK(r.benchmark_equity[0] == 1000);
  CHECK(r.benchmark_equity[1] == doctest::Approx(u0 * 12 + u1 * 24).epsilon(1e-13));
  CHECK(r.benchmark_equity[2] == doctest::Approx(u0 * 13 + u1 * 18).epsilon(1e-13));
  CHECK(r.benchmark_metrics.total_return == doctest::Approx((u0 * 13 + u1 * 18) / 1000 - 1).epsilon(1e-12));
  CHECK(r.benchmark_metrics.exposure == 1.0);
  // The strategy stayed flat (all predictions 0): no fills, flat equity.
  CHECK(r.fills.empty());
  CHECK(r.equity[2] == 1000.0);
  CHECK(std::isnan(r.metrics.sharpe));
}

TEST_CASE("engine: the last row's decision is never executed") {
  const Data d = hourly({100, 101, 102}, {101, 102, 103}, 1);
  BacktestConfig c = all_in(Execution::next_open);
  c.cost_bps = 5;
  const BacktestResult a = run_backtest(d.panel(1), std::vector<double>{0.01, 0.01, 0.01}, c);
  const BacktestResult b = run_backtest(d.panel(1), std::vector<double>{0.01, 0.01, -0.01}, c);
  CHECK(a.equity == b.equity);
  CHECK(a.weights == b.weights);
  CHECK(a.fills.size() == b.fills.size());
}

TEST_CASE("engine: no lookahead - changing the future leaves the past untouched") {
  const std::int64_t T = 6, N = 2;
  std::vector<double> open, close, pred;
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t i = 0; i < N; ++i) {
      open.push_back(100 + 3 * std::sin(1.0 * t + i));
      close.push_back(100 + 3 * std::cos(0.7 * t + 2 * i));
      pred.push_back(0.01 * std::sin(2.0 * t - i));
    }
  for (Execution e : {Execution::next_open, Execution::next_close}) {
    BacktestConfig c;
    c.execution = e;
    c.max_position = 0.5;
    c.slippage_bps = 3;
    Data d = hourly(open, close, N);
    const BacktestResult base = run_backtest(d.panel(N), pred, c);
    // Perturb bar 4 prices and rows 4..5 of predictions.
    Data d2 = d;
    std::vector<double> pred2 = pred;
    for (std::int64_t i = 0; i < N; ++i) {
      d2.open[4 * N + i] *= 1.3;
      d2.close[4 * N + i] *= 0.7;
      pred2[4 * N + i] = -pred2[4 * N + i];
      pred2[5 * N + i] = 0.05;
    }
    const BacktestResult pert = run_backtest(d2.panel(N), pred2, c);
    for (std::int64_t t = 0; t < 4; ++t) {
      CHECK(pert.equity[t] == base.equity[t]);
      for (std::int64_t i = 0; i < N; ++i) CHECK(pert.weights[t * N + i] == base.weights[t * N + i]);
    }
    CHECK(pert.equity[4] != base.equity[4]);
    for (std::size_t k = 0; k < base.fills.size() && base.fills[k].bar < 4; ++k) {
      CHECK(pert.fills[k].delta_units == base.fills[k].delta_units);
      CHECK(pert.fills[k].fill_price == base.fills[k].fill_price);
    }
  }
}

TEST_CASE("engine: per-trip P&L sums to the equity change (multi-asset, costs, shorts)") {
  const std::int64_t T = 40, N = 3;
  std::vector<double> open, close, pred;
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t i = 0; i < N; ++i) {
      open.push_back(50 + 5 * std::sin(0.3 * t + i));
      close.push_back(50 + 5 * std::sin(0.3 * t + i + 0.2));
      pred.push_back(0.02 * std::sin(0.5 * t + 1.7 * i));
    }
  const Data d = hourly(open, close, N);
  BacktestConfig c;
  c.max_position = 0.4;
  c.cost_bps = 7;
  c.slippage_bps = 4;
  const BacktestResult r = run_backtest(d.panel(N), pred, c);
  double sum = 0;
  for (const RoundTrip& rt : r.round_trips) sum += rt.pnl;
  CHECK(sum == doctest::Approx(r.equity.back() - c.initial_capital).epsilon(1e-9));
  CHECK(r.metrics.round_trips > 0);
  double costs = std::accumulate(r.costs.begin(), r.costs.end(), 0.0), fill_costs = 0;
  for (const Fill& f : r.fills) fill_costs += f.cost;
  CHECK(costs == doctest::Approx(fill_costs).epsilon(1e-12));
  // Annualization derived from hourly timestamps on the crypto calendar.
  CHECK(r.annualization == 8760.0);
}

TEST_CASE("engine: bad input throws naming the problem") {
  const Data d = hourly({100, 101, 102}, {101, 102, 103}, 1);
  const BacktestConfig c;
  CHECK_THROWS_WITH_AS(run_backtest(d.panel(1), std::vector<double>{0, 0}, c),
                       doctest::Contains("predictions has 2 values"), attnlab::Error);
  Data bad = d;
  bad.close[1] = NAN;
  CHECK_THROWS_WITH_AS(run_backtest(bad.panel(1), std::vector<double>{0, 0, 0}, c),
                       doctest::Contains("close[1, 0]"), attnlab::Error);
  bad = d;
  bad.open[2] = -1;
  CHECK_THROWS_AS(run_backtest(bad.panel(1), std::vector<double>{0, 0, 0}, c), attnlab::Error);
  CHECK_THROWS_AS(run_backtest(d.panel(1), std::vector<double>{0, INFINITY, 0}, c), attnlab::Error);
  const Data one = hourly({100}, {100}, 1);
  CHECK_THROWS_AS(run_backtest(one.panel(1), std::vector<double>{0}, c), attnlab::Error);
  bad = d;
  bad.time[2] = bad.time[1];
  CHECK_THROWS_WITH_AS(run_backtest(bad.panel(1), std::vector<double>{0, 0, 0}, c),
                       doctest::Contains("timestamps"), attnlab::Error);
  BacktestConfig neg;
  neg.cost_bps = -1;
  CHECK_THROWS_AS(run_backtest(d.panel(1), std::vector<double>{0, 0, 0}, neg), attnlab::Error);
}

TEST_CASE("engine: throughput benchmark runs") {
  // Small size here; the real measurement (1000 x 10000) is run from the CLI.
  CHECK(bench_backtest_asset_bars_per_second(50, 200, 1) > 0);
}

TEST_CASE("engine: threshold signals sized by confidence (threshold_full)") {
  BacktestConfig c;
  c.sizing = Sizing::threshold;
  c.threshold = 0.01;
  c.threshold_full = 0.02;
  c.max_position = 0.5;
  // |p| 0.015: LONG at 0.015 / 0.02 = 75 % of max_position; |p| >= 0.02: full size; |p| <= 0.01: NEUTRAL.
  CHECK(raw_target_weight(0.015, c) == doctest::Approx(0.375));
  CHECK(raw_target_weight(-0.03, c) == doctest::Approx(-0.5));
  CHECK(raw_target_weight(0.005, c) == 0.0);
  CHECK(raw_target_weight(-0.01, c) == 0.0);  // not strictly above the threshold
  c.threshold_full = 0.0;                     // full size as soon as it fires
  CHECK(raw_target_weight(0.011, c) == doctest::Approx(0.5));

  const Data d = hourly({100, 100, 100, 100}, {100, 100, 100, 100}, 1);
  c.threshold_full = 0.02;
  c.cost_bps = 0;
  c.execution = Execution::next_close;
  const BacktestResult r = run_backtest(d.panel(1), std::vector<double>{0.015, -0.03, 0.005, 0.0}, c);
  CHECK(r.weights[1] == doctest::Approx(0.375).epsilon(1e-12));
  CHECK(r.weights[2] == doctest::Approx(-0.5).epsilon(1e-12));
  CHECK(r.weights[3] == 0.0);
  c.threshold_full = 0.005;  // below the threshold: a signal could never reach full size consistently
  CHECK_THROWS_WITH_AS(run_backtest(d.panel(1), std::vector<double>{0, 0, 0, 0}, c),
                       doctest::Contains("threshold_full"), attnlab::Error);
}

TEST_CASE("engine: two assets share the capital, long one and short the other, next open, 10 bps") {
  // open/close rows: bar 0 (10, 20)/(10, 20); bar 1 (10, 20)/(11, 19); bar 2 (12, 18)/(12, 18).
  const Data d = hourly({10, 20, 10, 20, 12, 18}, {10, 20, 11, 19, 12, 18}, 2);
  BacktestConfig c = all_in(Execution::next_open);
  c.max_position = 0.5;
  c.cost_bps = 10;
  const BacktestResult r = run_backtest(d.panel(2), std::vector<double>{1, -1, 0, 0, 1, 1}, c);
  // Bar 1 at the open: E = 1000 -> +50 units of A (500), -25 of B (-500); fee 0.001 * 1000 = 1; the short's
  // proceeds pay for the long, so cash = 1000 - 1 = 999. Close: 999 + 50 * 11 - 25 * 19 = 1074.
  CHECK(r.costs[1] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(r.equity[1] == doctest::Approx(1074.0).epsilon(1e-13));
  CHECK(r.weights[2] == doctest::Approx(550.0 / 1074).epsilon(1e-12));
  CHECK(r.weights[3] == doctest::Approx(-475.0 / 1074).epsilon(1e-12));
  // Bar 2 at the open: E = 999 + 600 - 450 = 1149; both close: fee 0.001 * (600 + 450) = 1.05.
  CHECK(r.costs[2] == doctest::Approx(1.05).epsilon(1e-12));
  CHECK(r.equity[2] == doctest::Approx(1147.95).epsilon(1e-13));
  CHECK(r.turnover[1] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(r.turnover[2] == doctest::Approx(1050.0 / 1149).epsilon(1e-12));
  // Trips: A long 50 * (12 - 10) - 0.5 - 0.6 = 98.9; B short 25 * (20 - 18) - 0.5 - 0.45 = 49.05.
  REQUIRE(r.round_trips.size() == 2);
  CHECK(r.round_trips[0].side == 1);
  CHECK(r.round_trips[0].pnl == doctest::Approx(98.9).epsilon(1e-12));
  CHECK(r.round_trips[1].side == -1);
  CHECK(r.round_trips[1].pnl == doctest::Approx(49.05).epsilon(1e-12));
  const Metrics& m = r.metrics;
  CHECK(m.n_bars == 2);
  CHECK(m.total_return == doctest::Approx(0.14795).epsilon(1e-12));
  CHECK(m.exposure == doctest::Approx(0.5));
  CHECK(m.fills == 4);
  CHECK(m.round_trips == 2);
  CHECK(m.win_rate_trades == 1.0);
  CHECK(m.win_rate_bars == 1.0);
  CHECK(m.turnover_per_bar == doctest::Approx((1.0 + 1050.0 / 1149) / 2).epsilon(1e-12));
}
