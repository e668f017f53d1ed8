#include "trading/backtest/model_backtest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "autograd/functions.h"
#include "kernels/error.h"
#include "trading/backtest/latency.h"
#include "trading/report/files.h"
#include "trading/report/kv_size.h"
#include "trading/train/progress.h"
#include "trading/train/trader_checkpoint.h"

namespace attnlab::trading {

namespace bt = attnlab::backtest;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

std::string format_number(const char* spec, double v) {
  if (!std::isfinite(v)) return report::number_text(v);
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

double trading_signal(OutputType type, double output, double target_std) {
  switch (type) {
    case OutputType::regression: return output * target_std;
    case OutputType::direction: return 1.0 / (1.0 + std::exp(-output)) - 0.5;
    case OutputType::allocation: return output;
  }
  return output;
}

const char* signal_meaning(OutputType type) {
  switch (type) {
    case OutputType::regression: return "predicted log return";
    case OutputType::direction: return "P(up) - 0.5";
    case OutputType::allocation: return "the model's allocation";
  }
  return "";
}

BarPredictions predict_bars(GQATrader& model, const TraderDataset& ds,
                            const std::vector<size_t>& rows, bool progress, const std::string& label) {
  ATTNLAB_CHECK(!rows.empty(), "predict_bars: no rows to predict");
  BarPredictions p;
  p.rows = rows;
  p.prediction.reserve(rows.size());
  bt::LatencyRecorder lat;
  lat.reserve(rows.size());
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  ProgressBar bar(label, int64_t(rows.size()), progress);
  for (size_t i = 0; i < rows.size(); ++i) {
    ATTNLAB_CHECK(i == 0 || rows[i] > rows[i - 1], "predict_bars: rows must be ascending");
    // Timed as the seeds time it: building the input, the forward, reading the output back.
    const auto t0 = bt::LatencyRecorder::now();
    const Tensor x = ds.windows({rows[i]});
    const double out = model.forward(x).pred.to_vector<double>()[0];
    lat.record_since(t0);
    p.prediction.push_back(trading_signal(model.config.output_type, out, ds.target_std));
    bar.update(int64_t(i + 1), 1, "last " + format_number("%.3f ms", lat.samples_ms().back()));
  }
  bar.finish();
  model.train(was_training);
  p.latency_ms = lat.samples_ms();
  return p;
}

std::vector<size_t> split_rows(const TraderDataset& ds, const std::string& split) {
  if (split == "train") return ds.split.train;
  if (split == "val") return ds.split.val;
  if (split == "test") return ds.split.test;
  ATTNLAB_CHECK(split == "all", "unknown split '", split, "' (all, train, val, test)");
  ATTNLAB_CHECK(!ds.samples.empty() && ds.features.rows() >= 2, "split all: no sample rows");
  std::vector<size_t> rows;
  for (size_t r = ds.samples.front(); r + 1 < ds.features.rows(); ++r) rows.push_back(r);
  return rows;
}

const char* row_split(const TraderDataset& ds, size_t row) {
  auto in = [row](const std::vector<size_t>& v) { return std::binary_search(v.begin(), v.end(), row); };
  if (in(ds.split.train)) return "train";
  if (in(ds.split.val)) return "val";
  if (in(ds.split.test)) return "test";
  return "gap";
}

bt::Panel PanelData::panel() const {
  bt::Panel p;
  p.n_bars = int64_t(time.size());
  p.n_assets = 1;
  p.time_ms = time;
  p.open = open;
  p.close = close;
  p.symbols = {symbol.empty() ? std::string("asset") : symbol};
  return p;
}

ModelBacktest backtest_predictions(const data::OhlcvSeries& s, const BarPredictions& p, const bt::BacktestConfig& c) {
  ATTNLAB_CHECK(!p.rows.empty() && p.rows.size() == p.prediction.size(), "backtest_predictions: ", p.rows.size(),
                " rows and ", p.prediction.size(), " predictions");
  ModelBacktest m;
  m.first_row = p.rows.front();
  const size_t last = std::min(p.rows.back() + 1, s.size() - 1);  // the last decision fills at the next bar
  ATTNLAB_CHECK(last > m.first_row, "backtest_predictions: the decision rows ", m.first_row, "..", p.rows.back(),
                " leave no bar to trade in (the data ends at row ", s.size() - 1, ")");
  const auto b = long(m.first_row), e = long(last + 1);
  m.data.time.assign(s.ts_ms.begin() + b, s.ts_ms.begin() + e);
  m.data.open.assign(s.open.begin() + b, s.open.begin() + e);
  m.data.close.assign(s.close.begin() + b, s.close.begin() + e);
  m.data.symbol = s.symbol;
  m.predictions.assign(m.data.time.size(), kNaN);
  for (size_t i = 0; i < p.rows.size(); ++i)
    if (p.rows[i] <= last) m.predictions[p.rows[i] - m.first_row] = p.prediction[i];
  m.latency_ms = p.latency_ms;
  m.result = bt::run_backtest(m.data.panel(), m.predictions, c);
  return m;
}

report::GroupedBars kv_cache_chart(const TraderConfig& mc, int64_t seq_len) {
  const report::KvSizeTable t = report::kv_size_table(mc.n_layers, mc.n_heads, mc.n_kv_heads, mc.head_dim(), seq_len);
  report::GroupedBars g;
  g.stem = "kv_cache";
  g.title = "KV-cache size of one sequence of " + std::to_string(seq_len) + " positions (" +
            std::to_string(mc.n_layers) + " layers, " + std::to_string(mc.n_heads) + " query heads, head dim " +
            std::to_string(mc.head_dim()) + ")";
  g.ylabel = "KiB per sequence";
  g.value_format = "%.3g";
  g.categories = t.kinds;
  for (size_t v = 0; v < t.variants.size(); ++v) {
    report::Series s;
    s.label = t.variants[v].name + " (" + std::to_string(t.variants[v].kv_heads) + " KV head" +
              (t.variants[v].kv_heads > 1 ? "s" : "") + (t.variants[v].is_model ? ", this model)" : ")");
    for (double b : t.bytes[v]) s.y.push_back(b / 1024.0);
    g.series.push_back(s);
  }
  return g;
}

report::ReportTable kv_cache_table(const TraderConfig& mc, int64_t seq_len) {
  const report::KvSizeTable t = report::kv_size_table(mc.n_layers, mc.n_heads, mc.n_kv_heads, mc.head_dim(), seq_len);
  report::ReportTable tab;
  tab.title = "KV-cache bytes per sequence";
  tab.note = std::to_string(seq_len) + " positions (the lookback), " + std::to_string(mc.n_layers) +
             " layers, head dim " + std::to_string(mc.head_dim()) +
             ". f32/bf16: layers x 2 x KV heads x head dim x 4 or 2 bytes per position; "
             "int8/int4/fp8: codes plus an f16 scale per group for K and V (nn::QuantizedKVCache, no f32 window).";
  tab.header = {"attention"};
  for (const std::string& k : t.kinds) tab.header.push_back(k);
  for (size_t v = 0; v < t.variants.size(); ++v) {
    std::vector<std::string> row = {t.variants[v].name + " (" + std::to_string(t.variants[v].kv_heads) + " KV)" +
                                    (t.variants[v].is_model ? " - this model" : "")};
    for (double b : t.bytes[v]) row.push_back(std::to_string(int64_t(b)) + " B (" + report::bytes_text(b) + ")");
    tab.rows.push_back(row);
  }
  return tab;
}

std::vector<double> attention_map_at(GQATrader& model, const TraderDataset& ds, size_t row) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  std::vector<double> m =
      mean_attention_map(model.forward(ds.windows({row}), nullptr, true).attention);
  model.train(was_training);
  return m;
}

report::ReportTable forecast_table(const EvalResult& e, size_t horizon) {
  report::ReportTable t;
  t.title = "Forecast quality on the backtested bars";
  t.note = std::to_string(e.n) + " bars with a known target (the " + std::to_string(horizon) +
           "-bar forward log return). A prediction's direction is right when (prediction > 0) == (target > 0).";
  t.header = {"forecast", "MSE", "direction accuracy"};
  t.rows.push_back({"GQATrader", e.regression ? format_number("%.4e", e.mse) : "-",
                    format_number("%.2f %%", 100.0 * e.direction_accuracy)});
  t.rows.push_back({"zero forecast", format_number("%.4e", e.zero_mse), "-"});
  t.rows.push_back({"persistence (previous return)", format_number("%.4e", e.persistence_mse),
                    format_number("%.2f %%", 100.0 * e.persistence_direction_accuracy)});
  t.rows.push_back({"always up", "-", format_number("%.2f %%", 100.0 * e.always_up_accuracy)});
  return t;
}

report::ReportInput model_report_input(const ModelBacktest& m, const bt::BacktestConfig& config,
                                       const TraderConfig& model, size_t lookback,
                                       std::vector<double> attention_map, std::string title) {
  report::ReportInput in;
  in.title = std::move(title);
  in.backtest = &m.result;
  in.config = &config;
  in.latency_ms = m.latency_ms;
  in.latency_title = "Inference latency per bar (batch 1, " + std::to_string(m.latency_ms.size()) + " bars)";
  in.grouped_bars.push_back(kv_cache_chart(model, int64_t(lookback)));
  in.tables.push_back(kv_cache_table(model, int64_t(lookback)));
  if (!attention_map.empty()) {
    in.heatmap_title = "Attention, last decision window (mean over heads and layers)";
    in.heatmap_xlabel = "key position (0 = oldest bar of the window)";
    in.heatmap_ylabel = "query position";
    in.heatmap = std::move(attention_map);
    in.heatmap_rows = in.heatmap_cols = int64_t(lookback);
  }
  return in;
}

std::string backtest_summary(const bt::BacktestResult& r, const std::vector<double>& latency_ms) {
  const bt::Metrics &s = r.metrics, &b = r.benchmark_metrics;
  std::string out;
  char buf[256];
  auto line = [&](const char* name, const std::string& a, const std::string& c) {
    std::snprintf(buf, sizeof buf, "  %-24s %12s %12s\n", name, a.c_str(), c.c_str());
    out += buf;
  };
  line("", "strategy", "buy & hold");
  line("total return", format_number("%.2f%%", 100 * s.total_return), format_number("%.2f%%", 100 * b.total_return));
  line("CAGR", format_number("%.2f%%", 100 * s.cagr), format_number("%.2f%%", 100 * b.cagr));
  line("volatility (ann.)", format_number("%.2f%%", 100 * s.volatility), format_number("%.2f%%", 100 * b.volatility));
  line("Sharpe", format_number("%.3f", s.sharpe), format_number("%.3f", b.sharpe));
  line("Sortino", format_number("%.3f", s.sortino), format_number("%.3f", b.sortino));
  line("max drawdown", format_number("%.2f%%", 100 * s.max_drawdown), format_number("%.2f%%", 100 * b.max_drawdown));
  line("Calmar", format_number("%.3f", s.calmar), format_number("%.3f", b.calmar));
  line("win rate (bars r != 0)", format_number("%.2f%%", 100 * s.win_rate_bars),
       format_number("%.2f%%", 100 * b.win_rate_bars));
  line("win rate (round trips)", format_number("%.2f%%", 100 * s.win_rate_trades), "");
  line("profit factor", format_number("%.3f", s.profit_factor), format_number("%.3f", b.profit_factor));
  line("turnover (ann.)", format_number("%.2f", s.turnover_annual), format_number("%.2f", b.turnover_annual));
  line("exposure", format_number("%.2f%%", 100 * s.exposure), format_number("%.2f%%", 100 * b.exposure));
  line("fills / round trips", std::to_string(s.fills) + " / " + std::to_string(s.round_trips), "");
  std::snprintf(buf, sizeof buf, "  (%lld bars evaluated, annualization %g bars/year)\n", (long long)s.n_bars,
                r.annualization);
  out += buf;
  if (!latency_ms.empty()) {
    const bt::LatencySummary l = bt::summarize_latency(latency_ms);
    std::snprintf(buf, sizeof buf,
                  "inference latency per bar (batch 1, %lld bars): mean %.3f ms, p50 %.3f, p90 %.3f, p99 %.3f, "
                  "max %.3f\n",
                  (long long)l.count, l.mean_ms, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms);
    out += buf;
  }
  return out;
}

}  // namespace attnlab::trading
