// `attnlab convert`: rewrites a GQATrader checkpoint with fewer KV heads (mha_to_gqa: each new KV head
// is the mean of the source KV heads of its group) and reports what that saves. The checkpoint's
// metadata (normalizer, features, train config, ...) is kept; its "model" section gets the new
// n_kv_heads, so `attnlab predict` loads the result as is.
//
// Then, optionally, uptraining (the GQA paper's second step): with --uptrain-data the converted model
// is fine-tuned with the trainer on that CSV, scaled with the checkpoint's own normalizer and split as
// its training was (lookback, horizon, fractions, causal). The starting (converted) weights count as
// epoch 0, so the result's validation loss is never worse than the converted model's. --out then holds
// the uptrained model; the training files (history, loss curve, train_state, the converted model
// before uptraining as converted.safetensors) go to --uptrain-dir.
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "nn/serialization.h"
#include "tensor/creation.h"
#include "tools/commands/commands.h"
#include "tools/commands/trader_common.h"
#include "trading/models/gqa_trader.h"
#include "trading/train/trader_checkpoint.h"
#include "trading/train/trainer.h"

namespace attnlab::cli {

void add_convert(CLI::App& app) {
  struct Args {
    std::string checkpoint, out, uptrain_data, uptrain_dir;
    int64_t kv_heads = 0;
    int uptrain_epochs = 3;
    double uptrain_lr = 0;
    uint64_t seed = 0;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("convert", "Convert a GQATrader checkpoint to fewer KV heads (MHA -> GQA -> MQA by "
                                            "mean-pooling K/V heads), optionally uptrain it, and save it");
  cmd->add_option("--checkpoint", args->checkpoint, "Input checkpoint (model.safetensors written by `attnlab train`)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", args->out, "Output checkpoint path (the uptrained model when --uptrain-data is given)")
      ->required();
  cmd->add_option("--kv-heads", args->kv_heads, "Target KV heads; must divide the checkpoint's n_kv_heads (1 = MQA)")
      ->required()->check(CLI::PositiveNumber);
  cmd->add_option("--uptrain-data", args->uptrain_data,
                  "Fine-tune the converted model on this OHLCV CSV (the checkpoint's normalizer, lookback, horizon, "
                  "split and causal setting; the best epoch by validation loss is kept, the converted weights "
                  "being epoch 0)")->check(CLI::ExistingFile);
  cmd->add_option("--uptrain-epochs", args->uptrain_epochs, "Uptraining epochs")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--uptrain-lr", args->uptrain_lr, "Uptraining AdamW learning rate (0 = the checkpoint's lr)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--uptrain-dir", args->uptrain_dir,
                  "Directory for the uptraining files (history.csv, loss_curve.png, train_state, "
                  "converted.safetensors); default: <out without extension>_uptrain");
  cmd->add_option("--seed", args->seed, "Uptraining shuffle seed")->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  cmd->callback([args] {
    namespace fs = std::filesystem;
    const bool uptrain = !args->uptrain_data.empty();
    nlohmann::json meta = nn::read_module_config(args->checkpoint);
    ATTNLAB_CHECK(meta.is_object() && meta.contains("model"), args->checkpoint,
                  ": not a GQATrader checkpoint (no \"model\" config in its metadata)");
    const trading::TraderConfig mc = trading::TraderConfig::from_json(meta.at("model"));
    ATTNLAB_CHECK(args->kv_heads <= mc.n_kv_heads && mc.n_kv_heads % args->kv_heads == 0, "--kv-heads ",
                  args->kv_heads, " must divide the checkpoint's n_kv_heads (", mc.n_kv_heads, ")");
    trading::GQATrader src(mc);
    nn::load_module(args->checkpoint, src);
    const std::shared_ptr<trading::GQATrader> dst = trading::mha_to_gqa(src, args->kv_heads);
    meta["model"] = dst->config.to_json();
    meta["converted_from"] = {{"checkpoint", args->checkpoint}, {"n_kv_heads", mc.n_kv_heads},
                              {"method", "mean pooling"}};

    auto row = [](const char* name, const trading::GQATrader& m) {
      std::printf("  %-7s %9lld %14lld %11lld %20lld\n", name, (long long)m.config.n_kv_heads,
                  (long long)m.num_parameters(), (long long)m.kv_cache_bytes_per_token(4),
                  (long long)m.kv_cache_bytes_per_token(4) * m.config.max_seq_len);
    };
    std::printf("converted %s (H %lld query heads, head_dim %lld, %lld layers)\n", args->checkpoint.c_str(),
                (long long)mc.n_heads, (long long)mc.head_dim(), (long long)mc.n_layers);
    std::printf("  %-7s %9s %14s %11s %20s\n", "", "kv heads", "parameters", "KV B/token", "KV B/seq (max_len)");
    row("before", src);
    row("after", *dst);
    std::printf("  KV cache: %.3gx smaller; parameters: %lld fewer (f32 bytes; f16 halves both KV figures)\n",
                double(src.kv_cache_bytes_per_token(4)) / double(dst->kv_cache_bytes_per_token(4)),
                (long long)(src.num_parameters() - dst->num_parameters()));
    if (!uptrain) {
      nn::save_module(args->out, *dst, meta);
      std::printf("wrote %s\n", args->out.c_str());
      return;
    }

    // Uptraining: the checkpoint's data handling, the trainer with the converted weights as epoch 0.
    const trading::TraderCheckpoint ck = trading::read_trader_checkpoint(args->checkpoint);
    SeriesFeatures sf = load_series_features(args->uptrain_data, ck.features);
    const trading::TraderDataset ds = trading::checkpoint_dataset(ck, std::move(sf.features), sf.series.close);
    trading::TrainConfig tc = ck.train;
    tc.epochs = args->uptrain_epochs;
    if (args->uptrain_lr > 0) tc.lr = args->uptrain_lr;
    tc.seed = args->seed;
    tc.max_steps = 0;
    tc.start_as_best = true;
    tc.progress = !args->quiet;
    const fs::path out(args->out);
    tc.out_dir = !args->uptrain_dir.empty()
                     ? args->uptrain_dir
                     : ((out.has_parent_path() ? out.parent_path() : fs::path(".")) /
                        (out.stem().string() + "_uptrain")).string();
    fs::create_directories(tc.out_dir);
    nn::save_module((fs::path(tc.out_dir) / "converted.safetensors").string(), *dst, meta);
    std::printf("uptraining on %s: %zu train / %zu val samples, %d epochs, lr %g, files in %s\n",
                args->uptrain_data.c_str(), ds.split.train.size(), ds.split.val.size(), tc.epochs, tc.lr,
                tc.out_dir.c_str());
    const trading::TrainResult r = trading::train_trader(*dst, ds, tc);
    nlohmann::json out_meta = nn::read_module_config(r.checkpoint);  // the trainer's config of the best epoch
    out_meta["converted_from"] = meta["converted_from"];
    out_meta["converted_from"]["uptrain"] = {{"data", args->uptrain_data}, {"epochs", tc.epochs},
                                            {"val_loss_before", r.initial_val_loss},
                                            {"val_loss_after", r.best_val_loss}, {"best_epoch", r.best_epoch}};
    nn::save_module(args->out, *dst, out_meta);
    std::printf("validation loss: converted %.6g -> uptrained %.6g (best epoch %d of %d%s)\n", r.initial_val_loss,
                r.best_val_loss, r.best_epoch, tc.epochs, r.best_epoch == 0 ? ": no epoch beat the converted model, "
                "which is kept" : "");
    std::printf("wrote %s\n", args->out.c_str());
  });
}

}  // namespace attnlab::cli
