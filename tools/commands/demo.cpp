// `attnlab demo` (the `make run` job): the embedded S&P 500 daily CSV -> features -> a small GQATrader
// (d_model 32, 4 heads, 2 KV heads, 2 layers, lookback 32) -> test-split evaluation against naive
// baselines -> the test split run bar by bar (timed batch-1 inference) -> backtest (next-open execution,
// 10 bps) -> report directory (metrics, equity/trades/latency CSVs, plots incl. latency, KV-cache sizes
// and attention, report.html). Then the streaming part (skip with --no-stream): a stream-trained model of
// the same shape (a sliding window of 16 keys per layer, trading/train/stream_objective.h) streams the
// data bar by bar twice — exact (recompute its lookback every tick) and cached (one position per tick
// into a ring of 16 keys per layer) — printed side by side with the deviation, both also measured against
// its full-sequence forward; <out>/stream/ holds its checkpoint, stream_vs_exact.csv and a plot.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>

#include <nlohmann/json.hpp>

#include "tensor/creation.h"
#include "tools/commands/commands.h"
#include "tools/commands/trader_common.h"
#include "trading/backtest/engine.h"
#include "trading/backtest/latency.h"
#include "trading/backtest/model_backtest.h"
#include "trading/data/timeutil.h"
#include "trading/report/files.h"
#include "trading/report/plot.h"
#include "trading/report/report.h"
#include "trading/stream/stream_replay.h"
#include "trading/train/evaluate.h"
#include "trading/train/trainer.h"

