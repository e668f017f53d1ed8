// `attnlab backtest`: a trained GQATrader checkpoint + an OHLCV CSV -> per-bar predictions (timed) on a
// split -> the backtest engine -> a report directory. The model backtest itself is a library
// (trading/backtest/model_backtest.h), shared with `demo` and `compare`.
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <span>

#include <nlohmann/json.hpp>

#include "tools/commands/commands.h"
#include "tools/commands/trader_common.h"
#include "trading/backtest/model_backtest.h"
#include "trading/report/files.h"
#include "trading/train/trader_checkpoint.h"

namespace attnlab::cli {

namespace fs = std::filesystem;
namespace bt = attnlab::backtest;

namespace {

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
                trading::format_number("%.2f", ck.train.train_frac) + ", val " +
                trading::format_number("%.2f", ck.train.val_frac) +
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
      const std::string s = trading::row_split(ds, rows[i]);
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
    const std::vector<size_t> rows = trading::split_rows(ds, a.split);
    const TrainingOverlap seen = training_overlap(ck, ds, rows, a.split);
    const auto& mc = ck.model;
    std::cout << "checkpoint: " << args->checkpoint << " (" << mc.n_heads << " heads / " << mc.n_kv_heads
              << " KV heads, " << mc.n_layers << " layers, d_model " << mc.d_model << ", lookback "
              << ck.train.lookback << ", " << trading::to_string(mc.output_type)
              << (mc.causal ? ", causal" : "") << ")\n"
              << "data      : " << args->data << " (" << sf.series.size() << " bars; split samples train "
              << ds.split.train.size() << ", val " << ds.split.val.size() << ", test " << ds.split.test.size() << ")\n"
              << "bars      : " << a.split << ", " << rows.size() << " decisions "
              << date_text(ds.features.ts_ms[rows.front()]) << " .. " << date_text(ds.features.ts_ms[rows.back()])
              << "\ntraining  : " << seen.summary << "\n";

    const trading::BarPredictions p = trading::predict_bars(*model, ds, rows, !args->quiet, "inference " + a.split);
    const trading::ModelBacktest m = trading::backtest_predictions(sf.series, p, bc);

    std::vector<double> attn;
    if (!args->no_attention) attn = trading::attention_map_at(*model, ds, rows.back());
    const std::string title = !a.title.empty() ? a.title
                                               : "attnlab backtest: " + fs::path(args->checkpoint).filename().string() +
                                                     " on " + fs::path(args->data).filename().string() + " (" +
                                                     a.split + " split)";
    report::ReportInput in = trading::model_report_input(m, bc, mc, ck.train.lookback, std::move(attn), title);
    report::ReportTable bars;
    bars.title = "Bars and training data";
    bars.note = seen.summary;
    bars.header = {"split of this data", "samples", "first decision", "last decision", "backtested"};
    for (const auto& [name, idx] : {std::pair<const char*, const std::vector<size_t>*>{"train", &ds.split.train},
                                    {"val", &ds.split.val}, {"test", &ds.split.test}})
      bars.rows.push_back({name, std::to_string(idx->size()), date_text(ds.features.ts_ms[idx->front()]),
                           date_text(ds.features.ts_ms[idx->back()]),
                           a.split == "all" || a.split == name ? "yes" : "no"});
    const trading::EvalResult forecast = trading::score_forecast(ds, p.rows, p.prediction, mc.output_type);
    in.tables.insert(in.tables.begin(), trading::forecast_table(forecast, ds.horizon));
    in.tables.insert(in.tables.begin(), bars);

    // predictions.csv: one row per decision, with its split, whether the model saw it, signal, latency.
    std::string csv = "row,time_ms,split,in_training,prediction,target,signal,confidence,target_weight,latency_ms\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      const bt::Signal sig = bt::threshold_signal(p.prediction[i], bc.threshold);
      csv += std::to_string(rows[i]) + "," + std::to_string(ds.features.ts_ms[rows[i]]) + "," +
             trading::row_split(ds, rows[i]) + "," +
             (seen.seen[i] < 0 ? std::string("unknown") : std::to_string(seen.seen[i])) + ",";
      for (double v : {p.prediction[i], ds.targets[rows[i]]}) csv += report::number_text(v) + ",";
      csv += std::string(bt::signal_name(sig.direction)) + "," + report::number_text(sig.confidence) + "," +
             report::number_text(bt::raw_target_weight(p.prediction[i], bc)) + "," +
             report::number_text(p.latency_ms[i]) + "\n";
    }
    in.extra_files.emplace_back("predictions.csv", csv);
    in.extra = {{"checkpoint", args->checkpoint}, {"data", args->data}, {"split", a.split},
                {"training_data", seen.json}, {"model", mc.to_json()}, {"train", ck.train.to_json()},
                {"signal", trading::signal_meaning(mc.output_type)}, {"forecast", forecast.to_json()}};
    const report::ReportOutput ro = report::write_report(args->out, in);
    for (const auto& w : ro.warnings) std::cout << "warning: " << w << "\n";
    std::printf("backtest (%s, %s, %g bps + %g bps slippage, %s sizing, %s calendar):\n", a.split.c_str(),
                a.execution.c_str(), bc.cost_bps, bc.slippage_bps, a.sizing.c_str(), bt::market_name(bc.market));
    std::cout << trading::backtest_summary(m.result, m.latency_ms)
              << "report    : " << (fs::path(args->out) / "report.html").string() << "\n";
  });
}

}  // namespace attnlab::cli
