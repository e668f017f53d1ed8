#include "nn/attention/cache_factory.h"

#include "nn/attention/paged_kv_cache.h"
#include "nn/attention/quantized_kv_cache.h"
#include "nn/attention/selective_kv_cache.h"

namespace attnlab::nn {

std::vector<std::string> cache_kinds() {
  return {"contiguous", "bf16", "f16", "sinks", "paged", "int8", "int4", "fp8", "int8-kivi", "int4-kivi", "fp8-kivi",
          "selective-attention", "selective-recency", "selective-entropy", "selective-hybrid"};
}

std::unique_ptr<KVCache> make_kv_cache(const CacheSpec& s, int64_t num_layers, int64_t batch, int64_t kv_heads,
                                       int64_t head_dim) {
  const std::string& k = s.kind;
  if (k == "contiguous" || k == "bf16" || k == "f16") {
    const DType dt = k == "bf16" ? DType::bf16 : k == "f16" ? DType::f16 : DType::f32;
    return std::make_unique<ContiguousKVCache>(num_layers, batch, s.max_len, kv_heads, head_dim, dt, s.window);
  }
  if (k == "sinks") {
    ATTNLAB_CHECK(s.sinks > 0 && s.sinks < s.max_len, "KV cache 'sinks': sinks ", s.sinks, " must be in [1, max_len ",
                  s.max_len, ")");
    // The ring attends the last max_len - sinks positions and has room for appends of max_append.
    const int64_t window = s.max_len - s.sinks, append = s.max_append > 0 ? s.max_append : s.max_len;
    return std::make_unique<ContiguousKVCache>(num_layers, batch, window + append - 1, kv_heads, head_dim, DType::f32,
                                               window, s.sinks, s.rope_base);
  }
  if (k == "paged") {
    const int64_t per_seq = (s.max_len + s.block_size - 1) / s.block_size;
    auto pool = std::make_shared<PagedKVPool>(num_layers, per_seq * batch, kv_heads, head_dim, s.block_size);
    std::vector<PagedKVPool::SeqId> seqs;
    for (int64_t b = 0; b < batch; ++b) seqs.push_back(pool->add_sequence());
    return std::make_unique<PagedKVCache>(pool, seqs);
  }
  if (k.starts_with("selective-")) {
    SelectiveKVConfig c;
    c.strategy = parse_retention(k.substr(10));
    c.max_size = s.max_len, c.sinks = s.sinks, c.recent = s.recent, c.max_append = s.max_append;
    return std::make_unique<SelectiveKVCache>(num_layers, batch, kv_heads, head_dim, c);
  }
  for (const char* q : {"int8", "int4", "fp8"})
    if (k == q || k == std::string(q) + "-kivi") {
      QuantizedKVConfig c = parse_quantized_kv(k);
      c.window = s.quant_window;
      return std::make_unique<QuantizedKVCache>(num_layers, batch, s.max_len, kv_heads, head_dim, c);
    }
  std::string names;
  for (const auto& n : cache_kinds()) names += (names.empty() ? "" : ", ") + n;
  throw Error("unknown KV cache kind '" + k + "' (expected one of: " + names + ")");
}

}  // namespace attnlab::nn
