// `attnlab compare objectives`: the quality comparison of issue 22. Two causal RoPE GQATraders of the same
// shape on the same data, split, normalizer, seed and training compute:
//   window — full causal attention, the seed's objective: one target per lookback-row window;
//   stream — a sliding window of W keys per layer, the stream objective (trading/train/stream_objective.h):
//            segments of lookback - 1 + n rows with a loss at each of their last n positions.
// Both use the same lookback L (the stream model's receptive field n_layers (W - 1) + 1 fits in it, so its
// windows compute its exact function), so they see the same samples. Training compute is matched in
// estimated FLOPs (forward + backward = 3x the forward's multiply-adds x 2, attention over the keys each
// position sees): the window model trains --epochs epochs, the stream model as many as cost the same.
// Reported per model: validation loss (its own semantics), the split's MSE and direction accuracy, a
// next-open backtest, and its cached stream (a contiguous ring) against its own exact semantics with
// the tick latency of both modes.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "tensor/creation.h"
#include "tools/commands/commands.h"
#include "tools/commands/trader_common.h"
#include "trading/backtest/latency.h"
#include "trading/backtest/model_backtest.h"
#include "trading/report/files.h"
#include "trading/report/plot.h"
#include "trading/stream/stream_replay.h"
#include "trading/train/stream_objective.h"
#include "trading/train/evaluate.h"
#include "trading/train/trainer.h"

