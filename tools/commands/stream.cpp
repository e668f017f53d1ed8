// `attnlab stream`: replays a CSV as a live feed through a trained model (trading/stream/symbol_stream.h):
// each bar is one tick -> prediction, signal, latency. Prints ticks as they come (every --every-th), a
// latency summary at the end, and with --out writes signals.csv, latency.csv and a latency histogram.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "nn/layers/linear.h"
#include "tools/commands/commands.h"
#include "trading/backtest/latency.h"
#include "trading/data/csv.h"
#include "trading/report/files.h"
#include "trading/report/plot.h"
#include "trading/stream/symbol_stream.h"

namespace attnlab::cli {

void add_stream(CLI::App& app) {
  struct Args {
    std::string checkpoint, data, mode = "exact", cache = "contiguous", weights = "f32", out;
    int64_t context = 0, sinks = 4, every = 1, limit = 0;
    double threshold = 0.001;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("stream", "Replay a CSV as a live feed: per-bar prediction, signal and latency");
  cmd->add_option("--checkpoint", a->checkpoint, "model.safetensors written by `attnlab train`")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", a->data, "OHLCV CSV replayed bar by bar")->required()->check(CLI::ExistingFile);
  cmd->add_option("--mode", a->mode,
                  "exact: run the model on the last lookback bars every tick (= the batch predictions); cached: "
                  "append one position per tick to a KV cache (needs a causal model; see docs/streaming.md)")
      ->check(CLI::IsMember({"exact", "cached"}))->capture_default_str();
  cmd->add_option("--cache", a->cache, "cached mode: the KV-cache kind (" + [] {
    std::string s;
    for (const auto& k : nn::cache_kinds()) s += (s.empty() ? "" : ", ") + k;
    return s;
  }() + ")")->capture_default_str();
  cmd->add_option("--context", a->context,
                  "cached mode: positions attended (0: the lookback, or 2x for kinds that re-anchor)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--weights", a->weights,
                  "Linear weights for inference: f32, or packed bf16 / int8 (per row): 2x / 4x fewer bytes read "
                  "per tick, slightly different predictions; w8a8: int8 weights times int8-rounded activations "
                  "(integer dot products, the fastest; docs/streaming.md)")
      ->check(CLI::IsMember({"f32", "bf16", "int8", "w8a8"}))->capture_default_str();
  cmd->add_option("--sinks", a->sinks, "selective caches: first positions never evicted")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--threshold", a->threshold, "|predicted log return| above which LONG/SHORT fires")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--every", a->every, "print every n-th ready tick (0: none)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--limit", a->limit, "stop after this many bars (0: all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--out", a->out, "directory for signals.csv, latency.csv and latency_hist.png");
  cmd->callback([a] {
    const trading::TraderCheckpoint ck = trading::read_trader_checkpoint(a->checkpoint);
    std::shared_ptr<trading::GQATrader> model = trading::load_trader(ck);
    nn::pack_linear_weights(*model, kernels::parse_weight_format(a->weights.c_str()));
    const data::OhlcvSeries s = data::read_ohlcv_csv(a->data);
    trading::StreamOptions opt;
    opt.mode = trading::parse_stream_mode(a->mode);
    opt.cache = a->cache;
    opt.context = a->context;
    opt.sinks = a->sinks;
    opt.sizing.threshold = a->threshold;
    trading::SymbolStream stream(model, ck, opt);
    std::printf("streaming %s (%zu bars), mode %s%s, weights %s, lookback %lld\n", a->data.c_str(), s.size(),
                a->mode.c_str(), opt.mode == trading::StreamMode::cached ? (", cache " + a->cache).c_str() : "",
                a->weights.c_str(), (long long)stream.lookback());
    std::printf("%-14s %12s %-8s %6s %9s %9s %8s %11s\n", "time_ms", "prediction", "signal", "conf", "position",
                "latency", "context", "cache bytes");
    backtest::LatencyRecorder lat;
    std::string csv = "time_ms,ready,prediction,signal,confidence,position,latency_ms,context,cache_bytes,reanchored\n";
    const size_t n = a->limit > 0 ? std::min<size_t>(size_t(a->limit), s.size()) : s.size();
    int64_t ready = 0, reanchors = 0;
    for (size_t t = 0; t < n; ++t) {
      const trading::TickResult r = stream.process_tick(s.bar(t));
      csv += std::to_string(r.time_ms) + "," + (r.ready ? "1," : "0,") + report::number_text(r.prediction) + "," +
             backtest::signal_name(r.signal.direction) + "," + report::number_text(r.signal.confidence) + "," +
             report::number_text(r.position) + "," + report::number_text(r.latency_ms) + "," +
             std::to_string(r.context) + "," + std::to_string(r.cache_bytes) + "," + (r.reanchored ? "1" : "0") + "\n";
      if (!r.ready) continue;
      lat.record_ms(r.latency_ms);
      reanchors += r.reanchored;
      if (a->every > 0 && ready++ % a->every == 0)
        std::printf("%-14lld %12.6f %-8s %6.2f %9.4f %7.3fms %8lld %11lld%s\n", (long long)r.time_ms, r.prediction,
                    backtest::signal_name(r.signal.direction), r.signal.confidence, r.position, r.latency_ms,
                    (long long)r.context, (long long)r.cache_bytes, r.reanchored ? "  (re-anchored)" : "");
    }
    const backtest::LatencySummary ls = lat.summary();
    std::printf("\n%lld ready ticks of %zu bars; latency ms: mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f",
                (long long)ls.count, n, ls.mean_ms, ls.p50_ms, ls.p90_ms, ls.p99_ms, ls.max_ms);
    if (opt.mode == trading::StreamMode::cached) std::printf("; re-anchored %lld times", (long long)reanchors);
    std::printf("\n");
    if (a->out.empty()) return;
    const std::filesystem::path dir(a->out);
    report::write_file_atomic(dir / "signals.csv", csv);
    std::string lcsv = "tick,latency_ms\n";
    for (size_t i = 0; i < lat.samples_ms().size(); ++i)
      lcsv += std::to_string(i) + "," + report::number_text(lat.samples_ms()[i]) + "\n";
    report::write_file_atomic(dir / "latency.csv", lcsv);
    report::PlotOptions po;
    po.title = "Tick latency (" + a->mode + (opt.mode == trading::StreamMode::cached ? ", " + a->cache : "") + ")";
    po.xlabel = "milliseconds";
    po.ylabel = "ticks";
    po.vlines = {{"p50", ls.p50_ms}, {"p99", ls.p99_ms}};
    const auto p = report::histogram_plot(dir, "latency_hist", lat.samples_ms(), 40, po);
    std::printf("wrote %s, %s, %s\n", (dir / "signals.csv").c_str(), (dir / "latency.csv").c_str(),
                p.rendered ? p.png.c_str() : (p.script.string() + " (" + p.message + ")").c_str());
  });
}

}  // namespace attnlab::cli
