#include "trading/backtest/engine.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/error.h"

namespace attnlab::backtest {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void validate(const Panel& p, std::span<const double> pred, const BacktestConfig& c) {
  const std::int64_t T = p.n_bars, N = p.n_assets;
  ATTNLAB_CHECK(T >= 2, "run_backtest: need at least 2 bars (a decision at bar 0 fills at bar 1), got ", T);
  ATTNLAB_CHECK(N >= 1, "run_backtest: need at least 1 asset, got ", N);
  const std::size_t TN = static_cast<std::size_t>(T * N);
  ATTNLAB_CHECK(p.time_ms.size() == static_cast<std::size_t>(T), "run_backtest: time_ms has ",
                p.time_ms.size(), " values, expected T = ", T);
  ATTNLAB_CHECK(p.open.size() == TN, "run_backtest: open has ", p.open.size(), " values, expected T*N = ",
                T, "*", N);
  ATTNLAB_CHECK(p.close.size() == TN, "run_backtest: close has ", p.close.size(),
                " values, expected T*N = ", T, "*", N);
  ATTNLAB_CHECK(pred.size() == TN, "run_backtest: predictions has ", pred.size(),
                " values, expected T*N = ", T, "*", N);
  ATTNLAB_CHECK(p.symbols.empty() || p.symbols.size() == static_cast<std::size_t>(N), "run_backtest: ",
                p.symbols.size(), " symbols for ", N, " assets");
  for (std::int64_t t = 1; t < T; ++t)
    ATTNLAB_CHECK(p.time_ms[t] > p.time_ms[t - 1], "run_backtest: timestamps not increasing at bar ", t);
  for (std::size_t k = 0; k < TN; ++k) {
    // One branch-free test per value keeps validation cheap next to the simulation itself.
    const bool ok = std::isfinite(p.open[k]) & std::isfinite(p.close[k]) & (p.open[k] > 0) &
                    (p.close[k] > 0) & !std::isinf(pred[k]);
    if (!ok) {
      const auto t = static_cast<std::int64_t>(k) / N, i = static_cast<std::int64_t>(k) % N;
      ATTNLAB_CHECK(std::isfinite(p.open[k]) && p.open[k] > 0, "run_backtest: open[", t, ", ", i,
                    "] = ", p.open[k], " (prices must be finite and > 0)");
      ATTNLAB_CHECK(std::isfinite(p.close[k]) && p.close[k] > 0, "run_backtest: close[", t, ", ", i,
                    "] = ", p.close[k], " (prices must be finite and > 0)");
      ATTNLAB_CHECK(false, "run_backtest: prediction[", t, ", ", i, "] is infinite");
    }
  }
  ATTNLAB_CHECK(c.initial_capital > 0, "run_backtest: initial_capital must be > 0, got ", c.initial_capital);
  ATTNLAB_CHECK(std::isfinite(c.tanh_scale), "run_backtest: tanh_scale must be finite");
  ATTNLAB_CHECK(c.max_position >= 0, "run_backtest: max_position must be >= 0, got ", c.max_position);
  ATTNLAB_CHECK(c.sizing != Sizing::threshold || c.threshold > 0,
                "run_backtest: threshold must be > 0, got ", c.threshold);
  ATTNLAB_CHECK(c.sizing != Sizing::threshold || c.threshold_full == 0 || c.threshold_full >= c.threshold,
                "run_backtest: threshold_full must be 0 (full size) or >= threshold (", c.threshold, "), got ",
                c.threshold_full);
  ATTNLAB_CHECK(c.gross_limit >= 0, "run_backtest: gross_limit must be >= 0, got ", c.gross_limit);
  ATTNLAB_CHECK(c.cost_bps >= 0 && c.slippage_bps >= 0 && c.slippage_bps < 10'000,
                "run_backtest: need cost_bps >= 0 and 0 <= slippage_bps < 10000, got ", c.cost_bps, " and ",
                c.slippage_bps);
  ATTNLAB_CHECK(c.rebalance_band >= 0, "run_backtest: rebalance_band must be >= 0");
  ATTNLAB_CHECK(c.asset_limit.empty() || c.asset_limit.size() == static_cast<std::size_t>(N),
                "run_backtest: asset_limit has ", c.asset_limit.size(), " values for ", N, " assets");
  for (double l : c.asset_limit) ATTNLAB_CHECK(l >= 0, "run_backtest: asset_limit values must be >= 0");
  ATTNLAB_CHECK(c.annualization >= 0, "run_backtest: annualization must be >= 0 (0 = derive)");
}

inline double sign(double x) { return static_cast<double>((x > 0) - (x < 0)); }

// Per-asset state of the open round trip, kept in flat arrays.
struct TripBook {
  std::vector<double> pnl;
  std::vector<std::int64_t> entry;
};

}  // namespace