namespace attnlab::cli {

namespace {

namespace fs = std::filesystem;
namespace bt = attnlab::backtest;

struct Args {
  std::string data = embedded_data_csv();
  std::string out, split = "test";
  int epochs = 2;
  uint64_t seed = 0;
  int64_t d_model = 32, n_heads = 4, n_kv_heads = 2, n_layers = 2, d_ff = 64, window = 0;
  size_t lookback = 32, batch_size = 32, stream_targets = 64;
  double lr = 1e-3, dropout = 0.1;
  double cost_bps = 10, tanh_scale = 100, max_position = 1;
  bool json = false, quiet = false;
};

struct Result {
  std::string objective;
  int64_t window = 0;
  int epochs = 0, best_epoch = 0;
  int64_t steps = 0;
  double train_gflop = 0, train_s = 0, val_loss = 0, mse = 0, direction = 0, sharpe = 0, total_return = 0;
  double cached_deviation = 0, cached_sign = 0;
  bt::LatencySummary exact_tick, cached_tick;
  std::string checkpoint, reference;
};

// Multiply-adds of one position's forward: the projections, the feed-forward, input and head, and
// attention over `keys` keys (scores and the weighted sum).
double forward_macs(const trading::TraderConfig& c, double keys) {
  const double C = double(c.d_model), D = double(c.head_dim()), H = double(c.n_heads), Hkv = double(c.n_kv_heads);
  const double per_layer = C * (H * D + 2 * Hkv * D) + C * C + 2 * C * double(c.d_ff) + 2 * H * D * keys;
  return double(c.n_layers) * per_layer + double(c.input_dim) * C + C * double(c.n_outputs);
}

// Training FLOPs of one epoch: 2 FLOPs per multiply-add, forward + backward = 3 forwards.
double epoch_flops(const trading::TraderConfig& c, const trading::TrainConfig& t, const trading::TraderDataset& ds) {
  const double L = double(ds.lookback);
  if (t.objective == "window")  // every sample: a causal window of L rows, on average (L + 1) / 2 keys
    return 6.0 * double(ds.split.train.size()) * L * forward_macs(c, (L + 1) / 2);
  // segments of L - 1 + n rows; a position sees min(its index + 1, W) keys
  const double rows = L - 1 + double(t.stream_targets), W = double(c.window);
  const double keys = (std::min(rows, W) * (std::min(rows, W) + 1) / 2 + std::max(0.0, rows - W) * W) / rows;
  return 6.0 * double(trading::max_stream_segments(ds.split.train, t.stream_targets)) * rows * forward_macs(c, keys);
}

}  // namespace

void add_compare_objectives(CLI::App& group) {
  auto args = std::make_shared<Args>();
  auto* cmd = group.add_subcommand(
      "objectives", "Window-trained vs stream-trained (sliding window, loss at every position) traders at equal "
                    "training compute: validation loss, forecast, backtest, and each cached stream against its "
                    "model's exact semantics");
  Args& a = *args;
  cmd->add_option("--data", a.data, "OHLCV CSV")->capture_default_str()->check(CLI::ExistingFile);
  cmd->add_option("--out", a.out, "Write compare_objectives.csv/.json/.png and both training runs (<out>/window, "
                  "<out>/stream) here; without it the runs go to a temporary directory");
  cmd->add_option("--split", a.split, "Split the forecast, backtest and stream metrics are measured on")
      ->capture_default_str()->check(CLI::IsMember({"val", "test"}));
  cmd->add_option("--epochs", a.epochs, "Training epochs of the window model; the stream model gets the same FLOPs")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a.seed, "Random seed (init, shuffling, dropout), the same for both")->capture_default_str();
  cmd->add_option("--d-model", a.d_model, "Model width")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--n-heads", a.n_heads, "Query heads")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--n-kv-heads", a.n_kv_heads, "Key/value heads")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--n-layers", a.n_layers, "Transformer blocks")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--d-ff", a.d_ff, "Feed-forward width")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--dropout", a.dropout, "Dropout probability")->capture_default_str()->check(CLI::Range(0.0, 0.99));
  cmd->add_option("--lookback", a.lookback, "Window of the window model, warm-up + 1 of the stream model's segments")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--window", a.window, "The stream model's attention window W; 0 = the widest whose receptive field "
                  "n_layers (W - 1) + 1 fits in the lookback")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--stream-targets", a.stream_targets, "Targets per training segment of the stream model")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", a.batch_size, "Targets per optimizer step (both objectives)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--lr", a.lr, "AdamW learning rate (cosine-annealed)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  add_backtest_sizing_options(*cmd, a.cost_bps, a.tanh_scale, a.max_position);
  cmd->add_flag("--json", a.json, "Print the results as JSON on stdout instead of the table");
  cmd->add_flag("--quiet", a.quiet, "No progress bars");

  cmd->callback([args] {
    const Args& a = *args;
    const auto t_start = std::chrono::steady_clock::now();
    std::ostream& log = a.json ? std::cerr : std::cout;
    const int64_t W = a.window > 0 ? a.window : (int64_t(a.lookback) - 1) / a.n_layers + 1;
    ATTNLAB_CHECK(W >= 1 && a.n_layers * (W - 1) + 1 <= int64_t(a.lookback), "compare objectives: --window ", W,
                  " has a receptive field of ", a.n_layers * (W - 1) + 1, " rows, more than --lookback ", a.lookback);
    SeriesFeatures sf = load_series_features(a.data);
    const trading::TraderDataset ds =
        trading::make_dataset(sf.features, sf.series.close, a.lookback, 1, 0.70, 0.15);
    const std::vector<size_t>& eval_idx = a.split == "val" ? ds.split.val : ds.split.test;
    bt::BacktestConfig bc;
    bc.cost_bps = a.cost_bps, bc.tanh_scale = a.tanh_scale, bc.max_position = a.max_position;
    bc.market = bt::market_from_timestamps(sf.series.ts_ms);
    const fs::path root = a.out.empty() ? fs::temp_directory_path() / ("attnlab_objectives_" + std::to_string(::getpid()))
                                        : fs::path(a.out);

    trading::TraderConfig base;
    base.input_dim = int64_t(ds.n_features()), base.d_model = a.d_model, base.n_heads = a.n_heads;
    base.n_kv_heads = a.n_kv_heads, base.n_layers = a.n_layers, base.d_ff = a.d_ff;
    base.max_seq_len = int64_t(a.lookback), base.dropout = a.dropout, base.positions = trading::PositionEncoding::rope;
    base.causal = true;
    trading::TrainConfig tbase;
    tbase.lookback = a.lookback, tbase.batch_size = a.batch_size, tbase.lr = a.lr, tbase.seed = a.seed;
    tbase.patience = 0, tbase.progress = !a.quiet;
    tbase.stream_targets = a.stream_targets;

    trading::TraderConfig mw = base, ms = base;
    ms.window = W;
    trading::TrainConfig tw = tbase, ts = tbase;
    ts.objective = "stream";
    tw.epochs = a.epochs;
    const double budget = double(a.epochs) * epoch_flops(mw, tw, ds);
    ts.epochs = std::max(1, int(std::lround(budget / epoch_flops(ms, ts, ds))));
    log << "data: " << a.data << " (" << sf.series.size() << " bars; samples train " << ds.split.train.size()
        << ", val " << ds.split.val.size() << ", test " << ds.split.test.size() << "); lookback " << a.lookback
        << "; metrics on the " << a.split << " split (" << eval_idx.size() << " bars)\n"
        << "budget: " << budget / 1e9 << " GFLOP = " << tw.epochs << " window epochs = " << ts.epochs
        << " stream epochs (window " << W << ", receptive field " << ms.receptive_field() << ", "
        << a.stream_targets << " targets per segment)\n";

    // The zero forecast's losses on the same samples (targets are scaled to unit variance on train).
    double zero_val = 0, zero_mse = 0, always_up = 0, bh_sharpe = 0;
    for (size_t t : ds.split.val) zero_val += std::pow(ds.targets[t] / ds.target_std, 2) / double(ds.split.val.size());
    std::vector<Result> results;
    for (auto [mc, tc] : {std::pair{mw, tw}, std::pair{ms, ts}}) {
      Result r;
      r.objective = tc.objective, r.window = mc.window, r.epochs = tc.epochs;
      r.train_gflop = double(tc.epochs) * epoch_flops(mc, tc, ds) / 1e9;
      log << "[" << results.size() + 1 << "/2] " << r.objective << " objective"
          << (mc.window > 0 ? ", window " + std::to_string(mc.window) : std::string(", full causal attention")) << ", "
          << tc.epochs << " epochs\n" << std::flush;
      tc.out_dir = (root / r.objective).string();
      manual_seed(a.seed);
      auto model = std::make_shared<trading::GQATrader>(mc);
      const trading::TrainResult tr = trading::train_trader(*model, ds, tc);
      r.best_epoch = tr.best_epoch, r.steps = tr.steps, r.train_s = tr.seconds, r.val_loss = tr.best_val_loss;
      r.checkpoint = tr.checkpoint;
      const trading::EvalResult e = trading::evaluate(*model, ds, eval_idx);
      r.mse = e.mse, r.direction = e.direction_accuracy;
      zero_mse = e.zero_mse, always_up = e.always_up_accuracy;
      const trading::BarPredictions p = trading::predict_bars(*model, ds, eval_idx, !a.quiet, "  backtest inference");
      const trading::ModelBacktest mb = trading::backtest_predictions(sf.series, p, bc);
      r.sharpe = mb.result.metrics.sharpe, r.total_return = mb.result.metrics.total_return;
      bh_sharpe = mb.result.benchmark_metrics.sharpe;
      // Its streams over the data up to the split's end: exact and a contiguous (ring) cache.
      const trading::TraderCheckpoint ck = trading::read_trader_checkpoint(tr.checkpoint);
      std::shared_ptr<trading::GQATrader> loaded = trading::load_trader(ck);
      trading::StreamOptions exact_opt, cached_opt;
      cached_opt.mode = trading::StreamMode::cached;
      trading::SymbolStream exact(loaded, ck, exact_opt), cached(loaded, ck, cached_opt);
      const trading::StreamReplay re = trading::replay(exact, sf.series, eval_idx, !a.quiet, "  exact stream");
      const trading::StreamReplay rc = trading::replay(cached, sf.series, eval_idx, !a.quiet, "  cached stream");
      std::vector<double> reference = re.prediction;
      if (trading::full_sequence_semantics(ck)) {
        reference = trading::full_sequence_outputs(*loaded, ds, eval_idx);
        for (double& v : reference) v *= ck.target_std;  // stream predictions are log returns
      }
      const trading::StreamDeviation d = trading::deviation(rc.prediction, reference);
      r.cached_deviation = d.relative, r.cached_sign = d.sign_agreement;
      r.exact_tick = bt::summarize_latency(re.latency_ms), r.cached_tick = bt::summarize_latency(rc.latency_ms);
      r.reference = trading::exact_semantics(ck);
      results.push_back(r);
    }

    nlohmann::json jrows = nlohmann::json::array();
    std::string csv = "objective,window,epochs,steps,train_gflop,train_s,best_epoch,val_loss," + a.split + "_mse," +
                      a.split + "_direction," + a.split + "_sharpe," + a.split +
                      "_return,cached_deviation,cached_sign_agreement,exact_tick_p50_ms,cached_tick_p50_ms\n";
    for (const Result& r : results) {
      jrows.push_back({{"objective", r.objective}, {"window", r.window}, {"epochs", r.epochs}, {"steps", r.steps},
                       {"train_gflop", r.train_gflop}, {"train_seconds", r.train_s}, {"best_epoch", r.best_epoch},
                       {"val_loss", report::json_number(r.val_loss)}, {"mse", report::json_number(r.mse)},
                       {"direction_accuracy", report::json_number(r.direction)},
                       {"sharpe", report::json_number(r.sharpe)}, {"total_return", report::json_number(r.total_return)},
                       {"cached_deviation", report::json_number(r.cached_deviation)},
                       {"cached_sign_agreement", r.cached_sign}, {"exact_tick_ms", report::to_json(r.exact_tick)},
                       {"cached_tick_ms", report::to_json(r.cached_tick)}, {"reference", r.reference},
                       {"checkpoint", a.out.empty() ? std::string() : r.checkpoint}});
      csv += r.objective + "," + std::to_string(r.window) + "," + std::to_string(r.epochs) + "," +
             std::to_string(r.steps);
      for (double x : {r.train_gflop, r.train_s, double(r.best_epoch), r.val_loss, r.mse, r.direction, r.sharpe,
                       r.total_return, r.cached_deviation, r.cached_sign, r.exact_tick.p50_ms, r.cached_tick.p50_ms})
        csv += "," + report::number_text(x);
      csv += "\n";
    }
    const nlohmann::json j = {{"data", a.data}, {"split", a.split}, {"bars", eval_idx.size()}, {"seed", a.seed},
                              {"lookback", a.lookback}, {"budget_gflop", budget / 1e9},
                              {"model", {{"d_model", a.d_model}, {"n_heads", a.n_heads}, {"n_kv_heads", a.n_kv_heads},
                                         {"n_layers", a.n_layers}, {"d_ff", a.d_ff}, {"dropout", a.dropout}}},
                              {"backtest", report::to_json(bc)},
                              {"baselines", {{"zero_forecast_val_loss", zero_val}, {"zero_forecast_mse", zero_mse},
                                             {"always_up_direction_accuracy", always_up},
                                             {"buy_and_hold_sharpe", report::json_number(bh_sharpe)}}},
                              {"results", jrows}};
    if (!a.out.empty()) {
      report::write_file_atomic(root / "compare_objectives.csv", csv);
      report::write_file_atomic(root / "compare_objectives.json", j.dump(2) + "\n");
      std::vector<std::string> cats;
      std::vector<report::Series> panels(4);
      panels[0].label = "best val loss";
      panels[1].label = a.split + " MSE (x1e4)";
      panels[2].label = a.split + " backtest Sharpe";
      panels[3].label = "cached stream: log10 deviation from exact";
      for (const Result& r : results) {
        cats.push_back(r.objective + (r.window > 0 ? " (W " + std::to_string(r.window) + ")" : " (full)"));
        panels[0].y.push_back(r.val_loss), panels[1].y.push_back(r.mse * 1e4), panels[2].y.push_back(r.sharpe);
        panels[3].y.push_back(std::log10(std::max(r.cached_deviation, 1e-12)));
      }
      report::PlotOptions po;
      po.title = "Window vs stream objective at equal training compute (" + fs::path(a.data).filename().string() + ")";
      po.width = 1100, po.height = 700, po.value_format = "%.3g";
      const report::PlotResult pr = report::bar_panels(root, "compare_objectives", cats, panels, 2, po);
      log << "wrote " << (root / "compare_objectives.csv").string() << ", "
          << (root / "compare_objectives.json").string() << ", "
          << (pr.rendered ? pr.png.string() : pr.script.string() + " (no PNG: " + pr.message + ")") << "\n";
    } else {
      fs::remove_all(root);
    }
    if (a.json) {
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::printf("\n%-9s %6s %6s %7s %8s %8s %9s %11s %8s %8s %8s %11s %7s %10s %10s\n", "objective", "window",
                "epochs", "steps", "GFLOP", "train s", "val loss", (a.split + " MSE").c_str(), "dir", "Sharpe",
                "return", "cached dev", "sign =", "exact p50", "cached p50");
    for (const Result& r : results)
      std::printf("%-9s %6lld %6d %7lld %8.2f %8.1f %9.4f %11.4e %7.2f%% %8.3f %7.2f%% %11.3g %6.1f%% %7.3f ms %7.3f ms\n",
                  r.objective.c_str(), (long long)r.window, r.epochs, (long long)r.steps, r.train_gflop, r.train_s,
                  r.val_loss, r.mse, 100 * r.direction, r.sharpe, 100 * r.total_return, r.cached_deviation,
                  100 * r.cached_sign, r.exact_tick.p50_ms, r.cached_tick.p50_ms);
    std::printf("baselines on the same samples: zero forecast val loss %.4f, %s MSE %.4e; always-up direction %.2f%%; "
                "buy & hold Sharpe %s\n",
                zero_val, a.split.c_str(), zero_mse, 100 * always_up, trading::format_number("%.3f", bh_sharpe).c_str());
    for (const Result& r : results) std::printf("%s: cached deviation vs %s\n", r.objective.c_str(), r.reference.c_str());
    std::printf("val loss: each model's own semantics (scaled units; ~1 is the zero forecast's); Sharpe: next-open "
                "backtest, weight = tanh(%g * pred) * %g, %g bps; cached: a contiguous ring, one position per tick\n",
                a.tanh_scale, a.max_position, a.cost_bps);
    std::printf("compare objectives took %.1f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count());
  });
}

}  // namespace attnlab::cli
