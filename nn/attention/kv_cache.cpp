#include "nn/attention/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cpu/convert.h"

#include "nn/attention/cache_attention.h"
#include "nn/layers/rotary.h"
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
                                     int64_t head_dim, DType dtype, int64_t window, int64_t sinks, double rope_base)
    : batch_(batch), max_len_(max_len), kv_heads_(kv_heads), head_dim_(head_dim), window_(window), sinks_(sinks),
      dtype_(dtype) {
  ATTNLAB_CHECK(num_layers > 0 && batch > 0 && max_len > 0 && kv_heads > 0 && head_dim > 0,
                "ContiguousKVCache: all sizes must be positive (layers ", num_layers, ", batch ", batch,
                ", max_len ", max_len, ", kv_heads ", kv_heads, ", head_dim ", head_dim, ")");
  ATTNLAB_CHECK(is_floating(dtype), "ContiguousKVCache: dtype must be f32, f64, bf16 or f16, got ", dtype_name(dtype));
  ATTNLAB_CHECK(window >= 0 && window <= max_len, "ContiguousKVCache: window ", window, " must be in [0, max_len ",
                max_len, "]");
  ATTNLAB_CHECK(sinks >= 0 && (sinks == 0 || window > 0), "ContiguousKVCache: sinks ", sinks,
                " must be >= 0, and attention sinks need a sliding window (window > 0)");
  ATTNLAB_CHECK(rope_base >= 0, "ContiguousKVCache: rope_base must be >= 0 (0: keys carry no rotation), got ",
                rope_base);
  if (sinks > 0 && rope_base > 0) rope_ = std::make_shared<RotaryEmbedding>(head_dim, rope_base);
  for (int64_t l = 0; l < num_layers; ++l) {
    k_.push_back(zeros({batch, max_len + sinks, kv_heads, head_dim}, dtype));
    v_.push_back(zeros({batch, max_len + sinks, kv_heads, head_dim}, dtype));
  }
  pos_.assign(size_t(num_layers), 0);
}

std::vector<int64_t> ContiguousKVCache::positions(int64_t layer) const {
  return std::vector<int64_t>(size_t(batch_), pos_[size_t(checked_layer(layer))]);
}

int64_t ContiguousKVCache::length(int64_t layer) const {
  const int64_t pos = pos_[size_t(checked_layer(layer))];
  return std::min(pos, sinks_) + ring_held(pos);
}

void ContiguousKVCache::append(int64_t layer, const Tensor& k, const Tensor& v) {
  detail::check_append(name(), layer, num_layers(), k, v, batch_, kv_heads_, head_dim_);
  const int64_t t = k.size(1), pos = pos_[size_t(layer)];
  if (window_ == 0) {
    ATTNLAB_CHECK(pos + t <= max_len_, name(), "::append: ", pos, " + ", t, " positions exceed max_len ", max_len_,
                  " (layer ", layer, ")");
  } else {
    const int64_t into_ring = std::max<int64_t>(0, pos + t - std::max(pos, sinks_));
    ATTNLAB_CHECK(into_ring <= max_len_ - window_ + 1, name(), "::append: ", into_ring, " positions at once, but a ring of ",
                  max_len_, " slots with window ", window_, " takes at most ", max_len_ - window_ + 1,
                  " per append (split the input)");
  }
  // Position p goes to slot_of(p): the sinks' own slots, then the ring; a wrapping append is two copies.
  for (int64_t done = 0; done < t;) {
    const int64_t p = pos + done, slot = slot_of(p);
    const int64_t n = p < sinks_ ? std::min(t - done, sinks_ - p) : std::min(t - done, max_len_ - slot);
    ops::copy_(ops::narrow(k_[size_t(layer)], 1, slot, n), ops::narrow(k, 1, done, n));
    ops::copy_(ops::narrow(v_[size_t(layer)], 1, slot, n), ops::narrow(v, 1, done, n));
    done += n;
  }
  pos_[size_t(layer)] = pos + t;
}

