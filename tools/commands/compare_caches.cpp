// `attnlab compare caches`: the seeds' compare_cache_strategies. One trained model streams the same bars
// (trading/stream/symbol_stream.h) with each cache strategy — the exact window recompute, the f32 ring,
// quantized (int8, fp8, ...) and selective caches — and each stream's per-bar predictions are
// backtested on the chosen split. One table: return, Sharpe, tick latency, cache memory, and how far
// each strategy's predictions are from the model's own exact semantics, which the output names:
//   a sliding-window model (the stream objective): the full-sequence forward with its window mask over
//     every row the stream saw — computed here in one pass, so even the `exact` row is measured;
//   any other model: the `exact` stream, each tick recomputing the last lookback rows from position 0
//     (what the model was trained and validated on).
// So for a sliding-window model the quantized rows measure quantization alone.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tools/commands/commands.h"
#include "tools/commands/trader_common.h"
#include "trading/backtest/latency.h"
#include "trading/backtest/model_backtest.h"
#include "trading/report/files.h"
#include "trading/report/plot.h"
#include "trading/stream/stream_replay.h"

namespace attnlab::cli {

namespace {

struct CacheRun {
  std::string kind;
  trading::BarPredictions bars;
  int64_t max_cache_bytes = 0, reanchors = 0;
  backtest::BacktestResult result;
  backtest::LatencySummary latency;
  double deviation = 0, sign_agreement = 1;  // vs exact
};

// The strategies compared when --kinds is not given: those the model supports.
std::string default_kinds(const trading::TraderCheckpoint& ck) {
  if (ck.model.window > 0) return "exact,contiguous,paged,int8,fp8,int4";
  if (ck.model.positions == trading::PositionEncoding::rope) return "exact,contiguous,sinks,int8,fp8,int4,selective-attention";
  return "exact,contiguous,int8,fp8,int4,selective-attention";
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

void add_compare_caches(CLI::App& group) {
  struct Args {
    std::string checkpoint, data, split = "test", kinds, out;
    int64_t context = 0, sinks = 4;
    double cost_bps = 10, tanh_scale = 10, max_position = 0.1;
    bool json = false, quiet = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = group.add_subcommand("caches", "Stream one model with each KV-cache strategy and backtest each: return, "
                                             "Sharpe, latency, memory, deviation from the exact predictions");
  cmd->add_option("--checkpoint", a->checkpoint, "model.safetensors written by `attnlab train` (causal for cached kinds)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", a->data, "OHLCV CSV streamed bar by bar")->required()->check(CLI::ExistingFile);
  cmd->add_option("--split", a->split, "bars backtested: all, train, val or test (the checkpoint's split)")
      ->check(CLI::IsMember({"all", "train", "val", "test"}))->capture_default_str();
  cmd->add_option("--kinds", a->kinds, "comma-separated strategies: exact, or cache kinds (" + [] {
    std::string s;
    for (const auto& k : nn::cache_kinds()) s += (s.empty() ? "" : ", ") + k;
    return s;
  }() + "); default: for a sliding-window model exact,contiguous,paged,int8,fp8,int4; for other RoPE models "
        "exact,contiguous,sinks,int8,fp8,int4,selective-attention; with learned positions the same without sinks");
  cmd->add_option("--sinks", a->sinks, "the sinks kind: first positions kept (StreamingLLM); selective kinds: never "
                  "evicted")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--context", a->context, "cached kinds: positions attended (0: their default)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--cost-bps", a->cost_bps, "commission on traded notional, bps")->capture_default_str();
  cmd->add_option("--tanh-scale", a->tanh_scale, "k in tanh(k * prediction)")->capture_default_str();
  cmd->add_option("--max-position", a->max_position, "|weight| at full conviction")->capture_default_str();
  cmd->add_option("--out", a->out, "directory for caches.csv, caches.json and caches.png");
  cmd->add_flag("--json", a->json, "print the table as JSON");
  cmd->add_flag("--quiet", a->quiet, "no progress bars");
  cmd->callback([a] {
    const trading::TraderCheckpoint ck = trading::read_trader_checkpoint(a->checkpoint);
    std::shared_ptr<trading::GQATrader> model = trading::load_trader(ck);
    SeriesFeatures sf = load_series_features(a->data, ck.features);
    const trading::TraderDataset ds = trading::checkpoint_dataset(ck, sf.features, sf.series.close);
    const std::vector<size_t> rows = trading::split_rows(ds, a->split);
    ATTNLAB_CHECK(!rows.empty(), "compare caches: the ", a->split, " split of ", a->data, " has no bars");
    backtest::BacktestConfig bc;
    bc.cost_bps = a->cost_bps, bc.tanh_scale = a->tanh_scale, bc.max_position = a->max_position;

    std::vector<CacheRun> runs;
    for (const std::string& kind : split_list(a->kinds.empty() ? default_kinds(ck) : a->kinds)) {
      trading::StreamOptions opt;
      opt.mode = kind == "exact" ? trading::StreamMode::exact : trading::StreamMode::cached;
      opt.cache = kind == "exact" ? "contiguous" : kind;
      opt.context = a->context;
      opt.sinks = a->sinks;
      trading::SymbolStream stream(model, ck, opt);  // errors (unknown kind, non-causal model) name the cause
      const trading::StreamReplay rp = trading::replay(stream, sf.series, rows, !a->quiet && !a->json, "stream " + kind);
      CacheRun run;
      run.kind = kind;
      run.max_cache_bytes = rp.max_cache_bytes, run.reanchors = rp.reanchors;
      run.bars.rows = rp.rows;
      run.bars.latency_ms = rp.latency_ms;
      // the stream reports regression outputs in log returns; the engine sizes from trading_signal
      const bool regression = ck.model.output_type == trading::OutputType::regression;
      for (double p : rp.prediction)
        run.bars.prediction.push_back(
            trading::trading_signal(ck.model.output_type, regression ? p / ck.target_std : p, ck.target_std));
      run.latency = backtest::summarize_latency(rp.latency_ms);
      run.result = trading::backtest_predictions(sf.series, run.bars, bc).result;
      runs.push_back(std::move(run));
    }
    // Deviation from the model's exact semantics: mean |p - exact| / mean |exact|, and sign agreement. The
    // reference is the full-sequence windowed forward for a sliding-window model whose lookback covers
    // its receptive field, else the exact stream (when it ran).
    const bool windowed = trading::full_sequence_semantics(ck);
    const auto exact = std::find_if(runs.begin(), runs.end(), [](const CacheRun& r) { return r.kind == "exact"; });
    std::vector<double> reference;
    std::string reference_text = trading::exact_semantics(ck);
    if (windowed) {
      for (double out : trading::full_sequence_outputs(*model, ds, rows))
        reference.push_back(trading::trading_signal(ck.model.output_type, out, ck.target_std));
    } else if (exact != runs.end()) {
      reference = exact->bars.prediction;
    } else {
      reference_text = "none (add exact to --kinds)";
    }
    for (CacheRun& r : runs) {
      r.deviation = r.sign_agreement = std::nan("");
      if (reference.empty()) continue;
      const trading::StreamDeviation d = trading::deviation(r.bars.prediction, reference);
      r.deviation = d.relative, r.sign_agreement = d.sign_agreement;
    }

    nlohmann::json j = nlohmann::json::array();
    std::printf("\ndeviation vs %s\n", reference_text.c_str());
    std::string csv = "kind,total_return,sharpe,max_drawdown,latency_mean_ms,latency_p50_ms,latency_p99_ms,"
                      "max_cache_bytes,reanchors,deviation_vs_exact,sign_agreement_vs_exact\n";
    std::printf("\n%zu bars of the %s split, %s; backtest: tanh(%g p) x %g, %g bps\n", rows.size(), a->split.c_str(),
                a->data.c_str(), a->tanh_scale, a->max_position, a->cost_bps);
    std::printf("%-20s %10s %8s %9s %10s %10s %10s %12s %9s %10s %8s\n", "strategy", "return", "Sharpe", "max DD",
                "mean ms", "p50 ms", "p99 ms", "cache bytes", "re-anch.", "deviation", "sign =");
    for (const CacheRun& r : runs) {
      const auto& m = r.result.metrics;
      std::printf("%-20s %9.2f%% %8.3f %8.2f%% %10.3f %10.3f %10.3f %12lld %9lld %10.3g %7.1f%%\n", r.kind.c_str(),
                  100 * m.total_return, m.sharpe, 100 * m.max_drawdown, r.latency.mean_ms, r.latency.p50_ms,
                  r.latency.p99_ms, (long long)r.max_cache_bytes, (long long)r.reanchors, r.deviation,
                  100 * r.sign_agreement);
      j.push_back({{"kind", r.kind}, {"total_return", m.total_return}, {"sharpe", m.sharpe},
                   {"max_drawdown", m.max_drawdown}, {"latency_mean_ms", r.latency.mean_ms},
                   {"latency_p50_ms", r.latency.p50_ms}, {"latency_p99_ms", r.latency.p99_ms},
                   {"max_cache_bytes", r.max_cache_bytes}, {"reanchors", r.reanchors},
                   {"deviation_vs_exact", r.deviation}, {"sign_agreement_vs_exact", r.sign_agreement}});
      csv += r.kind;
      for (double v : {m.total_return, m.sharpe, m.max_drawdown, r.latency.mean_ms, r.latency.p50_ms, r.latency.p99_ms})
        csv += "," + report::number_text(v);
      csv += "," + std::to_string(r.max_cache_bytes) + "," + std::to_string(r.reanchors) + "," +
             report::number_text(r.deviation) + "," + report::number_text(r.sign_agreement) + "\n";
    }
    std::printf("deviation = mean |prediction - reference| / mean |reference|%s (docs/streaming.md)\n",
                windowed ? "" : "; cached strategies attend to a longer past than the training window once the stream "
                                "is longer than it");
    if (a->json) std::cout << nlohmann::json{{"reference", reference_text}, {"strategies", j}}.dump(2) << "\n";
    if (a->out.empty()) return;
    const std::filesystem::path dir(a->out);
    report::write_file_atomic(dir / "caches.csv", csv);
    report::write_file_atomic(dir / "caches.json",
                              nlohmann::json{{"reference", reference_text}, {"strategies", j}}.dump(2) + "\n");
    std::vector<std::string> names;
    report::Series lat{"p99 latency ms", {}}, mem{"cache KiB", {}};
    for (const CacheRun& r : runs) {
      names.push_back(r.kind);
      lat.y.push_back(r.latency.p99_ms);
      mem.y.push_back(double(r.max_cache_bytes) / 1024);
    }
    report::PlotOptions po;
    po.title = "Cache strategies: p99 tick latency and cache memory";
    po.value_format = "%.3g";
    po.width = 1200;
    const auto p = report::bar_panels(dir, "caches", names, {lat, mem}, 2, po);
    std::printf("wrote %s, %s, %s\n", (dir / "caches.csv").c_str(), (dir / "caches.json").c_str(),
                p.rendered ? p.png.c_str() : (p.script.string() + " (" + p.message + ")").c_str());
  });
}

}  // namespace attnlab::cli