namespace attnlab::cli {

namespace {

// The demo's streaming part: a stream-trained model (same shape, window 16, so its receptive field of 31
// rows fits in the lookback of 32) streamed exact and cached over the test split, side by side.
void stream_demo(const SeriesFeatures& sf, const trading::TraderDataset& ds, trading::TraderConfig mc,
                 trading::TrainConfig tc, int epochs, const std::filesystem::path& dir, bool quiet) {
  namespace fs = std::filesystem;
  mc.positions = trading::PositionEncoding::rope;
  mc.window = 16;
  mc.causal = true;
  tc.objective = "stream", tc.epochs = epochs, tc.patience = 0, tc.out_dir = dir.string();
  std::cout << "\nstreaming: a stream-trained GQATrader (same shape, RoPE, a sliding window of " << mc.window
            << " keys per layer, receptive field " << mc.receptive_field() << " rows; " << epochs
            << " epochs of segments with a loss at every position)\n";
  manual_seed(tc.seed);
  trading::GQATrader model(mc);
  const trading::TrainResult r = trading::train_trader(model, ds, tc);
  const trading::EvalResult e = trading::evaluate(model, ds, ds.split.test);
  std::printf("trained: %lld steps, best epoch %d (val loss %.4f), %.1f s; test MSE %.4e, direction %.2f%%\n",
              (long long)r.steps, r.best_epoch, r.best_val_loss, r.seconds, e.mse, 100 * e.direction_accuracy);
  const trading::TraderCheckpoint ck = trading::read_trader_checkpoint(r.checkpoint);
  std::shared_ptr<trading::GQATrader> m = trading::load_trader(ck);
  trading::StreamOptions exact_opt, cached_opt;
  cached_opt.mode = trading::StreamMode::cached;  // a contiguous ring of W keys per layer, the fused path
  trading::SymbolStream exact(m, ck, exact_opt), cached(m, ck, cached_opt);
  const std::vector<size_t>& rows = ds.split.test;
  const trading::StreamReplay re = trading::replay(exact, sf.series, rows, !quiet, "exact stream");
  const trading::StreamReplay rc = trading::replay(cached, sf.series, rows, !quiet, "cached stream");
  std::vector<double> full = trading::full_sequence_outputs(*m, ds, rows);
  for (double& v : full) v *= ck.target_std;  // the streams report log returns
  std::printf("%-12s %15s %15s %12s\n", "test bar", "exact stream", "cached stream", "|difference|");
  double worst = 0;
  for (size_t i = 0; i < rows.size(); ++i) worst = std::max(worst, std::fabs(rc.prediction[i] - re.prediction[i]));
  for (size_t i = rows.size() - std::min<size_t>(8, rows.size()); i < rows.size(); ++i)
    std::printf("%-12s %15.8f %15.8f %12.3g\n", data::format_time_iso(sf.series.ts_ms[rows[i]]).substr(0, 10).c_str(), re.prediction[i],
                rc.prediction[i], std::fabs(rc.prediction[i] - re.prediction[i]));
  const trading::StreamDeviation d = trading::deviation(rc.prediction, re.prediction);
  const trading::StreamDeviation de = trading::deviation(re.prediction, full), dc = trading::deviation(rc.prediction, full);
  const backtest::LatencySummary le = backtest::summarize_latency(re.latency_ms), lc = backtest::summarize_latency(rc.latency_ms);
  std::printf("cached vs exact over %zu test bars: deviation %.3g (mean |cached - exact| / mean |exact|), largest "
              "|difference| %.3g, same sign %.1f%%, %lld re-anchors\n",
              rows.size(), d.relative, worst, 100 * d.sign_agreement, (long long)rc.reanchors);
  std::printf("against the full-sequence forward (the model's function): exact %.3g, cached %.3g (float rounding)\n",
              de.relative, dc.relative);
  std::printf("tick latency: exact p50 %.3f ms / p99 %.3f ms (%lld-row forward), cached p50 %.3f ms / p99 %.3f ms\n",
              le.p50_ms, le.p99_ms, (long long)ck.train.lookback, lc.p50_ms, lc.p99_ms);
  std::string csv = "time_ms,exact,cached,full_sequence\n";
  std::vector<double> x;
  for (size_t i = 0; i < rows.size(); ++i) {
    csv += std::to_string(sf.series.ts_ms[rows[i]]) + "," + report::number_text(re.prediction[i]) + "," +
           report::number_text(rc.prediction[i]) + "," + report::number_text(full[i]) + "\n";
    x.push_back(double(sf.series.ts_ms[rows[i]]));
  }
  report::write_file_atomic(dir / "stream_vs_exact.csv", csv);
  report::PlotOptions po;
  po.title = "Stream-trained model, test split: exact vs cached stream (deviation " + trading::format_number("%.2g", d.relative) + ")";
  po.ylabel = "predicted log return";
  po.x_is_time_ms = true;
  const report::PlotResult p = report::line_plot(dir, "stream_vs_exact", x, {{"exact", re.prediction}, {"cached", rc.prediction}}, po);
  std::vector<double> diff;
  for (size_t i = 0; i < rows.size(); ++i) diff.push_back(std::max(std::fabs(rc.prediction[i] - re.prediction[i]), 1e-12));
  po.title = "|cached - exact| per test bar (log scale; 1e-12 = equal)";
  po.ylabel = "|difference| (log return)";
  po.log_y = true;
  const report::PlotResult pd = report::line_plot(dir, "stream_difference", x, {{"|cached - exact|", diff}}, po);
  std::cout << "stream    : " << (dir / "stream_vs_exact.csv").string() << ", "
            << (p.rendered ? p.png.string() : p.script.string() + " (" + p.message + ")") << ", "
            << (pd.rendered ? pd.png.string() : pd.script.string() + " (" + pd.message + ")") << "\n";
}

}  // namespace

void add_demo(CLI::App& app) {
  struct Args {
    std::string out = "runs/demo";
    std::string data = embedded_data_csv();
    int epochs = 4;
    uint64_t seed = 0;
    std::string backend = "flash";
    double tanh_scale = 100.0, max_position = 1.0;
    int stream_epochs = 20;
    bool quiet = false, no_stream = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("demo", "Train a small GQA trader on S&P 500 daily bars, evaluate, backtest, report");
  cmd->add_option("--out", args->out, "Output directory (checkpoint, history, report/)")->capture_default_str();
  cmd->add_option("--data", args->data, "OHLCV CSV")->capture_default_str()->check(CLI::ExistingFile);
  cmd->add_option("--epochs", args->epochs, "Training epochs")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->seed, "Random seed")->capture_default_str();
  cmd->add_option("--backend", args->backend, "Attention backend")->capture_default_str()
      ->check(CLI::IsMember({"flash", "math", "reference"}));
  cmd->add_option("--tanh-scale", args->tanh_scale, "Backtest sizing: weight = tanh(scale * pred) * max_position")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--max-position", args->max_position, "Backtest: |weight| at full conviction")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--stream-epochs", args->stream_epochs, "Epochs of the stream-trained model of the streaming part")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_flag("--no-stream", args->no_stream, "Skip the streaming part (exact vs cached stream of a stream-trained "
                "model)");
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  cmd->callback([args] {
    namespace fs = std::filesystem;
    const auto t0 = std::chrono::steady_clock::now();
    SeriesFeatures sf = load_series_features(args->data);
    trading::TrainConfig tc;
    tc.lookback = 32;
    tc.horizon = 1;
    tc.epochs = args->epochs;
    tc.batch_size = 32;
    tc.lr = 1e-3;
    tc.patience = 3;
    tc.seed = args->seed;
    tc.out_dir = args->out;
    tc.progress = !args->quiet;
    const trading::TraderDataset ds = trading::make_dataset(sf.features, sf.series.close, tc.lookback, tc.horizon);
    trading::TraderConfig mc;
    mc.input_dim = int64_t(ds.n_features());
    mc.d_model = 32;
    mc.n_heads = 4;
    mc.n_kv_heads = 2;
    mc.n_layers = 2;
    mc.d_ff = 64;
    mc.max_seq_len = int64_t(tc.lookback);
    mc.dropout = 0.1;
    mc.backend = trading::parse_backend(args->backend);
    std::cout << "data   : " << args->data << " (" << sf.series.size() << " daily bars, " << ds.n_features()
              << " features)\n"
              << "samples: train " << ds.split.train.size() << ", val " << ds.split.val.size() << ", test "
              << ds.split.test.size() << " (chronological, gap = horizon)\n";
    manual_seed(tc.seed);
    trading::GQATrader model(mc);
    std::cout << "model  : GQATrader d_model 32, 4 heads / 2 KV heads, 2 layers, " << model.num_parameters()
              << " parameters; KV cache " << model.kv_cache_bytes_per_token(4) << " B/position (f32)\n";
    const trading::TrainResult r = trading::train_trader(model, ds, tc);
    const trading::EvalResult e = trading::evaluate(model, ds, ds.split.test);
    std::cout << "trained: " << r.steps << " steps, best epoch " << r.best_epoch << " (val loss " << r.best_val_loss
              << "), " << r.seconds << " s\n"
              << "test split (next-day log return):\n" << e.table();

    // Backtest of the test split, the model run bar by bar (batch 1, timed) as a live trader would.
    backtest::BacktestConfig bc;
    bc.execution = backtest::Execution::next_open;
    bc.cost_bps = 10.0;
    bc.market = backtest::Market::equity;
    bc.tanh_scale = args->tanh_scale;
    bc.max_position = args->max_position;
    const trading::BarPredictions bars =
        trading::predict_bars(model, ds, ds.split.test, !args->quiet, "backtest inference");
    const trading::ModelBacktest mb = trading::backtest_predictions(sf.series, bars, bc);
    const backtest::BacktestResult& bt = mb.result;

    report::ReportInput in =
        trading::model_report_input(mb, bc, mc, tc.lookback, trading::attention_map_at(model, ds, ds.split.test.back()),
                                    "attnlab demo: GQATrader on S&P 500 daily (test split)");
    in.tables.insert(in.tables.begin(), trading::forecast_table(e, ds.horizon));  // the test split = these bars
    in.extra = {{"evaluation", e.to_json()},
                {"model", mc.to_json()},
                {"train", tc.to_json()},
                {"training", {{"best_epoch", r.best_epoch}, {"best_val_loss", r.best_val_loss}, {"steps", r.steps},
                              {"seconds", r.seconds}}}};
    const fs::path rdir = fs::path(args->out) / "report";
    const report::ReportOutput ro = report::write_report(rdir, in);
    for (const auto& w : ro.warnings) std::cout << "warning: " << w << "\n";
    std::printf("backtest (test split, next-open, 10 bps, weight = tanh(%g * pred) * %g):\n", bc.tanh_scale,
                bc.max_position);
    std::cout << trading::backtest_summary(bt, mb.latency_ms);
    if (!args->no_stream) stream_demo(sf, ds, mc, tc, args->stream_epochs, fs::path(args->out) / "stream", args->quiet);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "checkpoint: " << r.checkpoint << "\n"
              << "history   : " << (fs::path(args->out) / "history.csv").string() << ", "
              << (fs::path(args->out) / "loss_curve.png").string() << "\n"
              << "demo took " << secs << " s\n"
              << "report    : " << (rdir / "report.html").string() << "\n";
  });
}

}  // namespace attnlab::cli