int64_t ContiguousKVCache::attention_window(int64_t requested) const {
  ATTNLAB_CHECK(requested >= 0, name(), "::attend: window must be >= 0, got ", requested);
  if (window_ == 0) return requested;
  ATTNLAB_CHECK(requested <= window_, name(), "::attend: an attention window of ", requested,
                " is wider than the ring's window ", window_, " (the ring no longer holds the older keys)");
  return requested > 0 ? requested : window_;
}

CacheAttentionResult ContiguousKVCache::attend(int64_t layer, const Tensor& q, const CacheAttentionOptions& opt) {
  const DType compute = dtype_ == DType::f64 ? DType::f64 : DType::f32;
  detail::check_query(name(), q, batch_, kv_heads_, head_dim_, compute);
  const int64_t L = length(layer), pos = pos_[size_t(layer)];
  if (sinks_ > 0) {
    ATTNLAB_CHECK(opt.window == 0 && opt.causal && !opt.return_weights, name(),
                  "::attend: attention sinks serve causal attention without a window of its own and return no ",
                  "weights (a model trained with a sliding window slides exactly without sinks)");
    const int64_t B = q.size(0), Tq = q.size(1), H = q.size(2);
    ATTNLAB_CHECK(Tq <= pos, name(), "::attend: ", Tq, " queries but ", pos, " positions appended");
    CacheAttentionResult res;
    res.out = Tensor::empty({B, Tq, H, head_dim_}, compute);
    const double scale = opt.scale > 0 ? opt.scale : 1.0 / std::sqrt(double(head_dim_));
    auto run = [&]<class T, class S>() {
      attend_with_sinks<T, S>(layer, q.data<T>(), q.stride(0), q.stride(1), Tq, H, res.out.data<T>(), scale);
    };
    ATTNLAB_CHECK(q.stride(2) == head_dim_, name(), "::attend: q's heads must be contiguous rows, got ", describe(q));
    switch (dtype_) {
      case DType::f64: run.template operator()<double, double>(); break;
      case DType::bf16: run.template operator()<float, kernels::bf16_bits>(); break;
      case DType::f16: run.template operator()<float, kernels::f16_bits>(); break;
      default: run.template operator()<float, float>(); break;
    }
    return res;
  }
  CacheAttentionOptions o = opt;
  o.window = attention_window(opt.window);
  if (q.size(1) >= kFlashPrefill && window_ == 0 && !opt.return_weights && dtype_ == compute &&
      (o.window == 0 || opt.causal)) {
    // A prefill: many queries against an unwrapped buffer, which the tiled flash kernel does faster
    // than the decode loop (same maths, causal bottom-right aligned = by position here, key j at
    // position j, so the sliding window is flash's too).
    const auto [k, v] = get(layer);
    AttentionOptions a;
    a.causal = opt.causal;
    a.window = o.window;
    a.scale = opt.scale;
    return {scaled_dot_product_attention(q, k, v, a).out, Tensor()};
  }
  const std::vector<int64_t> lengths(size_t(batch_), L), positions_b(size_t(batch_), pos);
  auto run = [&]<class T, class S>() {
    return detail::decode<T>(name(), q, reader<T, S>(layer, lengths.data(), positions_b.data()), kv_heads_, L, o);
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
  r.stride_b = (max_len_ + sinks_) * kv_heads_ * head_dim_, r.stride_s = kv_heads_ * head_dim_, r.stride_h = head_dim_;
  r.D = head_dim_, r.Hkv = kv_heads_;
  r.capacity = max_len_;
  r.ring_start = lengths[0] > 0 ? slot_of(positions_b[0] - lengths[0]) : 0;  // the slot of the oldest position read
  r.lengths = lengths, r.positions_b = positions_b;
  return r;
}

template <class T, class S>
kernels::SinkKVReader<T, S> ContiguousKVCache::sink_reader(int64_t layer, int64_t qp, std::vector<T>& sink_k,
                                                            std::vector<T>& sink_v, int64_t* lengths,
                                                            int64_t* positions_b) const {
  // Query at qp: the sinks held by then, and the ring's positions r0..qp (its window, never a sink).
  const int64_t n_sinks = std::min(sinks_, qp + 1), r0 = std::max(sinks_, qp - window_ + 1);
  const int64_t n_ring = std::max<int64_t>(0, qp - r0 + 1);
  const int64_t pos = pos_[size_t(layer)];
  ATTNLAB_CHECK(n_ring == 0 || r0 >= pos - ring_held(pos), name(), ": position ", r0, " of the window of the query at ",
                qp, " is no longer held (append fewer positions at once)");
  for (int64_t b = 0; b < batch_; ++b) lengths[b] = n_ring, positions_b[b] = qp + 1;
  // Placed just before the window: sink j is attended at position delta + j.
  const int64_t delta = std::max<int64_t>(0, qp - window_ - sinks_ + 1);
  const int64_t row = kv_heads_ * head_dim_;
  sink_k.resize(size_t(batch_ * n_sinks * row)), sink_v.resize(sink_k.size());
  std::vector<T> c(size_t(head_dim_ / 2)), s(c.size());
  if (rope_ && delta > 0) rope_->cos_sin_row(delta, c.data(), s.data());
  for (int64_t b = 0; b < batch_; ++b)
    for (int64_t j = 0; j < n_sinks; ++j) {
      const int64_t src = (b * (max_len_ + sinks_) + max_len_ + j) * row, dst = (b * n_sinks + j) * row;
      const S* ks = static_cast<const S*>(k_[size_t(layer)].raw_data()) + src;
      const S* vs = static_cast<const S*>(v_[size_t(layer)].raw_data()) + src;
      for (int64_t e = 0; e < row; ++e) {
        if constexpr (std::is_same_v<S, T>) {
          sink_k[size_t(dst + e)] = ks[e], sink_v[size_t(dst + e)] = vs[e];
        } else {
          sink_k[size_t(dst + e)] = T(kernels::to_float(ks[e])), sink_v[size_t(dst + e)] = T(kernels::to_float(vs[e]));
        }
      }
      // RoPE composes: the key rotated at j, rotated by delta more, is the key rotated at j + delta.
      if (rope_ && delta > 0) rope_->rotate_rows(sink_k.data() + dst, kv_heads_, c.data(), s.data());
    }
  kernels::SinkKVReader<T, S> r;
  r.ring = reader<T, S>(layer, lengths, positions_b);
  r.sink_k = sink_k.data(), r.sink_v = sink_v.data();
  r.n_sinks = n_sinks, r.sink_pos0 = delta;
  return r;
}

template <class T, class S>
void ContiguousKVCache::attend_with_sinks(int64_t layer, const T* q, int64_t q_stride_b, int64_t q_stride_t,
                                          int64_t Tq, int64_t H, T* out, double scale) const {
  // One query at a time: each sees the sinks at its own distance. out is [B, Tq, H, D] contiguous.
  const int64_t pos = pos_[size_t(layer)], D = head_dim_;
  std::vector<T> sk, sv, o(size_t(batch_ * H * D));
  std::vector<int64_t> lengths(static_cast<size_t>(batch_)), positions_b(static_cast<size_t>(batch_));
  for (int64_t i = 0; i < Tq; ++i) {
    const int64_t qp = pos - Tq + i;
    kernels::DecodeParams<T> p;
    p.B = batch_, p.Tq = 1, p.H = H, p.Hkv = kv_heads_, p.D = D;
    p.q = q + i * q_stride_t, p.q_stride_b = q_stride_b, p.q_stride_t = q_stride_t, p.q_stride_h = D;
    p.o = o.data();
    p.scale = T(scale);
    kernels::decode_attention(p, sink_reader<T, S>(layer, qp, sk, sv, lengths.data(), positions_b.data()));
    for (int64_t b = 0; b < batch_; ++b) std::copy_n(o.data() + b * H * D, H * D, out + (b * Tq + i) * H * D);
  }
}

void ContiguousKVCache::append_row(int64_t layer, const float* k, const float* v) {
  ATTNLAB_CHECK(batch_ == 1 && dtype_ != DType::f64, name(), "::append_row: batch 1 and f32/bf16/f16 storage only");
  const int64_t pos = pos_[size_t(checked_layer(layer))];
  ATTNLAB_CHECK(window_ > 0 || pos < max_len_, name(), "::append_row: position ", pos, " exceeds max_len ", max_len_,
                " (layer ", layer, ")");
  const int64_t n = kv_heads_ * head_dim_, offset = slot_of(pos) * n;
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

void ContiguousKVCache::attend_row(int64_t layer, const float* q, int64_t H, float* out, int64_t window) const {
  ATTNLAB_CHECK(batch_ == 1 && dtype_ != DType::f64, name(), "::attend_row: batch 1 and f32/bf16/f16 storage only");
  ATTNLAB_CHECK(H > 0 && H % kv_heads_ == 0, name(), "::attend_row: ", H, " query heads for ", kv_heads_, " KV heads");
  const int64_t L = length(layer), pos = pos_[size_t(layer)];
  ATTNLAB_CHECK(L > 0, name(), "::attend_row: layer ", layer, " holds no position (append_row first)");
  kernels::DecodeParams<float> p;
  p.B = 1, p.Tq = 1, p.H = H, p.Hkv = kv_heads_, p.D = head_dim_;
  p.q = q, p.q_stride_b = H * head_dim_, p.q_stride_t = H * head_dim_, p.q_stride_h = head_dim_;
  p.o = out;
  p.scale = float(1.0 / std::sqrt(double(head_dim_)));
  if (sinks_ > 0) {
    ATTNLAB_CHECK(window == 0, name(), "::attend_row: attention sinks serve causal attention without a window of its own");
    int64_t n = 0, at = 0;
    switch (dtype_) {
      case DType::bf16:
        kernels::decode_attention(p, sink_reader<float, kernels::bf16_bits>(layer, pos - 1, sink_f32_k_, sink_f32_v_, &n, &at));
        break;
      case DType::f16:
        kernels::decode_attention(p, sink_reader<float, kernels::f16_bits>(layer, pos - 1, sink_f32_k_, sink_f32_v_, &n, &at));
        break;
      default:
        kernels::decode_attention(p, sink_reader<float, float>(layer, pos - 1, sink_f32_k_, sink_f32_v_, &n, &at));
        break;
    }
    return;
  }
  p.window = attention_window(window);
  switch (dtype_) {
    case DType::bf16: kernels::decode_attention(p, reader<float, kernels::bf16_bits>(layer, &L, &pos)); break;
    case DType::f16: kernels::decode_attention(p, reader<float, kernels::f16_bits>(layer, &L, &pos)); break;
    default: kernels::decode_attention(p, reader<float, float>(layer, &L, &pos)); break;
  }
}

std::pair<Tensor, Tensor> ContiguousKVCache::get(int64_t layer) const {
  const int64_t pos = pos_[size_t(checked_layer(layer))], L = ring_held(pos);
  const int64_t start = L > 0 ? slot_of(pos - L) : 0, held_sinks = std::min(pos, sinks_);
  auto logical = [&](const Tensor& buf) {
    std::vector<Tensor> parts;
    if (held_sinks > 0) parts.push_back(ops::narrow(buf, 1, max_len_, held_sinks));
    if (start + L <= max_len_) {
      parts.push_back(ops::narrow(buf, 1, start, L));
    } else {
      parts.push_back(ops::narrow(buf, 1, start, max_len_ - start));
      parts.push_back(ops::narrow(buf, 1, 0, start + L - max_len_));
    }
    return parts.size() == 1 ? parts[0] : ops::cat(parts, 1);
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
  return 2 * num_layers() * batch_ * (max_len_ + sinks_) * kv_heads_ * head_dim_ * int64_t(itemsize(dtype_));
}

std::string ContiguousKVCache::name() const {
  return cat("ContiguousKVCache(", dtype_name(dtype_), window_ > 0 ? cat(", window ", window_) : std::string(),
             sinks_ > 0 ? cat(", ", sinks_, " sinks") : std::string(), ")");
}

}  // namespace attnlab::nn
