// Quantized KV cache: K and V stored as int8, int4 or FP8 E4M3 codes with f16 scales
// (kernels/cpu/kv_quant.h), dequantized row by row inside the attention loop — never as a whole.
//
//   per token (default): one scale per (position, KV head) for int8 and fp8 (group = D), one per 32
//       channels for int4 (group-wise, as llama.cpp's Q4 formats), for both K and V.
//   KIVI (Liu et al. 2024): keys per channel — one scale per channel for each block of kivi_block
//       positions, since key outliers sit in fixed channels — values per token. A key block is
//       quantized when it is complete; until then its positions stay in the full-precision window.
//   window: the most recent `window` positions stay in f32 (KIVI's residual) and are quantized as
//       they age out.
//
// Storage per layer (head-major so a (row, KV head) reads its positions contiguously):
//   codes K, V   [B, Hkv, capacity, code_row] u8        code_row = D (int8, fp8) or D/2 (int4)
//   V scales     [B, Hkv, capacity, groups] f16          groups = ceil(D / group)
//   K scales     the same, or [B, Hkv, capacity / kivi_block, D] f16 with KIVI
//   window K, V  [B, Hkv, window + (kivi ? kivi_block : 1), D] f32, a ring
// Bytes per quantized position and KV head: 2 * code_row + 2 * 2 * groups (K and V scales), e.g. at
// D = 32: int8 68 vs 256 f32 (3.76x smaller), int4 36 (7.1x); at D = 128: int8 3.94x, int4 7.1x.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/kv_quant.h"
#include "nn/attention/kv_cache.h"

namespace attnlab::nn {

struct QuantizedKVConfig {
  kernels::QuantFormat format = kernels::QuantFormat::int8;
  int64_t group = 0;         // channels per scale (per-token quantization); 0: D, or 32 for int4
  bool kivi = false;         // keys per channel, values per token
  int64_t kivi_block = 32;   // positions per key scale block with KIVI
  int64_t window = 0;        // newest positions kept in f32
};

// "int8", "int4", "fp8" (fp8_e4m3), with an optional "-kivi" suffix; throws on other names.
QuantizedKVConfig parse_quantized_kv(const std::string& name);

class QuantizedKVCache : public KVCache {
 public:
  QuantizedKVCache(int64_t num_layers, int64_t batch, int64_t max_len, int64_t kv_heads, int64_t head_dim,
                   const QuantizedKVConfig& config = {});
  int64_t num_layers() const override { return int64_t(layers_.size()); }
  int64_t batch() const override { return batch_; }
  std::vector<int64_t> positions(int64_t layer) const override;
  int64_t length(int64_t layer) const override;
  void append(int64_t layer, const Tensor& k, const Tensor& v) override;  // f32 k, v
  CacheAttentionResult attend(int64_t layer, const Tensor& q, const CacheAttentionOptions& opt) override;
  void clear() override;
  int64_t bytes_used() const override;
  int64_t bytes_reserved() const override;
  std::string name() const override;

  const QuantizedKVConfig& config() const { return cfg_; }
  // Positions of `layer` held as codes (the rest are in the f32 window).
  int64_t quantized_length(int64_t layer) const;

 private:
  struct Layer {
    Tensor k_codes, v_codes, k_scales, v_scales, k_window, v_window;
    int64_t n_quant = 0, n_total = 0;
  };
  const Layer& layer_at(int64_t layer) const;
  void flush(Layer& L, int64_t count);  // quantizes the `count` oldest window positions
  int64_t key_scale_bytes(int64_t n_quant) const;

  int64_t batch_, capacity_, kv_heads_, head_dim_, code_row_, group_, groups_, window_cap_;
  QuantizedKVConfig cfg_;
  std::vector<Layer> layers_;
};

}  // namespace attnlab::nn
