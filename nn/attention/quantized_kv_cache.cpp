#include "nn/attention/quantized_kv_cache.h"

#include <algorithm>

#include "nn/attention/cache_attention.h"
#include "tensor/creation.h"
#include "tensor/ops.h"

namespace attnlab::nn {

using kernels::QuantFormat;

QuantizedKVConfig parse_quantized_kv(const std::string& name) {
  QuantizedKVConfig c;
  std::string base = name;
  if (base.size() > 5 && base.ends_with("-kivi")) {
    c.kivi = true;
    base.resize(base.size() - 5);
  }
  if (base == "int8") c.format = QuantFormat::int8;
  else if (base == "int4") c.format = QuantFormat::int4;
  else if (base == "fp8" || base == "fp8_e4m3") c.format = QuantFormat::fp8_e4m3;
  else throw Error("unknown quantized KV format '" + name + "' (expected int8, int4 or fp8, optionally with -kivi)");
  return c;
}

QuantizedKVCache::QuantizedKVCache(int64_t num_layers, int64_t batch, int64_t max_len, int64_t kv_heads,
                                   int64_t head_dim, const QuantizedKVConfig& cfg)
    : batch_(batch), kv_heads_(kv_heads), head_dim_(head_dim), cfg_(cfg) {
  ATTNLAB_CHECK(num_layers > 0 && batch > 0 && max_len > 0 && kv_heads > 0 && head_dim > 0,
                "QuantizedKVCache: all sizes must be positive (layers ", num_layers, ", batch ", batch, ", max_len ",
                max_len, ", kv_heads ", kv_heads, ", head_dim ", head_dim, ")");
  ATTNLAB_CHECK(cfg.window >= 0 && cfg.group >= 0 && (!cfg.kivi || cfg.kivi_block > 0),
                "QuantizedKVCache: window, group and kivi_block must be >= 0 (kivi_block > 0 with KIVI)");
  group_ = cfg.group > 0 ? std::min(cfg.group, head_dim)
                         : (cfg.format == QuantFormat::int4 ? std::min<int64_t>(32, head_dim) : head_dim);
  ATTNLAB_CHECK(cfg.format != QuantFormat::int4 || group_ % 2 == 0, "QuantizedKVCache: int4 packs pairs, so the ",
                "group (", group_, ") must be even");
  groups_ = (head_dim + group_ - 1) / group_;
  code_row_ = kernels::quant_code_bytes(cfg.format, head_dim);
  const int64_t block = cfg.kivi ? cfg.kivi_block : 1;
  capacity_ = (max_len + block - 1) / block * block;
  window_cap_ = cfg.window + block;
  const int64_t BH = batch * kv_heads;
  for (int64_t l = 0; l < num_layers; ++l) {
    Layer L;
    L.k_codes = zeros({BH, capacity_, code_row_}, DType::u8);
    L.v_codes = zeros({BH, capacity_, code_row_}, DType::u8);
    // f16 tensors hold the scales' bits (kernels read them as uint16_t).
    L.k_scales = cfg.kivi ? zeros({BH, capacity_ / block, head_dim}, DType::f16) : zeros({BH, capacity_, groups_}, DType::f16);
    L.v_scales = zeros({BH, capacity_, groups_}, DType::f16);
    L.k_window = zeros({BH, window_cap_, head_dim}, DType::f32);
    L.v_window = zeros({BH, window_cap_, head_dim}, DType::f32);
    layers_.push_back(std::move(L));
  }
}

const QuantizedKVCache::Layer& QuantizedKVCache::layer_at(int64_t layer) const {
  return layers_[size_t(checked_layer(layer))];
}

std::vector<int64_t> QuantizedKVCache::positions(int64_t layer) const {
  return std::vector<int64_t>(size_t(batch_), layer_at(layer).n_total);
}
int64_t QuantizedKVCache::length(int64_t layer) const { return layer_at(layer).n_total; }
int64_t QuantizedKVCache::quantized_length(int64_t layer) const { return layer_at(layer).n_quant; }

void QuantizedKVCache::flush(Layer& L, int64_t count) {
  const int64_t D = head_dim_, BH = batch_ * kv_heads_, j0 = L.n_quant;
  auto* kc = L.k_codes.data<uint8_t>();
  auto* vc = L.v_codes.data<uint8_t>();
  auto* ks = static_cast<uint16_t*>(L.k_scales.raw_data());
  auto* vs = static_cast<uint16_t*>(L.v_scales.raw_data());
  const float* kw = L.k_window.data<float>();
  const float* vw = L.v_window.data<float>();
  std::vector<float> block(size_t(count * D));
  for (int64_t bg = 0; bg < BH; ++bg) {
    auto window_row = [&](const float* w, int64_t j) { return w + (bg * window_cap_ + j % window_cap_) * D; };
    uint16_t* kivi_scales = nullptr;
    if (cfg_.kivi) {  // one scale per channel over the whole block of positions
      for (int64_t i = 0; i < count; ++i) std::copy_n(window_row(kw, j0 + i), D, block.data() + i * D);
      kivi_scales = ks + (bg * (capacity_ / cfg_.kivi_block) + j0 / cfg_.kivi_block) * D;
      kernels::channel_scales(cfg_.format, block.data(), count, D, D, kivi_scales);
    }
    for (int64_t i = 0; i < count; ++i) {
      const int64_t j = j0 + i;
      uint8_t* kcode = kc + (bg * capacity_ + j) * code_row_;
      if (kivi_scales) {
        kernels::quantize(cfg_.format, window_row(kw, j), D, 1, kivi_scales, kcode);
      } else {
        uint16_t* s = ks + (bg * capacity_ + j) * groups_;
        kernels::quant_scales(cfg_.format, window_row(kw, j), D, group_, s);
        kernels::quantize(cfg_.format, window_row(kw, j), D, group_, s, kcode);
      }
      uint16_t* s = vs + (bg * capacity_ + j) * groups_;
      kernels::quant_scales(cfg_.format, window_row(vw, j), D, group_, s);
      kernels::quantize(cfg_.format, window_row(vw, j), D, group_, s, vc + (bg * capacity_ + j) * code_row_);
    }
  }
  L.n_quant += count;
}

void QuantizedKVCache::append(int64_t layer, const Tensor& k0, const Tensor& v0) {
  detail::check_append(name(), layer, num_layers(), k0, v0, batch_, kv_heads_, head_dim_);
  Layer& L = layers_[size_t(layer)];
  const int64_t T = k0.size(1), D = head_dim_;
  ATTNLAB_CHECK(L.n_total + T <= capacity_, name(), "::append: ", L.n_total, " + ", T, " positions exceed the ",
                capacity_, " it holds (layer ", layer, ")");
  const Tensor k = ops::contiguous(ops::to_dtype(k0, DType::f32)), v = ops::contiguous(ops::to_dtype(v0, DType::f32));
  const float* ks = k.data<float>();
  const float* vs = v.data<float>();
  float* kw = L.k_window.data<float>();
  float* vw = L.v_window.data<float>();
  const int64_t block = cfg_.kivi ? cfg_.kivi_block : 1;
  for (int64_t t = 0; t < T; ++t) {  // one position at a time, so the window never overflows its ring
    for (int64_t b = 0; b < batch_; ++b)
      for (int64_t g = 0; g < kv_heads_; ++g) {
        const int64_t src = ((b * T + t) * kv_heads_ + g) * D;
        const int64_t dst = ((b * kv_heads_ + g) * window_cap_ + L.n_total % window_cap_) * D;
        std::copy_n(ks + src, D, kw + dst);
        std::copy_n(vs + src, D, vw + dst);
      }
    ++L.n_total;
    if (L.n_total - L.n_quant >= cfg_.window + block) flush(L, block);
  }
}

CacheAttentionResult QuantizedKVCache::attend(int64_t layer, const Tensor& q, const CacheAttentionOptions& opt) {
  detail::check_query(name(), q, batch_, kv_heads_, head_dim_, DType::f32);
  const Layer& L = layer_at(layer);
  kernels::QuantKVReader r;
  r.format = cfg_.format;
  r.Hkv = kv_heads_, r.D = head_dim_, r.capacity = capacity_, r.code_row = code_row_;
  r.group = group_, r.groups = groups_;
  r.key_block = cfg_.kivi ? cfg_.kivi_block : 0;
  r.k_codes = L.k_codes.data<uint8_t>(), r.v_codes = L.v_codes.data<uint8_t>();
  r.k_scales = static_cast<const uint16_t*>(L.k_scales.raw_data());
  r.v_scales = static_cast<const uint16_t*>(L.v_scales.raw_data());
  r.k_window = L.k_window.data<float>(), r.v_window = L.v_window.data<float>();
  r.window_cap = window_cap_, r.n_quant = L.n_quant, r.n_total = L.n_total;
  return detail::decode<float>(name(), q, r, kv_heads_, L.n_total, opt);
}

void QuantizedKVCache::clear() {
  for (Layer& L : layers_) L.n_quant = L.n_total = 0;
}

int64_t QuantizedKVCache::key_scale_bytes(int64_t n_quant) const {
  return cfg_.kivi ? n_quant / cfg_.kivi_block * head_dim_ * 2 : n_quant * groups_ * 2;
}

int64_t QuantizedKVCache::bytes_used() const {
  int64_t per_bh = 0;
  for (const Layer& L : layers_)
    per_bh += L.n_quant * (2 * code_row_ + groups_ * 2) + key_scale_bytes(L.n_quant) +
              (L.n_total - L.n_quant) * 2 * head_dim_ * 4;
  return per_bh * batch_ * kv_heads_;
}

int64_t QuantizedKVCache::bytes_reserved() const {
  int64_t s = 0;
  for (const Layer& L : layers_)
    for (const Tensor* t : {&L.k_codes, &L.v_codes, &L.k_scales, &L.v_scales, &L.k_window, &L.v_window})
      s += int64_t(t->nbytes());
  return s;
}

std::string QuantizedKVCache::name() const {
  return cat("QuantizedKVCache(", kernels::quant_format_name(cfg_.format), cfg_.kivi ? "-kivi" : "",
             cfg_.window > 0 ? cat(", window ", cfg_.window) : std::string(), ")");
}

}  // namespace attnlab::nn
