// Vectorised-by-hand backtest engine: predictions -> target weights -> fills -> mark-to-market equity.
//
// Shapes: T bars (rows), N assets (columns); every [T, N] array is row-major (bar t, asset i at t*N + i).
//
// Timing (no lookahead): the prediction of row t is known at bar t's close; the order it causes is
// filled during bar t+1, at open[t+1] (Execution::next_open) or close[t+1] (Execution::next_close).
// The decision of the last row has no bar to execute in and is ignored. Bar 0 therefore never holds a
// position, and the evaluated return series is bars 1..T-1 (T-1 returns).
//
// Accounting: the book holds cash and units (shares/coins, negative = short). At execution the equity
// E = cash + sum_i units_i * mid_i is turned into target units_i = w_i * E / mid_i; weights then drift
// with prices until the next bar's execution rebalances them. Slippage moves the fill price against the
// trader (mid * (1 + s) for buys, mid * (1 - s) for sells); commission is cost_bps on the traded notional
// at the fill price. Equity at bar t = cash + sum_i units_i * close[t, i], exact to rounding; the per-bar
// P&L of each asset (price moves at mid minus its costs) sums to the equity change. No financing, borrow
// fees, margin or dividends are modelled.
//
// Target weight of asset i from its prediction p (Sizing::tanh, as the seeds):
//     w = tanh(tanh_scale * p) * max_position,
// or (Sizing::threshold) LONG/SHORT/NEUTRAL -> +max_position / -max_position / 0, sized by confidence when
// threshold_full > 0: w = direction * max_position * min(1, |p| / threshold_full) (0 for NEUTRAL).
// Then w is clipped to [-asset_limit_i, asset_limit_i], and if sum_i |w_i| exceeds gross_limit all
// targets are scaled down by the same factor. A NaN prediction means "no opinion": NanPolicy::hold keeps
// the current units untouched (their drifted weight still uses up gross_limit), NanPolicy::flat targets 0.
// If equity at execution is <= 0 the book is liquidated and stays flat.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "trading/backtest/metrics.h"

