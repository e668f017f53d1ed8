// Metrics against hand computations (the series are short enough to check on paper; the comments
// show the arithmetic) and the edge cases where empyrical's conventions decide the answer.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "trading/backtest/metrics.h"

using namespace attnlab::backtest;

TEST_CASE("metrics: a five-bar series against hand values") {
  // r = [1 %, -2 %, 3 %, 0, -1 %], A = 252.
  const std::vector<double> r = {0.01, -0.02, 0.03, 0.0, -0.01};
  const Metrics m = compute_metrics(r, 252.0);
  CHECK(m.n_bars == 5);
  // Equity 1.01, 0.9898, 1.019494, 1.019494, 1.00929906.
  CHECK(m.total_return == doctest::Approx(0.00929906).epsilon(1e-12));
  CHECK(m.cagr == doctest::Approx(std::pow(1.00929906, 252.0 / 5.0) - 1.0).epsilon(1e-12));
  // mean 0.002; squared deviations sum 1.48e-3; /(n-1) = 3.7e-4.
  CHECK(m.volatility == doctest::Approx(std::sqrt(3.7e-4) * std::sqrt(252.0)).epsilon(1e-12));
  CHECK(m.sharpe == doctest::Approx(0.002 / std::sqrt(3.7e-4) * std::sqrt(252.0)).epsilon(1e-12));
  CHECK(m.sharpe == doctest::Approx(1.6505527329729044).epsilon(1e-12));
  // Downside over all 5 bars: (0.02^2 + 0.01^2) / 5 = 1e-4 -> 0.01.
  CHECK(m.sortino == doctest::Approx(0.002 / 0.01 * std::sqrt(252.0)).epsilon(1e-12));
  // Peak 1.01 then 0.9898: -2 %.
  CHECK(m.max_drawdown == doctest::Approx(-0.02).epsilon(1e-12));
  CHECK(m.calmar == doctest::Approx(m.cagr / 0.02).epsilon(1e-12));
  CHECK(m.winning_bars == 2);
  CHECK(m.losing_bars == 2);
  CHECK(m.win_rate_bars == doctest::Approx(0.5));  // the flat bar is neither a win nor a loss
  CHECK(m.profit_factor == doctest::Approx(0.04 / 0.03).epsilon(1e-12));
}

TEST_CASE("metrics: risk-free rate moves Sharpe, not Sortino's target") {
  const std::vector<double> r = {0.01, -0.02, 0.03, 0.0, -0.01};
  MetricsOptions o;
  o.risk_free_per_period = 0.001;
  const Metrics m = compute_metrics(r, 252.0, o);
  // Excess mean 0.001, std unchanged by a constant shift.
  CHECK(m.sharpe == doctest::Approx(0.001 / std::sqrt(3.7e-4) * std::sqrt(252.0)).epsilon(1e-12));
  CHECK(m.sortino == doctest::Approx(0.2 * std::sqrt(252.0)).epsilon(1e-12));
  o = {};
  o.sortino_target = 0.01;
  // r - 0.01 = [0, -0.03, 0.02, -0.01, -0.02]: mean -0.008, downside sqrt((9+1+4)e-4 / 5).
  const Metrics s = compute_metrics(r, 252.0, o);
  CHECK(s.sortino == doctest::Approx(-0.008 / std::sqrt(14e-4 / 5) * std::sqrt(252.0)).epsilon(1e-12));
}

TEST_CASE("metrics: a loss on the first bar counts in the drawdown (peak starts at 1.0)") {
  const std::vector<double> r = {-0.10, 0.05, 0.02};
  const Metrics m = compute_metrics(r, 365.0);
  // The seeds' cumprod starts at 0.9 and reports 0 here.
  CHECK(m.max_drawdown == doctest::Approx(-0.10).epsilon(1e-12));
  CHECK(m.total_return == doctest::Approx(0.9 * 1.05 * 1.02 - 1.0).epsilon(1e-12));
  CHECK(m.profit_factor == doctest::Approx(0.07 / 0.10).epsilon(1e-12));
  CHECK(m.calmar == doctest::Approx(m.cagr / 0.10).epsilon(1e-12));
}

