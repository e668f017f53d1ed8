// Performance metrics of a per-bar return series, defined as empyrical / quantstats define them.
//
// Input is a series r[0..N) of simple per-bar returns (equity[t] / equity[t-1] - 1) and an annualization
// factor A = bars per year (see annualization_factor). Every formula is written out in
// docs/backtesting.md together with the places where the seed chapters compute something different.
//
// Conventions worth knowing before reading a number:
//   * Ratios follow empyrical: fewer than 2 bars -> NaN; a zero denominator gives +-inf (or NaN for 0/0).
//     We do not add the seeds' "+ 1e-8" to denominators, which turns a flat series into a Sharpe of 0 and
//     a series without losses into a Sortino of ~1e8.
//   * max_drawdown is <= 0 (empyrical's sign) and is measured on an equity curve that starts at 1.0, so a
//     loss on the very first bar counts.
//   * Sortino's downside deviation averages min(r - target, 0)^2 over ALL bars (zeros for winning bars).
//   * win_rate_bars = #(r > 0) / #(r != 0): flat bars (no position, or no price change) are neither.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace attnlab::backtest {

// Which calendar the bars live on: equities trade 252 days x 6.5 hours a year, crypto trades 24/7.
enum class Market { equity, crypto };

// Bars per year for a bar interval (milliseconds):
//   equity: interval a multiple of 7 days -> 52 / weeks; a multiple of 1 day -> 252 / days;
//           intraday -> 252 * 6.5 h / interval (hourly 1638, 1-minute 98280).
//   crypto: interval a multiple of 7 days -> 52 / weeks; otherwise 365 days / interval
//           (daily 365, hourly 8760, 1-minute 525600, 5-minute 105120).
// Throws attnlab::Error for a non-positive interval.
double annualization_factor(std::int64_t bar_interval_ms, Market market);

// The calendar a series of bar timestamps (Unix ms, UTC) lives on: crypto when any bar falls on a
// Saturday or Sunday (UTC), equity otherwise. A guess for data that does not say; give it when known.
Market market_from_timestamps(std::span<const std::int64_t> time_ms);
const char* market_name(Market m);  // "equity" | "crypto"

// Median spacing of strictly increasing timestamps (ms); throws if fewer than 2 or not increasing.
std::int64_t median_bar_interval_ms(std::span<const std::int64_t> time_ms);

struct MetricsOptions {
  double risk_free_per_period = 0.0;   // subtracted from every bar's return for Sharpe
  double sortino_target = 0.0;         // per-bar required return of Sortino (empyrical's required_return)
};

// A closed (or still open) round trip of one asset: a maximal run of bars in which its position keeps
// one non-zero sign. pnl is in currency and includes the trip's share of trading costs.
struct RoundTrip {
  std::int32_t asset = 0;
  std::int64_t entry_bar = 0;   // bar whose execution opened the position
  std::int64_t exit_bar = -1;   // bar whose execution closed it; -1 while open at the end of the data
  int side = 0;                 // +1 long, -1 short
  double pnl = 0.0;             // mark-to-market P&L minus costs
  bool open_at_end() const { return exit_bar < 0; }
};

struct Metrics {
  std::int64_t n_bars = 0;        // number of returns evaluated
  double annualization = 0.0;     // A used below
  double total_return = 0.0;      // prod(1 + r) - 1
  double cagr = 0.0;              // (1 + total)^(A / n) - 1; -1 when the equity reached <= 0
  double volatility = 0.0;        // std(r, ddof=1) * sqrt(A)
  double sharpe = 0.0;            // mean(r - rf) / std(r - rf, ddof=1) * sqrt(A)
  double sortino = 0.0;           // mean(r - target) / sqrt(mean(min(r - target, 0)^2)) * sqrt(A)
  double max_drawdown = 0.0;      // min over t of equity[t] / running_peak[t] - 1 (<= 0), peak starts at 1
  double calmar = 0.0;            // cagr / |max_drawdown|; NaN when max_drawdown == 0
  double win_rate_bars = 0.0;     // #(r > 0) / #(r != 0); NaN when every bar is flat
  std::int64_t winning_bars = 0;  // #(r > 0)
  std::int64_t losing_bars = 0;   // #(r < 0)
  double profit_factor = 0.0;     // sum(r > 0) / |sum(r < 0)|; inf with gains and no loss, NaN if neither
  // Position-based fields (fill_position_metrics); zero until filled.
  double turnover_per_bar = 0.0;  // mean over bars of sum_i |traded notional_i| / equity before the trade
  double turnover_annual = 0.0;   // turnover_per_bar * A
  double exposure = 0.0;          // fraction of bars ending with any non-zero position
  // Trade-log fields (fill_trade_metrics); zero until filled.
  std::int64_t fills = 0;         // executed orders (one per asset per rebalance that traded)
  std::int64_t round_trips = 0;   // closed round trips
  std::int64_t open_trips = 0;    // round trips still open at the end (not in win_rate_trades)
  double win_rate_trades = 0.0;   // #(closed trips with pnl > 0) / #closed trips; NaN when none closed
};

// Return-based metrics. Throws attnlab::Error on an empty series, a non-finite return (naming its index)
// or A <= 0.
Metrics compute_metrics(std::span<const double> returns, double annualization,
                        const MetricsOptions& options = {});

// Turnover and exposure from per-bar traded turnover [n] and end-of-bar weights [n, n_assets]
// (row-major). Both cover the same n bars as the returns given to compute_metrics.
void fill_position_metrics(Metrics& m, std::span<const double> turnover, std::span<const double> weights,
                           std::int64_t n_assets);

// Fill count and per-trade win rate from round trips.
void fill_trade_metrics(Metrics& m, std::int64_t fills, std::span<const RoundTrip> trips);

// Drawdown curve of an equity curve: dd[t] = equity[t] / max(start, equity[0..t]) - 1 (<= 0).
std::vector<double> drawdown_curve(std::span<const double> equity, double start);

}  // namespace attnlab::backtest
