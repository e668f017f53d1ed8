// `attnlab convert`: rewrites a GQATrader checkpoint with fewer KV heads (mha_to_gqa: each new KV head
// is the mean of the source KV heads of its group) and reports what that saves. The checkpoint's
// metadata (normalizer, features, train config, ...) is kept; its "model" section gets the new
// n_kv_heads, so `attnlab predict` loads the result as is. Fine-tune afterwards to recover quality.
#include <iostream>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "nn/serialization.h"
#include "tools/commands/commands.h"
#include "trading/models/gqa_trader.h"

namespace attnlab::cli {

void add_convert(CLI::App& app) {
  struct Args {
    std::string checkpoint, out;
    int64_t kv_heads = 0;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("convert", "Convert a GQATrader checkpoint to fewer KV heads (MHA -> GQA -> MQA by "
                                            "mean-pooling K/V heads) and save it");
  cmd->add_option("--checkpoint", args->checkpoint, "Input checkpoint (model.safetensors written by `attnlab train`)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", args->out, "Output checkpoint path")->required();
  cmd->add_option("--kv-heads", args->kv_heads, "Target KV heads; must divide the checkpoint's n_kv_heads (1 = MQA)")
      ->required()->check(CLI::PositiveNumber);
  cmd->callback([args] {
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
    nn::save_module(args->out, *dst, meta);

    auto row = [](const char* name, const trading::GQATrader& m) {
      std::printf("  %-7s %9lld %14lld %11lld %20lld\n", name, (long long)m.config.n_kv_heads,
                  (long long)m.num_parameters(), (long long)m.kv_cache_bytes_per_token(4),
                  (long long)m.kv_cache_bytes_per_token(4) * m.config.max_seq_len);
    };
    std::printf("converted %s -> %s (H %lld query heads, head_dim %lld, %lld layers)\n", args->checkpoint.c_str(),
                args->out.c_str(), (long long)mc.n_heads, (long long)mc.head_dim(), (long long)mc.n_layers);
    std::printf("  %-7s %9s %14s %11s %20s\n", "", "kv heads", "parameters", "KV B/token", "KV B/seq (max_len)");
    row("before", src);
    row("after", *dst);
    std::printf("  KV cache: %.3gx smaller; parameters: %lld fewer (f32 bytes; f16 halves both KV figures)\n",
                double(src.kv_cache_bytes_per_token(4)) / double(dst->kv_cache_bytes_per_token(4)),
                (long long)(src.num_parameters() - dst->num_parameters()));
  });
}

}  // namespace attnlab::cli