TEST_CASE("metrics: no losing bar -> Sortino and profit factor are +inf, Calmar NaN") {
  const std::vector<double> r = {0.01, 0.0, 0.02};
  const Metrics m = compute_metrics(r, 252.0);
  CHECK(std::isinf(m.sortino));
  CHECK(m.sortino > 0);
  CHECK(std::isinf(m.profit_factor));
  CHECK(m.max_drawdown == 0.0);
  CHECK(std::isnan(m.calmar));
  CHECK(m.win_rate_bars == 1.0);
  // mean 0.01, std 0.01 (deviations 0, -0.01, 0.01 -> 2e-4 / 2).
  CHECK(m.sharpe == doctest::Approx(std::sqrt(252.0)).epsilon(1e-12));
}

TEST_CASE("metrics: flat equity (all zero returns)") {
  const std::vector<double> r(10, 0.0);
  const Metrics m = compute_metrics(r, 8760.0);
  CHECK(m.total_return == 0.0);
  CHECK(m.cagr == 0.0);
  CHECK(m.volatility == 0.0);
  CHECK(std::isnan(m.sharpe));  // 0 / 0
  CHECK(std::isnan(m.sortino));
  CHECK(m.max_drawdown == 0.0);
  CHECK(std::isnan(m.calmar));
  CHECK(std::isnan(m.win_rate_bars));
  CHECK(std::isnan(m.profit_factor));
}

TEST_CASE("metrics: a single bar") {
  const std::vector<double> r = {-0.05};
  const Metrics m = compute_metrics(r, 252.0);
  CHECK(m.total_return == doctest::Approx(-0.05));
  CHECK(m.cagr == doctest::Approx(std::pow(0.95, 252.0) - 1.0).epsilon(1e-12));
  CHECK(std::isnan(m.volatility));
  CHECK(std::isnan(m.sharpe));
  CHECK(std::isnan(m.sortino));
  CHECK(m.max_drawdown == doctest::Approx(-0.05));
  CHECK(m.win_rate_bars == 0.0);
  CHECK(m.profit_factor == 0.0);
}

TEST_CASE("metrics: wiped-out equity has CAGR -100 %") {
  const std::vector<double> r = {0.1, -1.0, 0.0};
  const Metrics m = compute_metrics(r, 252.0);
  CHECK(m.total_return == doctest::Approx(-1.0));
  CHECK(m.cagr == -1.0);
  CHECK(m.max_drawdown == doctest::Approx(-1.0));
}

TEST_CASE("metrics: bad input throws attnlab::Error") {
  CHECK_THROWS_AS(compute_metrics(std::vector<double>{}, 252.0), attnlab::Error);
  CHECK_THROWS_AS(compute_metrics(std::vector<double>{0.01, NAN}, 252.0), attnlab::Error);
  CHECK_THROWS_AS(compute_metrics(std::vector<double>{0.01, INFINITY}, 252.0), attnlab::Error);
  CHECK_THROWS_AS(compute_metrics(std::vector<double>{0.01}, 0.0), attnlab::Error);
  CHECK_THROWS_WITH_AS(compute_metrics(std::vector<double>{0.01, 0.0, NAN}, 252.0),
                       doctest::Contains("return 2"), attnlab::Error);
}

TEST_CASE("metrics: position and trade fields") {
  Metrics m = compute_metrics(std::vector<double>{0.01, 0.0, -0.01, 0.0}, 252.0);
  // 4 bars x 2 assets; exposure on bars 0 and 2.
  const std::vector<double> turnover = {0.5, 0.0, 0.3, 0.2};
  const std::vector<double> w = {0.2, -0.3, 0, 0, 0, 0.1, 0, 0};
  fill_position_metrics(m, turnover, w, 2);
  CHECK(m.turnover_per_bar == doctest::Approx(0.25));
  CHECK(m.turnover_annual == doctest::Approx(0.25 * 252));
  CHECK(m.exposure == doctest::Approx(0.5));
  CHECK_THROWS_AS(fill_position_metrics(m, turnover, std::vector<double>(7), 2), attnlab::Error);

  std::vector<RoundTrip> trips(4);
  trips[0].exit_bar = 3, trips[0].pnl = 5.0;
  trips[1].exit_bar = 5, trips[1].pnl = -1.0;
  trips[2].exit_bar = 9, trips[2].pnl = 2.0;
  trips[3].exit_bar = -1, trips[3].pnl = -7.0;  // still open: not in the win rate
  fill_trade_metrics(m, 11, trips);
  CHECK(m.fills == 11);
  CHECK(m.round_trips == 3);
  CHECK(m.open_trips == 1);
  CHECK(m.win_rate_trades == doctest::Approx(2.0 / 3.0));
  fill_trade_metrics(m, 0, {});
  CHECK(std::isnan(m.win_rate_trades));
}

