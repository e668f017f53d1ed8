// `attnlab train`: trains a GQATrader on one OHLCV CSV (features, leakage-free split, z-score on the
// train rows) and writes the best checkpoint, train_state.safetensors (every epoch), history.csv and
// loss_curve.png into --out, then prints the test-split evaluation against naive baselines.
// `--resume DIR` continues an interrupted run from DIR/train_state.safetensors with its saved settings.
// `--objective stream --window W` trains a sliding-window model on segments with a loss at every position
// (trading/train/stream_objective.h): causal and RoPE by default, lookback = its receptive field.
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "tensor/creation.h"
#include "tools/commands/commands.h"
#include "tools/commands/trader_common.h"
#include "trading/report/files.h"
#include "trading/train/evaluate.h"
#include "trading/train/trainer.h"

namespace attnlab::cli {

namespace {

struct TrainArgs {
  std::string data, out, config_file, resume;
  trading::TraderConfig model;
  trading::TrainConfig train;
  std::string positions = "learned", backend = "flash", output_type = "regression";
  int stop_after_epoch = 0;
  std::string device = "cpu";
  bool quiet = false;
  CLI::Option* lookback_opt = nullptr;
  CLI::Option* positions_opt = nullptr;
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
  cmd->add_option("--data", args->data, "OHLCV CSV file (date/open/high/low/close/volume columns); with --resume "
                  "the saved run's file is the default")->check(CLI::ExistingFile);
  cmd->add_option("--out", args->out, "Output directory (model.safetensors, train_state.safetensors, history.csv, "
                  "loss_curve.png, eval.json); required unless --resume, which defaults to its DIR");
  cmd->add_option("--resume", args->resume,
                  "Continue the run saved in DIR (its train_state.safetensors, written after every epoch): weights, "
                  "AdamW moments, schedule, RNGs, epoch, step, best val loss, patience counter and history, so "
                  "the result equals an uninterrupted run. The run keeps its model/training settings (giving "
                  "one is an error) and the data must be the same (checked)")->check(CLI::ExistingDirectory);
  cmd->add_option("--stop-after-epoch", args->stop_after_epoch,
                  "Stop after this epoch as if interrupted (continue later with --resume); 0 = run to the end")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
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
  args->lookback_opt = opt("--lookback", t.lookback, "Input window length in bars (--objective stream: default the "
                           "model's receptive field n_layers * (window - 1) + 1, the warm-up of every segment)",
                           "train", "lookback")->check(CLI::PositiveNumber);
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
  opt("--clip-norm", t.clip_norm, "Gradient clipping: max global L2 norm", "train", "clip_norm")
      ->check(CLI::PositiveNumber);
  opt("--train-frac", t.train_frac, "Chronological split: fraction of samples for training", "train", "train_frac")
      ->check(CLI::Range(0.01, 0.98));
  opt("--val-frac", t.val_frac, "Chronological split: fraction for validation (the rest is test)", "train",
      "val_frac")->check(CLI::Range(0.01, 0.98));
  {
    // A flag, so not through opt(): --causal sets the key; absent, the config file's value stands.
    CLI::Option* o = cmd->add_flag("--causal", m.causal,
                                   "Causal attention mask in every layer (a model property, stored in the "
                                   "checkpoint's model config; every command that runs the model uses it)");
    overrides.emplace_back(o, [&m](nlohmann::json& mj, nlohmann::json&) { mj["causal"] = m.causal; });
  }
  opt("--d-model", m.d_model, "Model width", "model", "d_model")->check(CLI::PositiveNumber);
  opt("--n-heads", m.n_heads, "Query heads", "model", "n_heads")->check(CLI::PositiveNumber);
  opt("--n-kv-heads", m.n_kv_heads, "Key/value heads (n-heads = MHA, 1 = MQA)", "model", "n_kv_heads")
      ->check(CLI::PositiveNumber);
  opt("--n-layers", m.n_layers, "Transformer blocks", "model", "n_layers")->check(CLI::PositiveNumber);
  opt("--d-ff", m.d_ff, "Feed-forward width", "model", "d_ff")->check(CLI::PositiveNumber);
  opt("--dropout", m.dropout, "Dropout probability", "model", "dropout")->check(CLI::Range(0.0, 0.99));
  args->positions_opt = opt("--positions", args->positions, "Position encoding (--objective stream: rope)", "model",
                            "positions")->check(CLI::IsMember({"learned", "rope"}));
  opt("--window", m.window,
      "Sliding attention window W of every layer (0 = full attention). Needs RoPE and --causal; the model's "
      "cached stream then uses a ring of W keys per layer and equals its full-sequence forward", "model", "window")
      ->check(CLI::NonNegativeNumber);
  opt("--objective", t.objective,
      "window: one target per lookback-row window (the seed's); stream: segments of consecutive rows with a loss at "
      "every position past a warm-up of lookback - 1 rows, for a --window model whose cached stream is exactly the "
      "trained function (docs/streaming.md)", "train", "objective")->check(CLI::IsMember({"window", "stream"}));
  opt("--stream-targets", t.stream_targets,
      "--objective stream: targets per training segment (each segment is lookback - 1 + this many rows); "
      "--batch-size still counts targets per step, in whole segments", "train", "stream_targets")
      ->check(CLI::PositiveNumber);
  opt("--backend", args->backend, "Attention backend", "model", "backend")->check(CLI::IsMember({"flash", "math", "reference"}));
  opt("--output-type", args->output_type, "Head/loss: regression (mse), direction (BCE), allocation (tanh, -mean(p*r))",
      "model", "output_type")->check(CLI::IsMember({"regression", "direction", "allocation"}));
  opt("--precision", t.precision,
      "Training precision: f32, bf16 (autocast: matmuls and attention in bf16, f32 master weights) or f16 (autocast "
      "with dynamic loss scaling); validation runs in f32", "train", "precision")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  cmd->add_option("--device", args->device,
                  "Where to train: cpu, cuda or cuda:N (an error when no GPU is present); allowed with --resume. "
                  "The checkpoint is device-free: predict/backtest load it on the CPU")
      ->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  // overrides captures references into *args and cmd's options, which live as long as the app.
  auto ov = std::make_shared<decltype(overrides)>(std::move(overrides));

