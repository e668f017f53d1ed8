#include "trading/backtest/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/error.h"

namespace attnlab::backtest {

namespace {

constexpr std::int64_t kDayMs = 86'400'000;
constexpr std::int64_t kWeekMs = 7 * kDayMs;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Two-pass mean and sample std (ddof = 1): the one-pass formula loses digits when |mean| >> std.
void mean_std(std::span<const double> x, double shift, double& mean, double& std1) {
  const double n = static_cast<double>(x.size());
  double s = 0.0;
  for (double v : x) s += v - shift;
  mean = s / n;
  if (x.size() < 2) {
    std1 = kNaN;
    return;
  }
  double ss = 0.0;
  for (double v : x) {
    const double d = v - shift - mean;
    ss += d * d;
  }
  std1 = std::sqrt(ss / (n - 1.0));
}

}  // namespace

double annualization_factor(std::int64_t bar_interval_ms, Market market) {
  ATTNLAB_CHECK(bar_interval_ms > 0, "annualization_factor: bar interval must be > 0 ms, got ",
                bar_interval_ms);
  const double ms = static_cast<double>(bar_interval_ms);
  // Weekly bars: 52 a year on both calendars (a week holds 5 equity sessions, so 252 / 7 would be wrong).
  if (bar_interval_ms % kWeekMs == 0) return 52.0 / static_cast<double>(bar_interval_ms / kWeekMs);
  if (market == Market::crypto) return 365.0 * static_cast<double>(kDayMs) / ms;
  if (bar_interval_ms % kDayMs == 0) return 252.0 / static_cast<double>(bar_interval_ms / kDayMs);
  // Intraday equity bars: only the regular session (6.5 h) produces bars.
  return 252.0 * 6.5 * 3'600'000.0 / ms;
}

Market market_from_timestamps(std::span<const std::int64_t> time_ms) {
  for (std::int64_t t : time_ms) {
    // 1970-01-01 was a Thursday: day 0 -> weekday 4 (0 = Sunday). floor division for times before 1970.
    const std::int64_t day = t >= 0 ? t / kDayMs : -((-t + kDayMs - 1) / kDayMs);
    const std::int64_t weekday = ((day + 4) % 7 + 7) % 7;
    if (weekday == 0 || weekday == 6) return Market::crypto;
  }
  return Market::equity;
}

const char* market_name(Market m) { return m == Market::crypto ? "crypto" : "equity"; }

std::int64_t median_bar_interval_ms(std::span<const std::int64_t> time_ms) {
  ATTNLAB_CHECK(time_ms.size() >= 2, "median_bar_interval_ms: need at least 2 timestamps, got ",
                time_ms.size());
  std::vector<std::int64_t> d(time_ms.size() - 1);
  for (std::size_t i = 1; i < time_ms.size(); ++i) {
    d[i - 1] = time_ms[i] - time_ms[i - 1];
    ATTNLAB_CHECK(d[i - 1] > 0, "median_bar_interval_ms: timestamps not increasing at index ", i, " (",
                  time_ms[i - 1], " then ", time_ms[i], ")");
  }
  // The lower median: an interval that really occurs (gaps such as weekends skew the mean, not this).
  std::nth_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>((d.size() - 1) / 2), d.end());
  return d[(d.size() - 1) / 2];
}

