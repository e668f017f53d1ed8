#include "nn/attention/kv_cache.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/convert.h"

#include "nn/attention/cache_attention.h"
#include "nn/attention/sdpa.h"
#include "tensor/creation.h"
#include "tensor/ops.h"

namespace attnlab::nn {

int64_t KVCache::position(int64_t layer) const {
  const std::vector<int64_t> p = positions(layer);
  ATTNLAB_CHECK(!p.empty() && std::all_of(p.begin(), p.end(), [&](int64_t x) { return x == p[0]; }), name(),
                ": the batch rows are at different positions (a ragged batch); use positions()");
  return p[0];
}

int64_t KVCache::checked_layer(int64_t layer) const {
  ATTNLAB_CHECK(layer >= 0 && layer < num_layers(), name(), ": layer ", layer, " out of range (", num_layers(),
                " layers)");
  return layer;
}

namespace detail {

void check_append(const std::string& cache, int64_t layer, int64_t num_layers, const Tensor& k, const Tensor& v,
                  int64_t B, int64_t Hkv, int64_t D) {
  ATTNLAB_CHECK(layer >= 0 && layer < num_layers, cache, ": layer ", layer, " out of range (", num_layers,
                " layers)");
  ATTNLAB_CHECK(k.dim() == 4 && k.size(0) == B && k.size(1) >= 1 && k.size(2) == Hkv && k.size(3) == D &&
                    v.shape() == k.shape(),
                cache, "::append: k ", describe(k), " and v ", describe(v), " must both be [", B, ", T_new, ", Hkv,
                ", ", D, "]");
  ATTNLAB_CHECK(is_floating(k.dtype()) && v.dtype() == k.dtype(), cache, "::append: k ", describe(k), " and v ",
                describe(v), " must share a floating dtype");
  check_host(cache, "append", k);
  check_host(cache, "append", v);
}

void check_host(const std::string& cache, const char* what, const Tensor& t) {
  // The caches and their decode kernels live on the host: a device pointer would be read as a host one.
  ATTNLAB_CHECK(t.device() == kCPU, cache, "::", what, ": ", describe(t), " is on ", t.device().str(),
                "; KV caches live on the CPU (run cached decoding with the model on the CPU: .to(kCPU))");
}

void check_query(const std::string& cache, const Tensor& q, int64_t B, int64_t Hkv, int64_t D, DType dtype) {
  ATTNLAB_CHECK(q.dim() == 4 && q.size(0) == B && q.size(3) == D && q.size(2) % Hkv == 0 && q.size(1) >= 1, cache,
                "::attend: q ", describe(q), " must be [", B, ", T_new, H, ", D, "] with H a multiple of ", Hkv);
  ATTNLAB_CHECK(q.dtype() == dtype, cache, "::attend: q ", describe(q), " must be ", dtype_name(dtype));
  check_host(cache, "attend", q);
  ATTNLAB_CHECK(q.stride(3) == 1, cache, "::attend: q's head dim must be contiguous, got strides of ", describe(q));
  ATTNLAB_CHECK(!(q.requires_grad() && GradMode::is_enabled()), cache,
                "::attend: KV-cache attention is for inference and has no backward; run it under NoGradGuard");
}

}  // namespace detail

ContiguousKVCache::ContiguousKVCache(int64_t num_layers, int64_t batch, int64_t max_len, int64_t kv_heads,
                                     int64_t head_dim, DType dtype, int64_t window)
    : batch_(batch), max_len_(max_len), kv_heads_(kv_heads), head_dim_(head_dim), window_(window), dtype_(dtype) {
  ATTNLAB_CHECK(num_layers > 0 && batch > 0 && max_len > 0 && kv_heads > 0 && head_dim > 0,
                "ContiguousKVCache: all sizes must be positive (layers ", num_layers, ", batch ", batch,
                ", max_len ", max_len, ", kv_heads ", kv_heads, ", head_dim ", head_dim, ")");
  ATTNLAB_CHECK(is_floating(dtype), "ContiguousKVCache: dtype must be f32, f64, bf16 or f16, got ", dtype_name(dtype));
  ATTNLAB_CHECK(window >= 0 && window <= max_len, "ContiguousKVCache: window ", window, " must be in [0, max_len ",
                max_len, "]");
  for (int64_t l = 0; l < num_layers; ++l) {
    k_.push_back(zeros({batch, max_len, kv_heads, head_dim}, dtype));
    v_.push_back(zeros({batch, max_len, kv_heads, head_dim}, dtype));
  }
  pos_.assign(size_t(num_layers), 0);
}


std::vector<int64_t> ContiguousKVCache::positions(int64_t layer) const {
  return std::vector<int64_t>(size_t(batch_), pos_[size_t(checked_layer(layer))]);
}

int64_t ContiguousKVCache::length(int64_t layer) const {
  return std::min(pos_[size_t(checked_layer(layer))], max_len_);
}

void ContiguousKVCache::append(int64_t layer, const Tensor& k, const Tensor& v) {
  detail::check_append(name(), layer, num_layers(), k, v, batch_, kv_heads_, head_dim_);
  const int64_t t = k.size(1), pos = pos_[size_t(layer)];
  if (window_ == 0)
    ATTNLAB_CHECK(pos + t <= max_len_, name(), "::append: ", pos, " + ", t, " positions exceed max_len ", max_len_,
                  " (layer ", layer, ")");
  else
    ATTNLAB_CHECK(t <= max_len_ - window_ + 1, name(), "::append: ", t, " positions at once, but a ring of ",
                  max_len_, " slots with window ", window_, " takes at most ", max_len_ - window_ + 1,
                  " per append (split the input)");
  // Position p goes to slot p % max_len; a wrapping append is two copies.
  for (int64_t done = 0; done < t;) {
    const int64_t slot = (pos + done) % max_len_, n = std::min(t - done, max_len_ - slot);
    ops::copy_(ops::narrow(k_[size_t(layer)], 1, slot, n), ops::narrow(k, 1, done, n));
    ops::copy_(ops::narrow(v_[size_t(layer)], 1, slot, n), ops::narrow(v, 1, done, n));
    done += n;
  }
  pos_[size_t(layer)] = pos + t;
}

CacheAttentionResult ContiguousKVCache::attend(int64_t layer, const Tensor& q, const CacheAttentionOptions& opt) {
  const DType compute = dtype_ == DType::f64 ? DType::f64 : DType::f32;
  detail::check_query(name(), q, batch_, kv_heads_, head_dim_, compute);
  const int64_t L = length(layer), pos = pos_[size_t(layer)];
  if (q.size(1) >= kFlashPrefill && window_ == 0 && !opt.return_weights && dtype_ == compute) {
    // A prefill: many queries against an unwrapped buffer, which the tiled flash kernel does faster
    // than the decode loop (same maths, causal bottom-right aligned = by position here).
    const auto [k, v] = get(layer);
    AttentionOptions a;
    a.causal = opt.causal;
    a.scale = opt.scale;
    return {scaled_dot_product_attention(q, k, v, a).out, Tensor()};
  }
  const std::vector<int64_t> lengths(size_t(batch_), L), positions_b(size_t(batch_), pos);
  auto run = [&]<class T, class S>() {
    return detail::decode<T>(name(), q, reader<T, S>(layer, lengths.data(), positions_b.data()), kv_heads_, L, opt,
                             window_);
  };
  switch (dtype_) {
    case DType::f64: return run.template operator()<double, double>();
    case DType::bf16: return run.template operator()<float, kernels::bf16_bits>();
    case DType::f16: return run.template operator()<float, kernels::f16_bits>();
    default: return run.template operator()<float, float>();
  }
}

template <class T, class S>
kernels::DenseKVReader<T, S> ContiguousKVCache::reader(int64_t layer, const int64_t* lengths,
                                                        const int64_t* positions_b) const {
  kernels::DenseKVReader<T, S> r;
  r.k = static_cast<const S*>(k_[size_t(layer)].raw_data());
  r.v = static_cast<const S*>(v_[size_t(layer)].raw_data());
  r.stride_b = max_len_ * kv_heads_ * head_dim_, r.stride_s = kv_heads_ * head_dim_, r.stride_h = head_dim_;
  r.D = head_dim_, r.Hkv = kv_heads_;
  r.capacity = max_len_;
  r.ring_start = (positions_b[0] - lengths[0]) % max_len_;  // the slot of the oldest held position
  r.lengths = lengths, r.positions_b = positions_b;
  return r;
}

void ContiguousKVCache::append_row(int64_t layer, const float* k, const float* v) {
  ATTNLAB_CHECK(batch_ == 1 && dtype_ != DType::f64, name(), "::append_row: batch 1 and f32/bf16/f16 storage only");
  const int64_t pos = pos_[size_t(checked_layer(layer))];
  ATTNLAB_CHECK(window_ > 0 || pos < max_len_, name(), "::append_row: position ", pos, " exceeds max_len ", max_len_,
                " (layer ", layer, ")");
  const int64_t n = kv_heads_ * head_dim_, offset = (pos % max_len_) * n;
  auto store = [&](const Tensor& buf, const float* src) {
    switch (dtype_) {
      case DType::bf16: kernels::f32_to_bf16(src, static_cast<uint16_t*>(buf.raw_data()) + offset, n); break;
      case DType::f16: kernels::f32_to_f16(src, static_cast<uint16_t*>(buf.raw_data()) + offset, n); break;
      default: std::copy(src, src + n, static_cast<float*>(buf.raw_data()) + offset); break;
    }
  };
  store(k_[size_t(layer)], k);
  store(v_[size_t(layer)], v);
  pos_[size_t(layer)] = pos + 1;
}

void ContiguousKVCache::attend_row(int64_t layer, const float* q, int64_t H, float* out) const {
  ATTNLAB_CHECK(batch_ == 1 && dtype_ != DType::f64, name(), "::attend_row: batch 1 and f32/bf16/f16 storage only");
  ATTNLAB_CHECK(H > 0 && H % kv_heads_ == 0, name(), "::attend_row: ", H, " query heads for ", kv_heads_, " KV heads");
  const int64_t L = length(layer), pos = pos_[size_t(layer)];
  ATTNLAB_CHECK(L > 0, name(), "::attend_row: layer ", layer, " holds no position (append_row first)");
  kernels::DecodeParams<float> p;
  p.B = 1, p.Tq = 1, p.H = H, p.Hkv = kv_heads_, p.D = head_dim_;
  p.q = q, p.q_stride_b = H * head_dim_, p.q_stride_t = H * head_dim_, p.q_stride_h = head_dim_;
  p.o = out;
  p.scale = float(1.0 / std::sqrt(double(head_dim_)));
  p.window = window_;
  switch (dtype_) {
    case DType::bf16: kernels::decode_attention(p, reader<float, kernels::bf16_bits>(layer, &L, &pos)); break;
    case DType::f16: kernels::decode_attention(p, reader<float, kernels::f16_bits>(layer, &L, &pos)); break;
    default: kernels::decode_attention(p, reader<float, float>(layer, &L, &pos)); break;
  }
}

std::pair<Tensor, Tensor> ContiguousKVCache::get(int64_t layer) const {
  const int64_t L = length(layer), start = (pos_[size_t(layer)] - L) % max_len_;
  auto logical = [&](const Tensor& buf) {
    if (start + L <= max_len_) return ops::narrow(buf, 1, start, L);
    return ops::cat({ops::narrow(buf, 1, start, max_len_ - start), ops::narrow(buf, 1, 0, start + L - max_len_)}, 1);
  };
  return {logical(k_[size_t(layer)]), logical(v_[size_t(layer)])};
}

void ContiguousKVCache::clear() { std::fill(pos_.begin(), pos_.end(), 0); }

int64_t ContiguousKVCache::bytes_used() const {
  int64_t s = 0;
  for (size_t l = 0; l < pos_.size(); ++l) s += length(int64_t(l));
  return s * 2 * batch_ * kv_heads_ * head_dim_ * int64_t(itemsize(dtype_));
}

int64_t ContiguousKVCache::bytes_reserved() const {
  return 2 * num_layers() * batch_ * max_len_ * kv_heads_ * head_dim_ * int64_t(itemsize(dtype_));
}

std::string ContiguousKVCache::name() const {
  return cat("ContiguousKVCache(", dtype_name(dtype_), window_ > 0 ? cat(", window ", window_) : std::string(), ")");
}

}  // namespace attnlab::nn