  cmd->callback([args, ov] {
    const Device device = parse_device(args->device);  // first: a missing GPU fails before any work
    nlohmann::json mj = args->model.to_json(), tj = args->train.to_json();
    mj["positions"] = args->positions;
    mj["backend"] = args->backend;
    mj["output_type"] = args->output_type;
    nlohmann::json run_info;
    if (!args->resume.empty()) {
      // The saved run's settings; any model/training option given now is an error, not a silent change.
      std::string given;
      for (auto& [opt, apply] : *ov)
        if (opt->count() > 0) given += (given.empty() ? "" : ", ") + opt->get_name();
      ATTNLAB_CHECK(given.empty() && args->config_file.empty(), "--resume continues the saved run with its own "
                    "settings; remove ", given.empty() ? std::string("--config") : given,
                    " (start a new run to change them)");
      const nlohmann::json info = trading::read_train_state_info(args->resume);
      mj = info.at("model");
      tj = info.at("train");
      run_info = info.value("run_info", nlohmann::json::object());
      if (args->data.empty()) {
        args->data = run_info.value("data", std::string());
        ATTNLAB_CHECK(!args->data.empty(), "--resume ", args->resume,
                      ": the state does not name its data; give --data");
        ATTNLAB_CHECK(std::filesystem::exists(args->data), "--resume ", args->resume, ": the saved run's data file ",
                      args->data, " does not exist; give --data");
      }
      if (args->out.empty()) args->out = args->resume;
    } else {
      ATTNLAB_CHECK(!args->data.empty(), "train: --data is required (unless --resume)");
      ATTNLAB_CHECK(!args->out.empty(), "train: --out is required (unless --resume)");
      nlohmann::json cfg = nlohmann::json::object();
      if (!args->config_file.empty()) {
        nlohmann::json train_keys = tj, model_keys = mj;
        train_keys["precision"] = args->train.precision;  // to_json leaves these defaults out
        train_keys["objective"] = args->train.objective;
        train_keys["stream_targets"] = args->train.stream_targets;
        model_keys["window"] = args->model.window;
        train_keys["causal"] = false;  // older files keep the model's causal setting here
        cfg = read_config_file(args->config_file, {{"model", model_keys}, {"train", train_keys}});
        nlohmann::json file_model = cfg.value("model", nlohmann::json::object());
        nlohmann::json file_train = cfg.value("train", nlohmann::json::object());
        try {
          trading::move_legacy_causal(file_model, file_train);
        } catch (const Error& e) {
          throw Error(args->config_file + ": " + e.what());
        }
        mj.update(file_model);
        tj.update(file_train);
        for (auto& [opt, apply] : *ov)
          if (opt->count() > 0) apply(mj, tj);
      }
      if (tj.value("objective", std::string("window")) == "stream") {
        // The stream objective's model is causal with RoPE, and its lookback is the receptive field unless
        // given (a longer one is allowed; a shorter one is refused by train_trader).
        auto given = [&cfg](const char* section, const char* key) {
          return cfg.contains(section) && cfg.at(section).contains(key);
        };
        mj["causal"] = true;
        if (args->positions_opt->count() == 0 && !given("model", "positions")) mj["positions"] = "rope";
        const int64_t W = mj.value("window", int64_t(0)), L = mj.value("n_layers", int64_t(1));
        ATTNLAB_CHECK(W > 0, "train: --objective stream trains a sliding-window model; give --window W (e.g. 32)");
        if (args->lookback_opt->count() == 0 && !given("train", "lookback")) tj["lookback"] = L * (W - 1) + 1;
      }
    }
    trading::TrainConfig tc = trading::TrainConfig::from_json(tj);
    tc.out_dir = args->out;
    tc.progress = !args->quiet;
    tc.device = device;
    tc.resume_from = args->resume;
    tc.stop_after_epoch = args->stop_after_epoch;
    tc.run_info = {{"data", std::filesystem::absolute(args->data).string()}};
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
    std::cerr << "model: " << model.num_parameters() << " parameters, " << mj.dump() << "\n"
              << "train: " << tc.to_json().dump() << "\n"
              << "device: " << device.str() << ", precision " << tc.precision << "\n";
    const trading::TrainResult r = trading::train_trader(model, ds, tc);
    if (r.interrupted) {
      std::cout << "stopped after epoch " << r.history.back().epoch << " of " << tc.epochs << " (" << r.steps
                << " steps); continue with: attnlab train --resume " << args->out << "\n";
      return;
    }
    const trading::EvalResult e = trading::evaluate(model, ds, ds.split.test);
    std::cout << "best epoch " << r.best_epoch << " (val loss " << r.best_val_loss << "), " << r.steps << " steps in "
              << r.seconds << " s" << (r.early_stopped ? ", stopped early" : "")
              << (r.start_epoch > 1 ? ", resumed at epoch " + std::to_string(r.start_epoch) : std::string()) << "\n"
              << "test split:\n" << e.table();
    nlohmann::json summary{{"train", {{"best_epoch", r.best_epoch}, {"best_val_loss", r.best_val_loss},
                                      {"steps", r.steps}, {"seconds", r.seconds}, {"early_stopped", r.early_stopped}}},
                           {"test", e.to_json()}};
    report::write_file_atomic(std::filesystem::path(args->out) / "eval.json", summary.dump(2));
    std::cout << "checkpoint: " << r.checkpoint << "\n";
  });
}

}  // namespace attnlab::cli