TEST_CASE("annualization factors") {
  const std::int64_t minute = 60'000, hour = 3'600'000, day = 86'400'000;
  CHECK(annualization_factor(day, Market::equity) == 252.0);
  CHECK(annualization_factor(day, Market::crypto) == 365.0);
  CHECK(annualization_factor(hour, Market::crypto) == 8760.0);
  CHECK(annualization_factor(minute, Market::crypto) == 525600.0);
  CHECK(annualization_factor(5 * minute, Market::crypto) == 105120.0);
  CHECK(annualization_factor(hour, Market::equity) == doctest::Approx(1638.0));
  CHECK(annualization_factor(minute, Market::equity) == doctest::Approx(98280.0));
  CHECK(annualization_factor(7 * day, Market::equity) == 52.0);
  CHECK(annualization_factor(7 * day, Market::crypto) == 52.0);
  CHECK(annualization_factor(2 * day, Market::equity) == 126.0);
  CHECK_THROWS_AS(annualization_factor(0, Market::crypto), attnlab::Error);

  const std::vector<std::int64_t> ts = {0, hour, 2 * hour, 5 * hour, 6 * hour};  // one 3 h gap
  CHECK(median_bar_interval_ms(ts) == hour);
  CHECK_THROWS_AS(median_bar_interval_ms(std::vector<std::int64_t>{0, 5, 5}), attnlab::Error);
}

TEST_CASE("drawdown curve starts from the initial capital") {
  const std::vector<double> eq = {90, 100, 80, 120, 60};
  const std::vector<double> dd = drawdown_curve(eq, 100);
  CHECK(dd[0] == doctest::Approx(-0.1));
  CHECK(dd[1] == doctest::Approx(0.0));
  CHECK(dd[2] == doctest::Approx(-0.2));
  CHECK(dd[3] == doctest::Approx(0.0));
  CHECK(dd[4] == doctest::Approx(-0.5));
}

TEST_CASE("metrics: a 12-bar golden from an independent implementation") {
  // Values from a plain-Python re-implementation of the empyrical formulas (no shared code):
  //   eq = prod(1 + r); cagr = eq ** (A / n) - 1; sd = sqrt(sum((r - mean)^2) / (n - 1));
  //   sharpe = mean / sd * sqrt(A); dd = sqrt(sum(min(r, 0)^2) / n); sortino = mean / dd * sqrt(A);
  //   mdd over the curve starting at 1.0; calmar = cagr / |mdd|; profit factor = sum(r>0) / |sum(r<0)|.
  const std::vector<double> r = {0.012, -0.004, 0.0, 0.021, -0.017, 0.003, -0.009, 0.015, 0.0, -0.002, 0.007, 0.011};
  const Metrics m = compute_metrics(r, 365.0);
  CHECK(m.total_return == doctest::Approx(0.03698126001697433).epsilon(1e-12));
  CHECK(m.cagr == doctest::Approx(2.017855579891526).epsilon(1e-12));
  CHECK(m.volatility == doctest::Approx(0.20487126408670603).epsilon(1e-12));
  CHECK(m.sharpe == doctest::Approx(5.4932870731464085).epsilon(1e-12));
  CHECK(m.sortino == doctest::Approx(10.332971457683364).epsilon(1e-12));
  CHECK(m.max_drawdown == doctest::Approx(-0.022924541000000187).epsilon(1e-12));
  CHECK(m.calmar == doctest::Approx(88.02163497587627).epsilon(1e-12));
  CHECK(m.win_rate_bars == doctest::Approx(0.6));  // 6 wins, 4 losses, 2 flat bars left out
  CHECK(m.winning_bars == 6);
  CHECK(m.losing_bars == 4);
  CHECK(m.profit_factor == doctest::Approx(2.15625).epsilon(1e-12));
}

