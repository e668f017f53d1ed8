// `attnlab backtest`: a trained GQATrader checkpoint + an OHLCV CSV -> per-bar predictions (timed) on a
// split -> the backtest engine -> a report directory. Also the helpers in backtest.h, which `demo` and
// `compare attention` use.
#include "tools/commands/backtest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <limits>
#include <span>

#include <nlohmann/json.hpp>

#include "autograd/functions.h"
#include "tensor/creation.h"
#include "tools/commands/commands.h"
#include "tools/commands/trader_common.h"
#include "trading/backtest/latency.h"
#include "trading/report/files.h"
#include "trading/report/kv_size.h"
#include "trading/train/progress.h"
#include "trading/train/trader_checkpoint.h"

namespace attnlab::cli {

namespace fs = std::filesystem;
namespace bt = attnlab::backtest;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string date_text(int64_t ms) {
  const std::time_t s = std::time_t(ms / 1000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  std::string out = buf;
  if (out.size() > 6 && out.compare(out.size() - 6, 6, " 00:00") == 0) out.resize(out.size() - 6);
  return out;
}

}  // namespace

std::string format_number(const char* spec, double v) {
  if (!std::isfinite(v)) return report::number_text(v);
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

double trading_signal(trading::OutputType type, double output, double target_std) {
  switch (type) {
    case trading::OutputType::regression: return output * target_std;
    case trading::OutputType::direction: return 1.0 / (1.0 + std::exp(-output)) - 0.5;
    case trading::OutputType::allocation: return output;
  }
  return output;
}

const char* signal_meaning(trading::OutputType type) {
  switch (type) {
    case trading::OutputType::regression: return "predicted log return";
    case trading::OutputType::direction: return "P(up) - 0.5";
    case trading::OutputType::allocation: return "the model's allocation";
  }
  return "";
}

BarPredictions predict_bars(trading::GQATrader& model, const trading::TraderDataset& ds,
                            const std::vector<size_t>& rows, bool causal, bool progress, const std::string& label) {
  ATTNLAB_CHECK(!rows.empty(), "predict_bars: no rows to predict");
  BarPredictions p;
  p.rows = rows;
  p.prediction.reserve(rows.size());
  bt::LatencyRecorder lat;
  lat.reserve(rows.size());
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  trading::ProgressBar bar(label, int64_t(rows.size()), progress);
  for (size_t i = 0; i < rows.size(); ++i) {
    ATTNLAB_CHECK(i == 0 || rows[i] > rows[i - 1], "predict_bars: rows must be ascending");
    // Timed as the seeds time it: building the input, the forward, reading the output back.
    const auto t0 = bt::LatencyRecorder::now();
    const Tensor x = ds.windows({rows[i]});
    const double out = model.forward(x, causal).pred.to_vector<double>()[0];
    lat.record_since(t0);
    p.prediction.push_back(trading_signal(model.config.output_type, out, ds.target_std));
    bar.update(int64_t(i + 1), 1, "last " + format_number("%.3f ms", lat.samples_ms().back()));
  }
  bar.finish();
  model.train(was_training);
  p.latency_ms = lat.samples_ms();
  return p;
}

std::vector<size_t> split_rows(const trading::TraderDataset& ds, const std::string& split) {
  if (split == "train") return ds.split.train;
  if (split == "val") return ds.split.val;
  if (split == "test") return ds.split.test;
  ATTNLAB_CHECK(split == "all", "unknown split '", split, "' (all, train, val, test)");
  ATTNLAB_CHECK(!ds.samples.empty() && ds.features.rows() >= 2, "split all: no sample rows");
  std::vector<size_t> rows;
  for (size_t r = ds.samples.front(); r + 1 < ds.features.rows(); ++r) rows.push_back(r);
  return rows;
}

const char* row_split(const trading::TraderDataset& ds, size_t row) {
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

report::GroupedBars kv_cache_chart(const trading::TraderConfig& mc, int64_t seq_len) {
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

report::ReportTable kv_cache_table(const trading::TraderConfig& mc, int64_t seq_len) {
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

std::vector<double> attention_map_at(trading::GQATrader& model, const trading::TraderDataset& ds, size_t row,
                                     bool causal) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  std::vector<double> m =
      trading::mean_attention_map(model.forward(ds.windows({row}), causal, nullptr, true).attention);
  model.train(was_training);
  return m;
}

report::ReportTable forecast_table(const trading::TraderDataset& ds, const BarPredictions& p,
                                   trading::OutputType type) {
  size_t n = 0, right = 0, up = 0;
  double se = 0, zero_se = 0;
  for (size_t i = 0; i < p.rows.size(); ++i) {
    const double y = ds.targets[p.rows[i]], f = p.prediction[i];
    if (!std::isfinite(y) || !std::isfinite(f)) continue;
    ++n;
    se += (f - y) * (f - y);
    zero_se += y * y;
    right += (f > 0) == (y > 0);
    up += y > 0;
  }
  report::ReportTable t;
  t.title = "Forecast quality on the backtested bars";
  t.note = std::to_string(n) + " bars with a known target (the " + std::to_string(ds.horizon) +
           "-bar forward log return). A prediction's direction is right when (prediction > 0) == (target > 0).";
  const bool reg = type == trading::OutputType::regression;
  t.header = {"forecast", "MSE", "direction accuracy"};
  const double dn = double(std::max<size_t>(n, 1));
  t.rows.push_back({"GQATrader", reg ? format_number("%.4e", se / dn) : "-",
                    format_number("%.2f %%", 100.0 * double(right) / dn)});
  t.rows.push_back({"zero forecast", format_number("%.4e", zero_se / dn), "-"});
  t.rows.push_back({"always up", "-", format_number("%.2f %%", 100.0 * double(up) / dn)});
  return t;
}

report::ReportInput model_report_input(const ModelBacktest& m, const bt::BacktestConfig& config,
                                       const trading::TraderConfig& model, size_t lookback,
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

// ---- the command --------------------------------------------------------------------------------------

namespace {

// Settings of `attnlab backtest` that a --config file may also give (section "backtest").
struct BacktestArgs {
  std::string split = "test", execution = "next_open", sizing = "tanh", market = "auto", title;
  double capital = 100'000, cost_bps = 10, slippage_bps = 0, tanh_scale = 10, max_position = 0.1;
  double threshold = 0.001, threshold_full = 0, gross_limit = 1, rebalance_band = 0, annualization = 0;

  nlohmann::json to_json() const {
    return {{"split", split},           {"execution", execution},       {"sizing", sizing},
            {"market", market},         {"title", title},               {"capital", capital},
            {"cost_bps", cost_bps},     {"slippage_bps", slippage_bps}, {"tanh_scale", tanh_scale},
            {"max_position", max_position}, {"threshold", threshold},   {"threshold_full", threshold_full},
            {"gross_limit", gross_limit}, {"rebalance_band", rebalance_band}, {"annualization", annualization}};
  }
  void from_json(const nlohmann::json& j) {
    j.at("split").get_to(split);
    j.at("execution").get_to(execution);
    j.at("sizing").get_to(sizing);
    j.at("market").get_to(market);
    j.at("title").get_to(title);
    for (auto [key, var] : {std::pair<const char*, double*>{"capital", &capital}, {"cost_bps", &cost_bps},
                            {"slippage_bps", &slippage_bps}, {"tanh_scale", &tanh_scale},
                            {"max_position", &max_position}, {"threshold", &threshold},
                            {"threshold_full", &threshold_full}, {"gross_limit", &gross_limit},
                            {"rebalance_band", &rebalance_band}, {"annualization", &annualization}})
      j.at(key).get_to(*var);
  }
};

// Checks the merged settings (a config file bypasses CLI11's checks) and builds the engine config.
bt::BacktestConfig engine_config(const BacktestArgs& a, std::span<const int64_t> time_ms) {
  auto one_of = [](const std::string& key, const std::string& v, std::initializer_list<const char*> ok) {
    std::string names;
    for (const char* o : ok) {
      if (v == o) return;
      names += (names.empty() ? "" : ", ") + std::string(o);
    }
    throw Error(cat("backtest: ", key, " must be one of ", names, ", got '", v, "'"));
  };
  one_of("split", a.split, {"all", "train", "val", "test"});
  one_of("execution", a.execution, {"next_open", "next_close"});
  one_of("sizing", a.sizing, {"tanh", "threshold"});
  one_of("market", a.market, {"auto", "equity", "crypto"});
  bt::BacktestConfig c;
  c.initial_capital = a.capital;
  c.execution = a.execution == "next_open" ? bt::Execution::next_open : bt::Execution::next_close;
  c.sizing = a.sizing == "tanh" ? bt::Sizing::tanh : bt::Sizing::threshold;
  c.cost_bps = a.cost_bps;
  c.slippage_bps = a.slippage_bps;
  c.tanh_scale = a.tanh_scale;
  c.max_position = a.max_position;
  c.threshold = a.threshold;
  c.threshold_full = a.threshold_full;
  c.gross_limit = a.gross_limit;
  c.rebalance_band = a.rebalance_band;
  c.annualization = a.annualization;
  c.market = a.market == "auto" ? bt::market_from_timestamps(time_ms)
                                : (a.market == "crypto" ? bt::Market::crypto : bt::Market::equity);
  return c;  // run_backtest validates the numbers and names the bad one
}

// Which of the backtested bars the model has seen, from the "data" record of the checkpoint.
struct TrainingOverlap {
  std::string summary;      // one paragraph for stdout and the report
  std::vector<int> seen;    // per decision row: 1 inside the training period, 0 not, -1 unknown
  nlohmann::json json;
};

TrainingOverlap training_overlap(const trading::TraderCheckpoint& ck, const trading::TraderDataset& ds,
                                 const std::vector<size_t>& rows, const std::string& split) {
  TrainingOverlap o;
  o.seen.assign(rows.size(), -1);
  const nlohmann::json* rec = ck.meta.contains("data") ? &ck.meta.at("data") : nullptr;
  if (!rec || !rec->contains("periods") || !rec->at("periods").contains("train")) {
    o.summary = "The checkpoint does not record its training data (written before attnlab stored it), so which of "
                "these bars it was trained on is unknown. The splits here use its fractions (train " +
                format_number("%.2f", ck.train.train_frac) + ", val " + format_number("%.2f", ck.train.val_frac) +
                "): if this is the training file, the train split is in-sample and the val split chose the "
                "checkpoint.";
    o.json = {{"known", false}};
    return o;
  }
  const bool same = rec->value("fingerprint", std::string()) == trading::data_fingerprint(ds);
  const auto& tp = rec->at("periods").at("train");
  const int64_t t0 = tp.at("first_ms").get<int64_t>(), t1 = tp.at("last_target_ms").get<int64_t>();
  size_t n_seen = 0, n_val = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t t = ds.features.ts_ms[rows[i]];
    if (same) {
      const std::string s = row_split(ds, rows[i]);
      o.seen[i] = s == "train";
      n_val += s == "val";
    } else {
      o.seen[i] = t >= t0 && t <= t1;
    }
    n_seen += size_t(o.seen[i]);
  }
  const std::string period = date_text(t0) + " .. " + date_text(t1);
  if (same) {
    o.summary = "This is the data the checkpoint was trained on (same fingerprint " + trading::data_fingerprint(ds) +
                "). Training fitted the train split (decisions and targets " + period + "); the val split chose "
                "the best epoch; the test split was never used. Of the " + std::to_string(rows.size()) + " " + split +
                " bars backtested here, " + std::to_string(n_seen) + " are training samples (in-sample) and " +
                std::to_string(n_val) + " validation samples.";
  } else {
    o.summary = "This data differs from the checkpoint's training data (fingerprint " + trading::data_fingerprint(ds) +
                " vs " + rec->value("fingerprint", std::string("?")) + "). Its training period was " + period + "; " +
                std::to_string(n_seen) + " of the " + std::to_string(rows.size()) +
                " bars backtested here fall inside it (by time; other series over the same dates may share "
                "information with the training data).";
  }
  o.json = {{"known", true}, {"same_data", same}, {"train_period_ms", {t0, t1}}, {"bars", rows.size()},
            {"bars_in_training", n_seen}, {"bars_in_validation", same ? nlohmann::json(n_val) : nlohmann::json()}};
  return o;
}

}  // namespace

void add_backtest(CLI::App& app) {
  struct Args {
    std::string checkpoint, data, out = "runs/backtest", config_file;
    BacktestArgs bt;
    bool quiet = false, no_attention = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "backtest", "Backtest a trained GQATrader checkpoint on an OHLCV CSV (per-bar inference, timed) and write a "
                  "report directory");
  cmd->add_option("--checkpoint", args->checkpoint, "model.safetensors written by `attnlab train` (or convert)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", args->data, "OHLCV CSV; features are computed as in training and scaled with the "
                  "checkpoint's normalizer")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", args->out, "Report directory (metrics.json, equity.csv, trades.csv, round_trips.csv, "
                  "latency.csv, predictions.csv, PNG plots, report.html)")->capture_default_str();
  cmd->add_option("--config", args->config_file, "JSON file with a \"backtest\" section whose keys are these options' "
                  "names with underscores (e.g. {\"backtest\": {\"cost_bps\": 5, \"execution\": \"next_close\"}}); "
                  "options given on the command line override it; unknown keys are errors")
      ->check(CLI::ExistingFile);
  auto& b = args->bt;
  std::vector<std::pair<CLI::Option*, std::string>> keyed;  // options a config file may also set
  auto opt = [&](const char* name, auto& var, const char* help, const char* key) {
    CLI::Option* o = cmd->add_option(name, var, help)->capture_default_str();
    keyed.emplace_back(o, key);
    return o;
  };
  opt("--split", b.split, "Bars to backtest, the checkpoint's chronological split of this data: test, val, train or "
      "all (every bar with a full window; the report says which bars the model was trained on)", "split")
      ->check(CLI::IsMember({"all", "train", "val", "test"}));
  opt("--execution", b.execution, "A decision at bar t's close fills at bar t+1's open (next_open) or close "
      "(next_close)", "execution")->check(CLI::IsMember({"next_open", "next_close"}));
  opt("--capital", b.capital, "Initial capital", "capital")->check(CLI::PositiveNumber);
  opt("--cost-bps", b.cost_bps, "Commission in basis points of the traded notional", "cost_bps")
      ->check(CLI::NonNegativeNumber);
  opt("--slippage-bps", b.slippage_bps, "Fill price moved this many basis points against the trader", "slippage_bps")
      ->check(CLI::Range(0.0, 9999.0));
  opt("--sizing", b.sizing, "tanh: weight = tanh(tanh_scale * pred) * max_position (the seeds); threshold: "
      "LONG/SHORT/NEUTRAL when |pred| > threshold, +-max_position (scaled by confidence with --threshold-full)",
      "sizing")->check(CLI::IsMember({"tanh", "threshold"}));
  opt("--tanh-scale", b.tanh_scale, "k in tanh(k * pred) (seeds: 10)", "tanh_scale");
  opt("--max-position", b.max_position, "|weight| at full conviction, a fraction of equity (seeds: 0.1)",
      "max_position")->check(CLI::NonNegativeNumber);
  opt("--threshold", b.threshold, "Threshold sizing: |pred| above which LONG/SHORT fires", "threshold")
      ->check(CLI::PositiveNumber);
  opt("--threshold-full", b.threshold_full, "Threshold sizing: |pred| at which a fired signal reaches max_position "
      "(size proportional to confidence); 0 = full size once fired", "threshold_full")->check(CLI::NonNegativeNumber);
  opt("--gross-limit", b.gross_limit, "Cap on the sum of |weights| (1 = no leverage)", "gross_limit")
      ->check(CLI::NonNegativeNumber);
  opt("--rebalance-band", b.rebalance_band, "Skip a trade when |target - current weight| <= band", "rebalance_band")
      ->check(CLI::NonNegativeNumber);
  opt("--market", b.market, "Calendar for annualization: equity (252 days), crypto (365 days, 24 h), or auto "
      "(crypto when any bar falls on a weekend)", "market")->check(CLI::IsMember({"auto", "equity", "crypto"}));
  opt("--annualization", b.annualization, "Bars per year for Sharpe/CAGR/...; 0 = from the median bar interval and "
      "the market", "annualization")->check(CLI::NonNegativeNumber);
  opt("--title", b.title, "Report title (default: names the checkpoint, data and split)", "title");
  cmd->add_flag("--no-attention", args->no_attention, "Leave the attention heatmap out of the report");
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  auto keyed_ptr = std::make_shared<decltype(keyed)>(std::move(keyed));

  cmd->callback([args, keyed_ptr] {
    // Settings: defaults < config file < options given on the command line.
    nlohmann::json settings = BacktestArgs{}.to_json();
    if (!args->config_file.empty()) {
      const nlohmann::json cfg = read_config_file(args->config_file, {{"backtest", settings}});
      if (cfg.contains("backtest")) settings.update(cfg.at("backtest"));
    }
    const nlohmann::json given = args->bt.to_json();
    for (const auto& [o, key] : *keyed_ptr)
      if (o->count() > 0) settings[key] = given.at(key);
    BacktestArgs a;
    a.from_json(settings);

    const trading::TraderCheckpoint ck = trading::read_trader_checkpoint(args->checkpoint);
    const std::unique_ptr<trading::GQATrader> model = trading::load_trader(ck);
    SeriesFeatures sf = load_series_features(args->data, ck.features);
    const trading::TraderDataset ds = trading::checkpoint_dataset(ck, std::move(sf.features), sf.series.close);
    const bt::BacktestConfig bc = engine_config(a, sf.series.ts_ms);
    const std::vector<size_t> rows = split_rows(ds, a.split);
    const TrainingOverlap seen = training_overlap(ck, ds, rows, a.split);
    const auto& mc = ck.model;
    std::cout << "checkpoint: " << args->checkpoint << " (" << mc.n_heads << " heads / " << mc.n_kv_heads
              << " KV heads, " << mc.n_layers << " layers, d_model " << mc.d_model << ", lookback "
              << ck.train.lookback << ", " << trading::to_string(mc.output_type)
              << (ck.train.causal ? ", causal" : "") << ")\n"
              << "data      : " << args->data << " (" << sf.series.size() << " bars; split samples train "
              << ds.split.train.size() << ", val " << ds.split.val.size() << ", test " << ds.split.test.size() << ")\n"
              << "bars      : " << a.split << ", " << rows.size() << " decisions "
              << date_text(ds.features.ts_ms[rows.front()]) << " .. " << date_text(ds.features.ts_ms[rows.back()])
              << "\ntraining  : " << seen.summary << "\n";

    const BarPredictions p = predict_bars(*model, ds, rows, ck.train.causal, !args->quiet, "inference " + a.split);
    const ModelBacktest m = backtest_predictions(sf.series, p, bc);

    std::vector<double> attn;
    if (!args->no_attention) attn = attention_map_at(*model, ds, rows.back(), ck.train.causal);
    const std::string title = !a.title.empty() ? a.title
                                               : "attnlab backtest: " + fs::path(args->checkpoint).filename().string() +
                                                     " on " + fs::path(args->data).filename().string() + " (" +
                                                     a.split + " split)";
    report::ReportInput in = model_report_input(m, bc, mc, ck.train.lookback, std::move(attn), title);
    report::ReportTable bars;
    bars.title = "Bars and training data";
    bars.note = seen.summary;
    bars.header = {"split of this data", "samples", "first decision", "last decision", "backtested"};
    for (const auto& [name, idx] : {std::pair<const char*, const std::vector<size_t>*>{"train", &ds.split.train},
                                    {"val", &ds.split.val}, {"test", &ds.split.test}})
      bars.rows.push_back({name, std::to_string(idx->size()), date_text(ds.features.ts_ms[idx->front()]),
                           date_text(ds.features.ts_ms[idx->back()]),
                           a.split == "all" || a.split == name ? "yes" : "no"});
    in.tables.insert(in.tables.begin(), forecast_table(ds, p, mc.output_type));
    in.tables.insert(in.tables.begin(), bars);

    // predictions.csv: one row per decision, with its split, whether the model saw it, signal, latency.
    std::string csv = "row,time_ms,split,in_training,prediction,target,signal,confidence,target_weight,latency_ms\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      const bt::Signal sig = bt::threshold_signal(p.prediction[i], bc.threshold);
      csv += std::to_string(rows[i]) + "," + std::to_string(ds.features.ts_ms[rows[i]]) + "," + row_split(ds, rows[i]) +
             "," + (seen.seen[i] < 0 ? std::string("unknown") : std::to_string(seen.seen[i])) + ",";
      for (double v : {p.prediction[i], ds.targets[rows[i]]}) csv += report::number_text(v) + ",";
      csv += std::string(bt::signal_name(sig.direction)) + "," + report::number_text(sig.confidence) + "," +
             report::number_text(bt::raw_target_weight(p.prediction[i], bc)) + "," +
             report::number_text(p.latency_ms[i]) + "\n";
    }
    in.extra_files.emplace_back("predictions.csv", csv);
    in.extra = {{"checkpoint", args->checkpoint}, {"data", args->data}, {"split", a.split},
                {"training_data", seen.json}, {"model", mc.to_json()}, {"train", ck.train.to_json()},
                {"signal", signal_meaning(mc.output_type)}};
    const report::ReportOutput ro = report::write_report(args->out, in);
    for (const auto& w : ro.warnings) std::cout << "warning: " << w << "\n";
    std::printf("backtest (%s, %s, %g bps + %g bps slippage, %s sizing, %s calendar):\n", a.split.c_str(),
                a.execution.c_str(), bc.cost_bps, bc.slippage_bps, a.sizing.c_str(), bt::market_name(bc.market));
    std::cout << backtest_summary(m.result, m.latency_ms)
              << "report    : " << (fs::path(args->out) / "report.html").string() << "\n";
  });
}

}  // namespace attnlab::cli