Signal threshold_signal(double prediction, double threshold) {
  Signal s;
  if (std::isnan(prediction)) return s;
  s.confidence = std::fabs(prediction) / threshold;
  s.direction = prediction > threshold ? 1 : (prediction < -threshold ? -1 : 0);
  return s;
}

const char* signal_name(int direction) {
  return direction > 0 ? "LONG" : (direction < 0 ? "SHORT" : "NEUTRAL");
}

double raw_target_weight(double prediction, const BacktestConfig& c) {
  if (std::isnan(prediction)) return kNaN;
  if (c.sizing == Sizing::threshold) {
    const double size = c.threshold_full > 0 ? std::min(1.0, std::fabs(prediction) / c.threshold_full) : 1.0;
    return threshold_signal(prediction, c.threshold).direction * c.max_position * size;
  }
  return std::tanh(c.tanh_scale * prediction) * c.max_position;
}

std::vector<double> buy_and_hold_equity(const Panel& p, const BacktestConfig& c) {
  const std::int64_t T = p.n_bars, N = p.n_assets;
  std::vector<double> eq(static_cast<std::size_t>(T), c.initial_capital);
  if (T < 2) return eq;
  const bool at_open = c.execution == Execution::next_open;
  const double s = c.slippage_bps * 1e-4, fee = c.cost_bps * 1e-4;
  const double* mid = (at_open ? p.open.data() : p.close.data()) + N;  // row 1
  // Spend 1/N of the capital per asset, fees included: units * mid * (1 + s) * (1 + fee) = C / N.
  std::vector<double> units(static_cast<std::size_t>(N));
  for (std::int64_t i = 0; i < N; ++i)
    units[i] = c.initial_capital / static_cast<double>(N) / (mid[i] * (1 + s) * (1 + fee));
  for (std::int64_t t = 1; t < T; ++t) {
    const double* cl = p.close.data() + t * N;
    double v = 0;
    for (std::int64_t i = 0; i < N; ++i) v += units[i] * cl[i];
    eq[t] = v;
  }
  return eq;
}