TEST_CASE("metrics: every bar losing") {
  const std::vector<double> r = {-0.01, -0.02, -0.005};
  const Metrics m = compute_metrics(r, 252.0);
  CHECK(m.total_return == doctest::Approx(-0.0346510000000001).epsilon(1e-12));
  CHECK(m.max_drawdown == doctest::Approx(m.total_return).epsilon(1e-12));  // never above the start
  CHECK(m.sharpe == doctest::Approx(-24.24871130596428).epsilon(1e-12));
  CHECK(m.sortino == doctest::Approx(-14.0).epsilon(1e-12));  // every bar is downside
  CHECK(m.calmar == doctest::Approx(-27.367192920602836).epsilon(1e-12));
  CHECK(m.win_rate_bars == 0.0);
  CHECK(m.profit_factor == 0.0);
}

TEST_CASE("metrics: no losing bar and flat equity, every field") {
  // No losing bar: Sortino's downside deviation is 0 -> +inf; profit factor +inf; drawdown 0 -> Calmar NaN.
  const Metrics up = compute_metrics(std::vector<double>{0.02, 0.0, 0.01, 0.01}, 252.0);
  CHECK(up.total_return == doctest::Approx(1.02 * 1.01 * 1.01 - 1).epsilon(1e-12));
  CHECK(up.cagr == doctest::Approx(std::pow(1.02 * 1.01 * 1.01, 252.0 / 4) - 1).epsilon(1e-12));
  // mean 0.01; deviations 0.01, -0.01, 0, 0 -> var 2e-4 / 3.
  CHECK(up.volatility == doctest::Approx(std::sqrt(2e-4 / 3) * std::sqrt(252.0)).epsilon(1e-12));
  CHECK(up.sharpe == doctest::Approx(0.01 / std::sqrt(2e-4 / 3) * std::sqrt(252.0)).epsilon(1e-12));
  CHECK(up.sortino == INFINITY);
  CHECK(up.profit_factor == INFINITY);
  CHECK(up.max_drawdown == 0.0);
  CHECK(std::isnan(up.calmar));
  CHECK(up.win_rate_bars == 1.0);
  CHECK(up.winning_bars == 3);
  CHECK(up.losing_bars == 0);
  // Flat equity: every ratio is 0/0 = NaN (the seeds' + 1e-8 would report a Sharpe of 0).
  const Metrics flat = compute_metrics(std::vector<double>(5, 0.0), 365.0);
  CHECK(flat.total_return == 0.0);
  CHECK(flat.cagr == 0.0);
  CHECK(flat.volatility == 0.0);
  CHECK(std::isnan(flat.sharpe));
  CHECK(std::isnan(flat.sortino));
  CHECK(flat.max_drawdown == 0.0);
  CHECK(std::isnan(flat.calmar));
  CHECK(std::isnan(flat.win_rate_bars));
  CHECK(std::isnan(flat.profit_factor));
  CHECK(flat.winning_bars == 0);
  CHECK(flat.losing_bars == 0);
}

TEST_CASE("market from timestamps: a weekend bar means crypto") {
  const std::int64_t day = 86'400'000;
  const std::int64_t mon = 1'704'067'200'000;  // 2024-01-01 00:00 UTC, a Monday
  std::vector<std::int64_t> weekdays;
  for (int d = 0; d < 5; ++d) weekdays.push_back(mon + d * day);
  CHECK(market_from_timestamps(weekdays) == Market::equity);
  weekdays.push_back(mon + 5 * day);  // Saturday
  CHECK(market_from_timestamps(weekdays) == Market::crypto);
  CHECK(market_from_timestamps(std::vector<std::int64_t>{mon + 6 * day + 23 * 3'600'000}) == Market::crypto);  // Sun 23:00
  CHECK(market_from_timestamps(std::vector<std::int64_t>{0}) == Market::equity);  // 1970-01-01, a Thursday
  CHECK(market_from_timestamps(std::vector<std::int64_t>{-day}) == Market::equity);  // Wednesday
  CHECK(market_from_timestamps(std::vector<std::int64_t>{-5 * day}) == Market::crypto);  // Saturday 1969-12-27
  CHECK(std::string(market_name(Market::crypto)) == "crypto");
  CHECK(std::string(market_name(Market::equity)) == "equity");
}
