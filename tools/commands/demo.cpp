// `attnlab demo` (the `make run` job): the embedded S&P 500 daily CSV -> features -> a small GQATrader
// (d_model 32, 4 heads, 2 KV heads, 2 layers, lookback 32) -> test-split evaluation against naive
// baselines -> the test split run bar by bar (timed batch-1 inference) -> backtest (next-open execution,
// 10 bps) -> report directory (metrics, equity/trades/latency CSVs, plots incl. latency, KV-cache sizes
// and attention, report.html).
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
#include "trading/backtest/model_backtest.h"
#include "trading/report/report.h"
#include "trading/train/evaluate.h"
#include "trading/train/trainer.h"

#ifndef ATTNLAB_SOURCE_DIR
#define ATTNLAB_SOURCE_DIR "."
#endif

namespace attnlab::cli {

void add_demo(CLI::App& app) {
  struct Args {
    std::string out = "runs/demo";
    std::string data = std::string(ATTNLAB_SOURCE_DIR) + "/data/sp500_daily_2000_2020.csv";
    int epochs = 4;
    uint64_t seed = 0;
    std::string backend = "flash";
    double tanh_scale = 100.0, max_position = 1.0;
    bool quiet = false;
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
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "checkpoint: " << r.checkpoint << "\n"
              << "history   : " << (fs::path(args->out) / "history.csv").string() << ", "
              << (fs::path(args->out) / "loss_curve.png").string() << "\n"
              << "demo took " << secs << " s\n"
              << "report    : " << (rdir / "report.html").string() << "\n";
  });
}

}  // namespace attnlab::cli