BacktestResult run_backtest(const Panel& panel, std::span<const double> pred, const BacktestConfig& cfg) {
  validate(panel, pred, cfg);
  const std::int64_t T = panel.n_bars, N = panel.n_assets;
  const std::size_t Tz = static_cast<std::size_t>(T), Nz = static_cast<std::size_t>(N);
  const bool at_open = cfg.execution == Execution::next_open;
  const bool hold_nan = cfg.nan_policy == NanPolicy::hold;
  const double slip = cfg.slippage_bps * 1e-4, fee = cfg.cost_bps * 1e-4;

  BacktestResult R;
  R.n_bars = T;
  R.n_assets = N;
  R.time_ms.assign(panel.time_ms.begin(), panel.time_ms.end());
  R.symbols = panel.symbols;
  if (R.symbols.empty())
    for (std::int64_t i = 0; i < N; ++i) R.symbols.push_back("asset" + std::to_string(i));
  R.equity.assign(Tz, cfg.initial_capital);
  R.returns.assign(Tz, 0.0);
  R.costs.assign(Tz, 0.0);
  R.turnover.assign(Tz, 0.0);
  R.gross_exposure.assign(Tz, 0.0);
  if (cfg.record_weights) R.weights.assign(Tz * Nz, 0.0);

  // Per-asset limit folded into one array so the hot loop has no branch on "limits given".
  std::vector<double> limit(Nz, std::numeric_limits<double>::infinity());
  if (!cfg.asset_limit.empty()) limit = cfg.asset_limit;

  // Flat, preallocated state: nothing below allocates per bar (the fill log grows amortised).
  std::vector<double> units(Nz, 0.0), target(Nz, 0.0);
  std::vector<unsigned char> held(Nz, 0);
  TripBook trips{std::vector<double>(Nz, 0.0), std::vector<std::int64_t>(Nz, 0)};
  double cash = cfg.initial_capital;

  for (std::int64_t t = 1; t < T; ++t) {
    const double* mid = (at_open ? panel.open.data() : panel.close.data()) + t * N;
    const double* prev_close = panel.close.data() + (t - 1) * N;
    const double* cl = panel.close.data() + t * N;
    const double* p = pred.data() + (t - 1) * N;  // decided at the previous close

    // Pass 1: equity at the execution prices and raw targets.
    double held_value = 0.0, free_gross = 0.0, value = 0.0;
    for (std::int64_t i = 0; i < N; ++i) {
      const double pos_value = units[i] * mid[i];
      value += pos_value;
      const bool no_view = std::isnan(p[i]);
      double w = no_view ? 0.0 : raw_target_weight(p[i], cfg);
      w = std::clamp(w, -limit[i], limit[i]);
      const bool h = no_view & hold_nan;
      held[i] = h;
      held_value += h ? std::fabs(pos_value) : 0.0;
      target[i] = h ? 0.0 : w;
      free_gross += h ? 0.0 : std::fabs(w);
    }
    const double E = cash + value;
    const bool bust = !(E > 0.0);
    // Gross limit: held positions keep their share, the remaining room is split by scaling targets.
    double scale = 1.0;
    if (!bust) {
      const double room = std::max(0.0, cfg.gross_limit - held_value / E);
      if (free_gross > room) scale = room / free_gross;
    }

    // Pass 2: trade to target, account costs, book round trips, value the new book at the close.
    double cost_t = 0.0, traded = 0.0, close_value = 0.0, gross_close = 0.0;
    for (std::int64_t i = 0; i < N; ++i) {
      const double u_old = units[i];
      double u_new = u_old;
      double cost = 0.0;
      const bool trade_allowed = bust || !held[i];
      if (trade_allowed) {
        const double w_tgt = bust ? 0.0 : target[i] * scale;
        const double w_cur = bust ? 0.0 : u_old * mid[i] / E;
        const bool in_band = !bust && std::fabs(w_tgt - w_cur) <= cfg.rebalance_band && cfg.rebalance_band > 0;
        if (!in_band) u_new = bust ? 0.0 : w_tgt * E / mid[i];
        const double du = u_new - u_old;
        if (du != 0.0) {
          const double side = du > 0 ? 1.0 : -1.0;
          const double fill_px = mid[i] * (1.0 + side * slip);
          const double notional_mid = std::fabs(du) * mid[i];
          cost = notional_mid * slip + std::fabs(du) * fill_px * fee;
          cash -= du * mid[i] + cost;  // = du * fill_px + commission
          cost_t += cost;
          traded += notional_mid;
          if (cfg.record_trades) {
            Fill f;
            f.bar = t;
            f.time_ms = panel.time_ms[t];
            f.asset = static_cast<std::int32_t>(i);
            f.side = side > 0 ? 1 : -1;
            f.weight_before = w_cur;
            f.weight_target = bust ? 0.0 : target[i] * scale;
            f.delta_units = du;
            f.mid_price = mid[i];
            f.fill_price = fill_px;
            f.cost = cost;
            f.predicted_return = p[i];
            R.fills.push_back(f);
          }
        }
        units[i] = u_new;
      }
      close_value += u_new * cl[i];
      gross_close += std::fabs(u_new * cl[i]);

      if (cfg.record_trades) {
        // P&L at mid: the old units over prev_close -> mid, the new units over mid -> close, minus cost.
        const double before = u_old * (mid[i] - prev_close[i]);
        const double after = u_new * (cl[i] - mid[i]);
        const double s_old = sign(u_old), s_new = sign(u_new);
        if (s_old == s_new) {
          trips.pnl[i] += before + after - cost;  // same trip (or flat -> flat, where all terms are 0)
        } else {
          // The position crossed or touched zero: |du| = |u_old| + |u_new|, so split the cost by units.
          const double a_old = std::fabs(u_old), a_new = std::fabs(u_new);
          const double close_part = cost * a_old / (a_old + a_new);
          if (s_old != 0) {
            RoundTrip rt;
            rt.asset = static_cast<std::int32_t>(i);
            rt.entry_bar = trips.entry[i];
            rt.exit_bar = t;
            rt.side = static_cast<int>(s_old);
            rt.pnl = trips.pnl[i] + before - close_part;
            R.round_trips.push_back(rt);
          }
          trips.pnl[i] = s_new != 0 ? after - (cost - close_part) : 0.0;
          trips.entry[i] = t;
        }
      }
    }

    const double eq = cash + close_value;
    R.equity[t] = eq;
    R.returns[t] = eq / R.equity[t - 1] - 1.0;
    R.costs[t] = cost_t;
    R.turnover[t] = bust ? 0.0 : traded / E;
    R.gross_exposure[t] = gross_close / eq;
    if (cfg.record_weights) {
      double* w = R.weights.data() + static_cast<std::size_t>(t) * Nz;
      const double inv = 1.0 / eq;
      for (std::int64_t i = 0; i < N; ++i) w[i] = units[i] * cl[i] * inv;
    }
  }

  if (cfg.record_trades) {
    for (std::int64_t i = 0; i < N; ++i)
      if (units[i] != 0.0) {
        RoundTrip rt;
        rt.asset = static_cast<std::int32_t>(i);
        rt.entry_bar = trips.entry[i];
        rt.exit_bar = -1;
        rt.side = units[i] > 0 ? 1 : -1;
        rt.pnl = trips.pnl[i];
        R.round_trips.push_back(rt);
      }
    // Realized return of each decision's holding period: this execution's mid to the next one's.
    for (Fill& f : R.fills) {
      const std::int64_t i = f.asset;
      if (f.bar + 1 < T)
        f.realized_return = (at_open ? panel.open : panel.close)[(f.bar + 1) * N + i] / f.mid_price - 1.0;
      else
        f.realized_return = at_open ? panel.close[f.bar * N + i] / f.mid_price - 1.0 : kNaN;
    }
  }

  // Benchmark and metrics over the evaluated bars 1..T-1.
  R.benchmark_equity = buy_and_hold_equity(panel, cfg);
  R.benchmark_returns.assign(Tz, 0.0);
  for (std::size_t t = 1; t < Tz; ++t)
    R.benchmark_returns[t] = R.benchmark_equity[t] / R.benchmark_equity[t - 1] - 1.0;
  R.annualization = cfg.annualization > 0
                        ? cfg.annualization
                        : annualization_factor(median_bar_interval_ms(panel.time_ms), cfg.market);
  const std::span<const double> eval(R.returns.data() + 1, Tz - 1);
  R.metrics = compute_metrics(eval, R.annualization);
  if (cfg.record_weights)
    fill_position_metrics(R.metrics, std::span<const double>(R.turnover.data() + 1, Tz - 1),
                          std::span<const double>(R.weights.data() + Nz, (Tz - 1) * Nz), N);
  else {
    // Without the weight matrix, exposure comes from gross exposure (non-zero iff some weight is).
    std::vector<double> g(R.gross_exposure.begin() + 1, R.gross_exposure.end());
    fill_position_metrics(R.metrics, std::span<const double>(R.turnover.data() + 1, Tz - 1), g, 1);
  }
  if (cfg.record_trades)
    fill_trade_metrics(R.metrics, static_cast<std::int64_t>(R.fills.size()), R.round_trips);
  R.benchmark_metrics =
      compute_metrics(std::span<const double>(R.benchmark_returns.data() + 1, Tz - 1), R.annualization);
  // The benchmark trades once: every asset bought at bar 1 with all the capital, then held.
  Metrics& bm = R.benchmark_metrics;
  const double entry_turnover = 1.0 / ((1.0 + slip) * (1.0 + fee));  // mid notional / capital
  bm.turnover_per_bar = entry_turnover / static_cast<double>(T - 1);
  bm.turnover_annual = bm.turnover_per_bar * R.annualization;
  bm.exposure = 1.0;
  fill_trade_metrics(bm, N, {});
  return R;
}

}  // namespace attnlab::backtest
