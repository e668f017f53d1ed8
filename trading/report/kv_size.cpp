#include "trading/report/kv_size.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "kernels/error.h"

namespace attnlab::report {

const std::vector<std::string>& kv_storage_kinds() {
  static const std::vector<std::string> kinds = {"f32", "bf16", "int8", "int4", "fp8"};
  return kinds;
}

std::int64_t kv_bytes_per_position(const std::string& kind, std::int64_t n_layers, std::int64_t kv_heads,
                                   std::int64_t head_dim) {
  ATTNLAB_CHECK(n_layers > 0 && kv_heads > 0 && head_dim > 0, "kv_bytes_per_position: sizes must be positive (layers ",
                n_layers, ", kv_heads ", kv_heads, ", head_dim ", head_dim, ")");
  const std::int64_t D = head_dim;
  std::int64_t per_head = 0;  // K and V of one position and KV head
  if (kind == "f32") {
    per_head = 2 * D * 4;
  } else if (kind == "bf16") {
    per_head = 2 * D * 2;
  } else if (kind == "int8" || kind == "fp8" || kind == "int4") {
    const bool int4 = kind == "int4";
    const std::int64_t group = int4 ? std::min<std::int64_t>(32, D) : D;
    const std::int64_t groups = (D + group - 1) / group;
    const std::int64_t code_row = int4 ? (D + 1) / 2 : D;
    per_head = 2 * code_row + 2 * 2 * groups;  // codes of K and V + one f16 scale per group for each
  } else {
    throw Error(cat("kv_bytes_per_position: unknown storage kind '", kind, "' (f32, bf16, int8, int4, fp8)"));
  }
  return n_layers * kv_heads * per_head;
}

std::int64_t middle_kv_heads(std::int64_t n_heads) {
  std::int64_t below = 0, above = 0;
  for (std::int64_t d = 2; d < n_heads; ++d) {
    if (n_heads % d) continue;
    if (d * d <= n_heads) below = d;
    else if (!above) above = d;
  }
  return below ? below : above;
}

std::vector<KvVariant> kv_variants(std::int64_t n_heads, std::int64_t model_kv_heads) {
  ATTNLAB_CHECK(n_heads > 0 && model_kv_heads > 0 && n_heads % model_kv_heads == 0, "kv_variants: ", model_kv_heads,
                " KV heads do not divide ", n_heads, " query heads");
  std::vector<KvVariant> v;
  v.push_back({"MHA", n_heads, model_kv_heads == n_heads});
  const bool model_is_gqa = model_kv_heads > 1 && model_kv_heads < n_heads;
  const std::int64_t g = model_is_gqa ? model_kv_heads : middle_kv_heads(n_heads);
  if (g > 0) v.push_back({"GQA", g, model_is_gqa});
  if (n_heads > 1) v.push_back({"MQA", 1, model_kv_heads == 1});
  return v;
}

KvSizeTable kv_size_table(std::int64_t n_layers, std::int64_t n_heads, std::int64_t model_kv_heads,
                          std::int64_t head_dim, std::int64_t seq_len) {
  ATTNLAB_CHECK(seq_len > 0, "kv_size_table: seq_len must be positive, got ", seq_len);
  KvSizeTable t;
  t.seq_len = seq_len;
  t.kinds = kv_storage_kinds();
  t.variants = kv_variants(n_heads, model_kv_heads);
  for (const KvVariant& v : t.variants) {
    std::vector<double> row;
    for (const std::string& k : t.kinds)
      row.push_back(double(kv_bytes_per_position(k, n_layers, v.kv_heads, head_dim) * seq_len));
    t.bytes.push_back(row);
  }
  return t;
}

std::string bytes_text(double b) {
  char buf[32];
  if (!std::isfinite(b)) return "NaN";
  if (std::fabs(b) < 1024) std::snprintf(buf, sizeof buf, "%.0f B", b);
  else if (std::fabs(b) < 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.3g KiB", b / 1024);
  else if (std::fabs(b) < 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.3g MiB", b / (1024.0 * 1024));
  else std::snprintf(buf, sizeof buf, "%.3g GiB", b / (1024.0 * 1024 * 1024));
  return buf;
}

}  // namespace attnlab::report
