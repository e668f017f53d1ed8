// `attnlab train`: trains a GQATrader on one OHLCV CSV (features, leakage-free split, z-score on the
// train rows) and writes the best checkpoint, history.csv and loss_curve.png into --out, then prints the
// test-split evaluation against naive baselines.
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "tensor/creation.h"
#include "tools/commands/commands.h"
#include "tools/commands/trader_common.h"
#include "trading/report/files.h"
#include "trading/train/trainer.h"

namespace attnlab::cli {

namespace {

struct TrainArgs {
  std::string data, out, config_file;
  trading::TraderConfig model;
  trading::TrainConfig train;
  std::string positions = "learned", backend = "flash", output_type = "regression";
  bool quiet = false;
};

}  // namespace

void add_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  args->model.d_model = 64;
  args->model.n_heads = 4;
  args->model.n_kv_heads = 2;
  args->model.n_layers = 2;
  args->model.d_ff = 128;
  auto* cmd = app.add_subcommand("train", "Train a GQATrader on an OHLCV CSV and save the best checkpoint");
  cmd->add_option("--data", args->data, "OHLCV CSV file (date/open/high/low/close/volume columns)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", args->out, "Output directory (model.safetensors, history.csv, loss_curve.png)")
      ->required();
  cmd->add_option("--config", args->config_file,
                  "JSON file with \"model\" (TraderConfig) and/or \"train\" (TrainConfig) sections; options given "
                  "on the command line override it")->check(CLI::ExistingFile);
  auto& m = args->model;
  auto& t = args->train;
  std::vector<std::pair<CLI::Option*, std::function<void(nlohmann::json&, nlohmann::json&)>>> overrides;
  auto opt = [&](const char* name, auto& var, const char* help, const char* section, const char* key) {
    CLI::Option* o = cmd->add_option(name, var, help)->capture_default_str();
    const bool is_model = std::string(section) == "model";
    overrides.emplace_back(o, [&var, is_model, key](nlohmann::json& mj, nlohmann::json& tj) {
      (is_model ? mj : tj)[key] = var;
    });
    return o;
  };
  opt("--lookback", t.lookback, "Input window length in bars", "train", "lookback")->check(CLI::PositiveNumber);
  opt("--horizon", t.horizon, "Forecast horizon in bars (target = sum of the next horizon log returns)", "train",
      "horizon")->check(CLI::PositiveNumber);
  opt("--epochs", t.epochs, "Training epochs", "train", "epochs")->check(CLI::PositiveNumber);
  opt("--batch-size", t.batch_size, "Batch size", "train", "batch_size")->check(CLI::PositiveNumber);
  opt("--lr", t.lr, "AdamW learning rate (cosine-annealed to 0)", "train", "lr")->check(CLI::PositiveNumber);
  opt("--weight-decay", t.weight_decay, "AdamW weight decay", "train", "weight_decay")->check(CLI::NonNegativeNumber);
  opt("--patience", t.patience, "Early stopping patience in epochs (0 = off)", "train", "patience")
      ->check(CLI::NonNegativeNumber);
  opt("--seed", t.seed, "Random seed (init, shuffling)", "train", "seed");
  opt("--max-steps", t.max_steps, "Stop after this many optimizer steps (0 = no limit)", "train", "max_steps")
      ->check(CLI::NonNegativeNumber);
  opt("--d-model", m.d_model, "Model width", "model", "d_model")->check(CLI::PositiveNumber);
  opt("--n-heads", m.n_heads, "Query heads", "model", "n_heads")->check(CLI::PositiveNumber);
  opt("--n-kv-heads", m.n_kv_heads, "Key/value heads (n-heads = MHA, 1 = MQA)", "model", "n_kv_heads")
      ->check(CLI::PositiveNumber);
  opt("--n-layers", m.n_layers, "Transformer blocks", "model", "n_layers")->check(CLI::PositiveNumber);
  opt("--d-ff", m.d_ff, "Feed-forward width", "model", "d_ff")->check(CLI::PositiveNumber);
  opt("--dropout", m.dropout, "Dropout probability", "model", "dropout")->check(CLI::Range(0.0, 0.99));
  opt("--positions", args->positions, "Position encoding", "model", "positions")
      ->check(CLI::IsMember({"learned", "rope"}));
  opt("--backend", args->backend, "Attention backend", "model", "backend")->check(CLI::IsMember({"flash", "math"}));
  opt("--output-type", args->output_type, "Head/loss: regression (mse), direction (BCE), allocation (tanh, -mean(p*r))",
      "model", "output_type")->check(CLI::IsMember({"regression", "direction", "allocation"}));
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  // overrides captures references into *args and cmd's options, which live as long as the app.
  auto ov = std::make_shared<decltype(overrides)>(std::move(overrides));

  cmd->callback([args, ov] {
    nlohmann::json mj = args->model.to_json(), tj = args->train.to_json();
    mj["positions"] = args->positions;
    mj["backend"] = args->backend;
    mj["output_type"] = args->output_type;
    if (!args->config_file.empty()) {
      std::ifstream in(args->config_file);
      nlohmann::json cfg;
      try {
        in >> cfg;
      } catch (const nlohmann::json::exception& e) {
        throw Error(args->config_file + ": not valid JSON: " + e.what());
      }
      ATTNLAB_CHECK(cfg.is_object(), args->config_file, ": expected a JSON object");
      if (cfg.contains("model")) mj.update(cfg.at("model"));
      if (cfg.contains("train")) tj.update(cfg.at("train"));
      for (auto& [opt, apply] : *ov)
        if (opt->count() > 0) apply(mj, tj);
    }
    trading::TrainConfig tc = trading::TrainConfig::from_json(tj);
    tc.out_dir = args->out;
    tc.progress = !args->quiet;
    SeriesFeatures sf = load_series_features(args->data);
    const trading::TraderDataset ds = trading::make_dataset(sf.features, sf.series.close, tc.lookback, tc.horizon,
                                                            tc.train_frac, tc.val_frac);
    mj["input_dim"] = int64_t(ds.n_features());
    mj["max_seq_len"] = std::max<int64_t>(mj.value("max_seq_len", int64_t(0)), int64_t(tc.lookback));
    trading::TraderConfig mc = trading::TraderConfig::from_json(mj);
    std::cerr << "data: " << args->data << ": " << sf.series.size() << " bars, " << ds.n_features()
              << " features; samples train " << ds.split.train.size() << ", val " << ds.split.val.size()
              << ", test " << ds.split.test.size() << "\n";
    manual_seed(tc.seed);
    trading::GQATrader model(mc);
    std::cerr << "model: " << model.num_parameters() << " parameters, " << mj.dump() << "\n";
    const trading::TrainResult r = trading::train_trader(model, ds, tc);
    const trading::EvalResult e = trading::evaluate(model, ds, ds.split.test, 256, tc.causal);
    std::cout << "best epoch " << r.best_epoch << " (val loss " << r.best_val_loss << "), " << r.steps << " steps in "
              << r.seconds << " s" << (r.early_stopped ? ", stopped early" : "") << "\n"
              << "test split:\n" << e.table();
    nlohmann::json summary{{"train", {{"best_epoch", r.best_epoch}, {"best_val_loss", r.best_val_loss},
                                      {"steps", r.steps}, {"seconds", r.seconds}, {"early_stopped", r.early_stopped}}},
                           {"test", e.to_json()}};
    report::write_file_atomic(std::filesystem::path(args->out) / "eval.json", summary.dump(2));
    std::cout << "checkpoint: " << r.checkpoint << "\n";
  });
}

}  // namespace attnlab::cli