Metrics compute_metrics(std::span<const double> r, double annualization, const MetricsOptions& opt) {
  ATTNLAB_CHECK(!r.empty(), "compute_metrics: empty return series");
  ATTNLAB_CHECK(annualization > 0.0 && std::isfinite(annualization),
                "compute_metrics: annualization factor must be finite and > 0, got ", annualization);
  for (std::size_t i = 0; i < r.size(); ++i)
    ATTNLAB_CHECK(std::isfinite(r[i]), "compute_metrics: return ", i, " is not finite (", r[i], ")");

  Metrics m;
  const double n = static_cast<double>(r.size());
  const double A = annualization;
  m.n_bars = static_cast<std::int64_t>(r.size());
  m.annualization = A;

  // Equity curve from 1.0: total return, drawdown (the start counts as the first peak), wins and losses.
  double equity = 1.0, peak = 1.0, max_dd = 0.0, gains = 0.0, losses = 0.0;
  for (double v : r) {
    equity *= 1.0 + v;
    peak = std::max(peak, equity);
    max_dd = std::min(max_dd, equity / peak - 1.0);
    if (v > 0) {
      ++m.winning_bars;
      gains += v;
    } else if (v < 0) {
      ++m.losing_bars;
      losses -= v;
    }
  }
  m.total_return = equity - 1.0;
  m.max_drawdown = max_dd;
  // A fractional power of a negative wealth is undefined; a book that lost everything has CAGR -100 %.
  m.cagr = equity <= 0.0 ? -1.0 : std::pow(equity, A / n) - 1.0;

  double mean_raw, std_raw;
  mean_std(r, 0.0, mean_raw, std_raw);
  m.volatility = std_raw * std::sqrt(A);

  double mean_ex, std_ex;
  mean_std(r, opt.risk_free_per_period, mean_ex, std_ex);
  // empyrical: NaN below 2 bars; otherwise a plain division (x / 0 -> +-inf, 0 / 0 -> NaN).
  m.sharpe = r.size() < 2 ? kNaN : mean_ex / std_ex * std::sqrt(A);

  double down_sq = 0.0, mean_t = 0.0;
  for (double v : r) {
    const double d = v - opt.sortino_target;
    mean_t += d;
    if (d < 0) down_sq += d * d;
  }
  mean_t /= n;
  const double downside = std::sqrt(down_sq / n);  // over ALL bars, not only the losing ones
  m.sortino = r.size() < 2 ? kNaN : mean_t / downside * std::sqrt(A);

  m.calmar = max_dd < 0.0 ? m.cagr / -max_dd : kNaN;

  const std::int64_t active = m.winning_bars + m.losing_bars;
  m.win_rate_bars = active > 0 ? static_cast<double>(m.winning_bars) / static_cast<double>(active) : kNaN;
  if (losses > 0.0)
    m.profit_factor = gains / losses;
  else
    m.profit_factor = gains > 0.0 ? kInf : kNaN;
  return m;
}

void fill_position_metrics(Metrics& m, std::span<const double> turnover, std::span<const double> weights,
                           std::int64_t n_assets) {
  ATTNLAB_CHECK(n_assets > 0, "fill_position_metrics: n_assets must be > 0, got ", n_assets);
  const std::size_t n = turnover.size();
  ATTNLAB_CHECK(weights.size() == n * static_cast<std::size_t>(n_assets),
                "fill_position_metrics: weights has ", weights.size(), " values, expected ", n, " bars x ",
                n_assets, " assets");
  if (n == 0) return;
  double sum_turn = 0.0;
  std::int64_t exposed = 0;
  for (std::size_t t = 0; t < n; ++t) {
    sum_turn += turnover[t];
    const double* w = weights.data() + t * static_cast<std::size_t>(n_assets);
    for (std::int64_t i = 0; i < n_assets; ++i)
      if (w[i] != 0.0) {
        ++exposed;
        break;
      }
  }
  m.turnover_per_bar = sum_turn / static_cast<double>(n);
  m.turnover_annual = m.turnover_per_bar * m.annualization;
  m.exposure = static_cast<double>(exposed) / static_cast<double>(n);
}

void fill_trade_metrics(Metrics& m, std::int64_t fills, std::span<const RoundTrip> trips) {
  m.fills = fills;
  m.round_trips = 0;
  m.open_trips = 0;
  std::int64_t wins = 0;
  for (const RoundTrip& t : trips) {
    if (t.open_at_end()) {
      ++m.open_trips;
      continue;
    }
    ++m.round_trips;
    if (t.pnl > 0) ++wins;
  }
  m.win_rate_trades =
      m.round_trips > 0 ? static_cast<double>(wins) / static_cast<double>(m.round_trips) : kNaN;
}

std::vector<double> drawdown_curve(std::span<const double> equity, double start) {
  std::vector<double> dd(equity.size());
  double peak = start;
  for (std::size_t t = 0; t < equity.size(); ++t) {
    peak = std::max(peak, equity[t]);
    dd[t] = equity[t] / peak - 1.0;
  }
  return dd;
}

}  // namespace attnlab::backtest