namespace attnlab::backtest {

enum class Execution { next_open, next_close };
enum class Sizing { tanh, threshold };
enum class NanPolicy { hold, flat };

// A discrete trading signal: direction +1 LONG, -1 SHORT, 0 NEUTRAL.
// confidence = |prediction| / threshold: >= 1 when the signal fires, < 1 for NEUTRAL (0 for NaN).
struct Signal {
  int direction = 0;
  double confidence = 0.0;
};
Signal threshold_signal(double prediction, double threshold);
const char* signal_name(int direction);  // "LONG", "SHORT", "NEUTRAL"

struct BacktestConfig {
  double initial_capital = 100'000.0;
  Sizing sizing = Sizing::tanh;
  double tanh_scale = 10.0;       // k in tanh(k * pred)
  double max_position = 0.1;      // |target weight| at full conviction, fraction of equity (seeds: 0.1)
  double threshold = 0.001;       // Sizing::threshold: |pred| above which LONG/SHORT fires
  // Sizing::threshold: |pred| at which a fired signal reaches max_position (position proportional to
  // confidence, as the seeds' docstring says); 0 = full max_position as soon as the signal fires.
  // Must be 0 or >= threshold. The seeds' RealTimePredictor (confidence = min(100 |p|, 1), LONG/SHORT
  // only when confidence > 0.6) is threshold 0.006 with threshold_full 0.01.
  double threshold_full = 0.0;
  std::vector<double> asset_limit;  // per-asset |weight| cap [N]; empty = no cap beyond max_position
  double gross_limit = 1.0;       // cap on sum_i |w_i| (1.0 = no leverage)
  Execution execution = Execution::next_open;
  double cost_bps = 10.0;         // commission on traded notional (seeds: 0.001 = 10 bps)
  double slippage_bps = 0.0;      // fill price moved this much against the trader
  double rebalance_band = 0.0;    // skip an asset's trade when |target - current weight| <= band
  NanPolicy nan_policy = NanPolicy::hold;
  double annualization = 0.0;     // bars per year; 0 = derive from the median timestamp spacing and market
  Market market = Market::crypto;
  bool record_trades = true;      // fill log and round trips (off for throughput benchmarks)
  bool record_weights = true;     // per-bar [T, N] weights
};

// Market data the engine reads. Spans are not owned: the arrays must outlive run_backtest.
struct Panel {
  std::int64_t n_bars = 0;                // T
  std::int64_t n_assets = 0;              // N
  std::span<const std::int64_t> time_ms;  // [T], strictly increasing
  std::span<const double> open;           // [T, N], finite and > 0
  std::span<const double> close;          // [T, N], finite and > 0
  std::vector<std::string> symbols;       // [N] names, or empty (then "asset<i>")
};

// One executed order.
struct Fill {
  std::int64_t bar = 0;          // execution bar
  std::int64_t time_ms = 0;      // its timestamp
  std::int32_t asset = 0;
  int side = 0;                  // +1 buy, -1 sell
  double weight_before = 0.0;    // drifted weight just before the fill (at mid)
  double weight_target = 0.0;    // target weight it trades to
  double delta_units = 0.0;      // signed units traded
  double mid_price = 0.0;        // open or close of the execution bar
  double fill_price = 0.0;       // mid moved by slippage against the trader
  double cost = 0.0;             // commission + slippage, currency
  double predicted_return = 0.0; // prediction that caused it (row bar - 1)
  // Asset return over the holding period of this decision: mid at the next execution / mid here - 1
  // (for the last executed bar with next_open: close[T-1] / open[T-1] - 1; NaN when the period is empty).
  double realized_return = 0.0;
};

struct BacktestResult {
  std::int64_t n_bars = 0, n_assets = 0;
  std::vector<std::string> symbols;       // [N]
  std::vector<std::int64_t> time_ms;      // [T]
  std::vector<double> equity;             // [T] end-of-bar equity (currency); equity[0] = initial capital
  std::vector<double> returns;            // [T] equity[t] / equity[t-1] - 1; returns[0] = 0
  std::vector<double> costs;              // [T] commission + slippage paid in bar t
  std::vector<double> turnover;           // [T] traded notional at mid / equity at execution
  std::vector<double> gross_exposure;     // [T] sum_i |w_i| at the close
  std::vector<double> weights;            // [T, N] end-of-bar weights (empty unless record_weights)
  std::vector<double> benchmark_equity;   // [T] equal-weight buy and hold, same execution convention
  std::vector<double> benchmark_returns;  // [T]
  std::vector<Fill> fills;                // empty unless record_trades
  std::vector<RoundTrip> round_trips;     // closed trips in closing order, then trips open at the end
  double annualization = 0.0;
  Metrics metrics;                        // over bars 1..T-1
  Metrics benchmark_metrics;
};

// Runs the strategy on predictions [T, N] (row t = what is known at bar t's close; NaN allowed).
// Throws attnlab::Error on inconsistent shapes, non-finite or non-positive prices, infinite predictions,
// non-increasing timestamps, T < 2 or nonsensical config values.
BacktestResult run_backtest(const Panel& panel, std::span<const double> predictions,
                            const BacktestConfig& config);

// Target weight of one asset before limits (tanh or threshold sizing); NaN for a NaN prediction.
double raw_target_weight(double prediction, const BacktestConfig& config);

// Equal-weight buy and hold: 1/N of the capital per asset bought at bar 1 (open or close per
// config.execution) paying commission and slippage once, then held. Returns equity [T].
std::vector<double> buy_and_hold_equity(const Panel& panel, const BacktestConfig& config);

// Throughput of run_backtest in asset-bars per second (best of `repeats` runs) on a synthetic
// random-walk panel of n_assets x n_bars with precomputed predictions, trade log and weights off.
double bench_backtest_asset_bars_per_second(int n_assets, int n_bars, int repeats);

}  // namespace attnlab::backtest
