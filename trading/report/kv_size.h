// KV-cache size of one sequence for each storage kind and for the MHA / GQA / MQA variants of a model:
// the numbers behind the report's "KV-cache size" bars and `attnlab compare attention`.
//
// Per position (token), over all layers, with Hkv key/value heads of dimension D:
//   f32, bf16:       n_layers * 2 (K and V) * Hkv * D * 4 or 2 bytes   (GQATrader::kv_cache_bytes_per_token)
//   int8, fp8:       n_layers * Hkv * (2 * D + 2 * 2 * groups)         codes + an f16 scale per group, K and V
//   int4:            n_layers * Hkv * (2 * ceil(D / 2) + 2 * 2 * groups)
// with groups = ceil(D / group), group = D for int8/fp8 and min(32, D) for int4: the per-token layout of
// nn::QuantizedKVCache (nn/attention/quantized_kv_cache.h) with no f32 window and no KIVI, whose
// bytes_used() equals these numbers exactly (checked by a test against the class). A sequence of S
// positions needs S times the per-position bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::report {

// "f32", "bf16", "int8", "int4", "fp8" — the order of the bars.
const std::vector<std::string>& kv_storage_kinds();

// Bytes one position costs over all layers; attnlab::Error for an unknown kind or non-positive sizes.
std::int64_t kv_bytes_per_position(const std::string& kind, std::int64_t n_layers, std::int64_t kv_heads,
                                   std::int64_t head_dim);

// The "middle" KV-head count for H query heads: the largest divisor of H in (1, H) not above sqrt(H)
// (4 -> 2, 8 -> 2, 16 -> 4, 12 -> 3, 6 -> 2), or the smallest divisor above 1 when none is; 0 when H has
// no divisor strictly between 1 and H (H prime or H <= 2: no GQA between MHA and MQA).
std::int64_t middle_kv_heads(std::int64_t n_heads);

struct KvVariant {
  std::string name;         // "MHA", "GQA", "MQA"
  std::int64_t kv_heads = 0;
  bool is_model = false;    // the model's own configuration
};

// MHA (Hkv = H), GQA (the model's Hkv when 1 < Hkv < H, else middle_kv_heads(H), left out when 0),
// MQA (Hkv = 1).
std::vector<KvVariant> kv_variants(std::int64_t n_heads, std::int64_t model_kv_heads);

struct KvSizeTable {
  std::int64_t seq_len = 0;
  std::vector<std::string> kinds;         // storage kinds (categories)
  std::vector<KvVariant> variants;        // series
  std::vector<std::vector<double>> bytes; // [variant][kind] bytes per sequence of seq_len positions
};

// Every variant x storage kind for a model of n_layers, H heads, Hkv = model_kv_heads, head_dim D.
KvSizeTable kv_size_table(std::int64_t n_layers, std::int64_t n_heads, std::int64_t model_kv_heads,
                          std::int64_t head_dim, std::int64_t seq_len);

// Human text: "1.5 KiB", "12 MiB", "512 B".
std::string bytes_text(double bytes);

}  // namespace attnlab::report
