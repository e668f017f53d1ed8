// `attnlab compare ...`: side-by-side comparisons. `compare attention` trains MHA, GQA and MQA
// GQATraders (n_kv_heads = n_heads, a middle value, 1) on the same data with the same budget and seed and
// tabulates forecast quality, a backtest, batch-1 inference latency, KV-cache bytes and parameters: the
// seeds' "Trading Model Performance" table (shared/seeds/000_*, "MHA Model | GQA Model") on our data.
// add_compare() returns the group so that other files can add comparisons to it.
#include <chrono>
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
#include "trading/report/kv_size.h"
#include "trading/report/plot.h"
#include "trading/train/evaluate.h"
#include "trading/train/trainer.h"

namespace attnlab::cli {

namespace {

namespace fs = std::filesystem;
namespace bt = attnlab::backtest;

struct CompareAttentionArgs {
  std::string data = embedded_data_csv();
  std::string out, split = "val", backend = "flash", positions = "learned";
  int epochs = 2;
  uint64_t seed = 0;
  int64_t d_model = 32, n_heads = 4, gqa_kv_heads = 0, n_layers = 2, d_ff = 64;
  size_t lookback = 32, batch_size = 32;
  double lr = 1e-3, dropout = 0.1;
  int64_t max_steps = 0;
  double cost_bps = 10, tanh_scale = 100, max_position = 1;
  bool json = false, quiet = false, causal = false;
};

struct VariantResult {
  std::string name;
  int64_t kv_heads = 0, parameters = 0, kv_bytes = 0;
  double mse = 0, direction = 0, sharpe = 0, total_return = 0, max_drawdown = 0, train_s = 0;
  bt::LatencySummary latency;
  int best_epoch = 0;
  std::string checkpoint;
};

void add_compare_attention(CLI::App& group) {
  auto args = std::make_shared<CompareAttentionArgs>();
  auto* cmd = group.add_subcommand(
      "attention", "Train MHA, GQA and MQA traders with the same data, budget and seed; compare validation MSE, "
                   "direction accuracy, backtest Sharpe, batch-1 inference latency, KV-cache bytes and parameters");
  auto& a = *args;
  cmd->add_option("--data", a.data, "OHLCV CSV")->capture_default_str()->check(CLI::ExistingFile);
  cmd->add_option("--out", a.out, "Write compare_attention.csv/.json, compare_attention.png (bar charts) and each "
                  "model's training run (<out>/mha, gqa, mqa: checkpoint, history, loss curve) here");
  cmd->add_option("--split", a.split, "Split every metric is measured on: val (validation) or test")
      ->capture_default_str()->check(CLI::IsMember({"val", "test"}));
  cmd->add_option("--epochs", a.epochs, "Training epochs per model (the same budget for each)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--max-steps", a.max_steps, "Stop each training after this many optimizer steps (0 = no limit)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", a.seed, "Random seed: init, shuffling and dropout, the same for every model")
      ->capture_default_str();
  cmd->add_option("--d-model", a.d_model, "Model width")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--n-heads", a.n_heads, "Query heads (MHA has as many KV heads)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--gqa-kv-heads", a.gqa_kv_heads, "KV heads of the GQA model; 0 = the largest divisor of n-heads "
                  "not above its square root (4 -> 2, 8 -> 2, 16 -> 4)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--n-layers", a.n_layers, "Transformer blocks")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--d-ff", a.d_ff, "Feed-forward width")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--dropout", a.dropout, "Dropout probability")->capture_default_str()->check(CLI::Range(0.0, 0.99));
  cmd->add_option("--lookback", a.lookback, "Input window in bars (= the sequence the KV cache holds)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", a.batch_size, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--lr", a.lr, "AdamW learning rate (cosine-annealed)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--positions", a.positions, "Position encoding")->capture_default_str()
      ->check(CLI::IsMember({"learned", "rope"}));
  cmd->add_option("--backend", a.backend, "Attention backend")->capture_default_str()
      ->check(CLI::IsMember({"flash", "math", "reference"}));
  cmd->add_flag("--causal", a.causal, "Causal attention mask");
  add_backtest_sizing_options(*cmd, a.cost_bps, a.tanh_scale, a.max_position);
  cmd->add_flag("--json", a.json, "Print the results as JSON on stdout instead of the table");
  cmd->add_flag("--quiet", a.quiet, "No progress bars");

  cmd->callback([args] {
    const CompareAttentionArgs& a = *args;
    const auto t_start = std::chrono::steady_clock::now();
    ATTNLAB_CHECK(a.d_model % a.n_heads == 0, "compare attention: --d-model ", a.d_model,
                  " is not divisible by --n-heads ", a.n_heads);
    const int64_t g = a.gqa_kv_heads > 0 ? a.gqa_kv_heads : report::middle_kv_heads(a.n_heads);
    ATTNLAB_CHECK(g == 0 || a.n_heads % g == 0, "compare attention: --gqa-kv-heads ", g, " does not divide --n-heads ",
                  a.n_heads);
    std::vector<std::pair<std::string, int64_t>> variants = {{"MHA", a.n_heads}};
    if (g > 1 && g < a.n_heads) variants.emplace_back("GQA", g);
    if (a.n_heads > 1) variants.emplace_back("MQA", 1);
    std::ostream& log = a.json ? std::cerr : std::cout;  // stdout stays pure JSON with --json

    SeriesFeatures sf = load_series_features(a.data);
    trading::TrainConfig tc;
    tc.lookback = a.lookback;
    tc.epochs = a.epochs;
    tc.batch_size = a.batch_size;
    tc.lr = a.lr;
    tc.max_steps = a.max_steps;
    tc.seed = a.seed;
    tc.patience = 0;  // the same budget for every model
    tc.progress = !a.quiet;
    const trading::TraderDataset ds = trading::make_dataset(sf.features, sf.series.close, tc.lookback, tc.horizon,
                                                            tc.train_frac, tc.val_frac);
    const std::vector<size_t>& eval_idx = a.split == "val" ? ds.split.val : ds.split.test;
    bt::BacktestConfig bc;
    bc.cost_bps = a.cost_bps;
    bc.tanh_scale = a.tanh_scale;
    bc.max_position = a.max_position;
    bc.market = bt::market_from_timestamps(sf.series.ts_ms);
    log << "data: " << a.data << " (" << sf.series.size() << " bars, " << ds.n_features() << " features; samples train "
        << ds.split.train.size() << ", val " << ds.split.val.size() << ", test " << ds.split.test.size() << ")\n"
        << "budget: " << a.epochs << " epochs"
        << (a.max_steps ? " (max " + std::to_string(a.max_steps) + " steps)" : "")
        << ", seed " << a.seed << ", batch " << a.batch_size << ", lr " << a.lr << "; metrics on the " << a.split
        << " split (" << eval_idx.size() << " bars)\n";

    std::vector<VariantResult> results;
    double zero_mse = 0, always_up = 0, bh_sharpe = 0, bh_return = 0;
    for (size_t v = 0; v < variants.size(); ++v) {
      const auto& [name, kv] = variants[v];
      trading::TraderConfig mc;
      mc.input_dim = int64_t(ds.n_features());
      mc.d_model = a.d_model;
      mc.n_heads = a.n_heads;
      mc.n_kv_heads = kv;
      mc.n_layers = a.n_layers;
      mc.d_ff = a.d_ff;
      mc.max_seq_len = int64_t(a.lookback);
      mc.dropout = a.dropout;
      mc.positions = trading::parse_positions(a.positions);
      mc.backend = trading::parse_backend(a.backend);
      mc.causal = a.causal;
      manual_seed(a.seed);
      trading::GQATrader model(mc);
      VariantResult r;
      r.name = name;
      r.kv_heads = kv;
      r.parameters = model.num_parameters();
      r.kv_bytes = model.kv_cache_bytes_per_token(4) * int64_t(a.lookback);
      log << "[" << v + 1 << "/" << variants.size() << "] " << name << ": " << a.n_heads << " query heads, " << kv
          << " KV head" << (kv > 1 ? "s" : "") << ", " << r.parameters << " parameters\n"
          << std::flush;
      trading::TrainConfig t = tc;
      if (!a.out.empty()) {
        std::string dir = name;
        for (char& c : dir) c = char(std::tolower(static_cast<unsigned char>(c)));
        t.out_dir = (fs::path(a.out) / dir).string();
      }
      const trading::TrainResult tr = trading::train_trader(model, ds, t);
      r.train_s = tr.seconds;
      r.best_epoch = tr.best_epoch;
      r.checkpoint = tr.checkpoint;
      const trading::EvalResult e = trading::evaluate(model, ds, eval_idx);
      r.mse = e.mse;
      r.direction = e.direction_accuracy;
      zero_mse = e.zero_mse;
      always_up = e.always_up_accuracy;
      const trading::BarPredictions p = trading::predict_bars(model, ds, eval_idx, !a.quiet, "  backtest inference");
      const trading::ModelBacktest mb = trading::backtest_predictions(sf.series, p, bc);
      r.sharpe = mb.result.metrics.sharpe;
      r.total_return = mb.result.metrics.total_return;
      r.max_drawdown = mb.result.metrics.max_drawdown;
      bh_sharpe = mb.result.benchmark_metrics.sharpe;
      bh_return = mb.result.benchmark_metrics.total_return;
      r.latency = bt::summarize_latency(p.latency_ms);
      results.push_back(r);
    }

    // One table: the seeds' rows as columns, one row per attention kind.
    const std::string sp = a.split;
    const std::vector<std::string> header = {"attention", "kv_heads", "parameters", sp + "_mse", sp + "_direction_acc",
                                             sp + "_sharpe", sp + "_return", "infer_ms_p50", "infer_ms_p99",
                                             "kv_bytes_per_seq", "train_s"};
    nlohmann::json jrows = nlohmann::json::array();
    std::string csv;
    for (size_t i = 0; i < header.size(); ++i) csv += (i ? "," : "") + header[i];
    csv += "\n";
    for (const auto& r : results) {
      jrows.push_back({{"attention", r.name}, {"kv_heads", r.kv_heads}, {"parameters", r.parameters},
                       {"mse", report::json_number(r.mse)}, {"direction_accuracy", report::json_number(r.direction)},
                       {"sharpe", report::json_number(r.sharpe)}, {"total_return", report::json_number(r.total_return)},
                       {"max_drawdown", report::json_number(r.max_drawdown)},
                       {"inference_ms", report::to_json(r.latency)}, {"kv_bytes_per_sequence", r.kv_bytes},
                       {"best_epoch", r.best_epoch}, {"train_seconds", r.train_s}, {"checkpoint", r.checkpoint}});
      csv += r.name + "," + std::to_string(r.kv_heads) + "," + std::to_string(r.parameters);
      for (double x : {r.mse, r.direction, r.sharpe, r.total_return, r.latency.p50_ms, r.latency.p99_ms})
        csv += "," + report::number_text(x);
      csv += "," + std::to_string(r.kv_bytes) + "," + report::number_text(r.train_s) + "\n";
    }
    const nlohmann::json j = {
        {"data", a.data}, {"split", a.split}, {"bars", eval_idx.size()}, {"seed", a.seed}, {"epochs", a.epochs},
        {"max_steps", a.max_steps}, {"lookback", a.lookback},
        {"model", {{"d_model", a.d_model}, {"n_heads", a.n_heads}, {"n_layers", a.n_layers}, {"d_ff", a.d_ff},
                   {"positions", a.positions}, {"backend", a.backend}, {"causal", a.causal}}},
        {"backtest", report::to_json(bc)},
        {"baselines", {{"zero_forecast_mse", zero_mse}, {"always_up_direction_accuracy", always_up},
                       {"buy_and_hold_sharpe", report::json_number(bh_sharpe)},
                       {"buy_and_hold_return", report::json_number(bh_return)}}},
        {"results", jrows}};

    if (!a.out.empty()) {
      const fs::path out(a.out);
      report::write_file_atomic(out / "compare_attention.csv", csv);
      report::write_file_atomic(out / "compare_attention.json", j.dump(2) + "\n");
      std::vector<std::string> cats;
      std::vector<report::Series> panels(6);
      panels[0].label = sp + " MSE (x1e4)";
      panels[1].label = sp + " direction accuracy (%)";
      panels[2].label = sp + " backtest Sharpe";
      panels[3].label = "inference p50 (ms, batch 1)";
      panels[4].label = "KV cache per sequence (KiB, f32)";
      panels[5].label = "parameters (thousands)";
      for (const auto& r : results) {
        cats.push_back(r.name + " (" + std::to_string(r.kv_heads) + " KV)");
        for (auto [k, v] : {std::pair<size_t, double>{0, r.mse * 1e4}, {1, 100 * r.direction}, {2, r.sharpe},
                            {3, r.latency.p50_ms}, {4, double(r.kv_bytes) / 1024}, {5, double(r.parameters) / 1e3}})
          panels[k].y.push_back(v);
      }
      report::PlotOptions po;
      po.title = "MHA vs GQA vs MQA on " + fs::path(a.data).filename().string() + " (" + sp + " split, seed " +
                 std::to_string(a.seed) + ", " + std::to_string(a.epochs) + (a.epochs > 1 ? " epochs)" : " epoch)");
      po.width = 1200;
      po.height = 700;
      po.value_format = "%.3g";
      const report::PlotResult pr = report::bar_panels(out, "compare_attention", cats, panels, 3, po);
      log << "wrote " << (out / "compare_attention.csv").string() << ", " << (out / "compare_attention.json").string()
          << ", " << (pr.rendered ? pr.png.string() : pr.script.string() + " (no PNG: " + pr.message + ")") << "\n";
    }

    if (a.json) {
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::printf("\n%-5s %4s %9s %11s %10s %9s %9s %11s %11s %12s %8s\n", "model", "KV", "params", (sp + " MSE").c_str(),
                (sp + " dir").c_str(), "Sharpe", "return", "infer p50", "infer p99", "KV B/seq", "train");
    for (const auto& r : results)
      std::printf("%-5s %4lld %9lld %11.4e %9.2f%% %9.3f %8.2f%% %8.3f ms %8.3f ms %12lld %7.1fs\n", r.name.c_str(),
                  (long long)r.kv_heads, (long long)r.parameters, r.mse, 100 * r.direction, r.sharpe,
                  100 * r.total_return, r.latency.p50_ms, r.latency.p99_ms, (long long)r.kv_bytes, r.train_s);
    std::printf("baselines on the same bars: zero forecast MSE %.4e, always-up direction %.2f%%, buy & hold Sharpe "
                "%s (return %.2f%%)\n",
                zero_mse, 100 * always_up, trading::format_number("%.3f", bh_sharpe).c_str(), 100 * bh_return);
    std::printf("Sharpe: next-open backtest of the %s bars, weight = tanh(%g * pred) * %g, %g bps; inference: one "
                "batch-1 forward per bar; KV bytes: f32, %zu positions.\n",
                sp.c_str(), a.tanh_scale, a.max_position, a.cost_bps, a.lookback);
    std::printf("compare attention took %.1f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count());
  });
}

}  // namespace

CLI::App* add_compare(CLI::App& app) {
  auto* group = app.add_subcommand("compare", "Side-by-side comparisons (attention: MHA vs GQA vs MQA; caches: KV-cache "
                                              "strategies while streaming; objectives: window vs stream training)");
  group->require_subcommand(1);
  add_compare_attention(*group);
  return group;
}

}  // namespace attnlab::cli
