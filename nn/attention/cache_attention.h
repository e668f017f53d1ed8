// Internal to the KV caches: argument checks shared by every cache, and the bridge from tensors to the
// decode kernel (kernels/cpu/decode_attention.h) — each cache only builds its reader.
#pragma once
#include <cmath>
#include <cstdint>

#include "autograd/graph.h"
#include "kernels/cpu/decode_attention.h"
#include "nn/attention/kv_cache.h"

namespace attnlab::nn::detail {

// t must be on the CPU (cpu:0): the caches and the decode kernel read host memory.
void check_host(const std::string& cache, const char* what, const Tensor& t);

// k, v must be [B, T_new, Hkv, D] with T_new >= 1, equal shapes, a floating dtype, on the CPU.
void check_append(const std::string& cache, int64_t layer, int64_t num_layers, const Tensor& k, const Tensor& v,
                  int64_t B, int64_t Hkv, int64_t D);

// q must be [B, T_new, H, D] with H a multiple of Hkv, dtype `dtype`, D contiguous, on the CPU; not
// requiring grad while grad mode is on (caches are for inference).
void check_query(const std::string& cache, const Tensor& q, int64_t B, int64_t Hkv, int64_t D, DType dtype);

// Runs the decode kernel for q [B, T_new, H, D] (compute type T, q's dtype) over the reader's keys, with
// opt's causal mask and sliding window. max_len bounds every row's length (the width of the weights).
template <class T, class Reader>
CacheAttentionResult decode(const std::string& cache, const Tensor& q, const Reader& r, int64_t Hkv, int64_t max_len,
                            const CacheAttentionOptions& opt) {
  const int64_t B = q.size(0), Tq = q.size(1), H = q.size(2), D = q.size(3);
  CacheAttentionResult res;
  res.out = Tensor::empty({B, Tq, H, D}, q.dtype());
  kernels::DecodeParams<T> p;
  p.B = B, p.Tq = Tq, p.H = H, p.Hkv = Hkv, p.D = D;
  p.q = q.data<T>(), p.q_stride_b = q.stride(0), p.q_stride_t = q.stride(1), p.q_stride_h = q.stride(2);
  p.o = res.out.data<T>();
  p.scale = T(opt.scale > 0 ? opt.scale : 1.0 / std::sqrt(double(D)));
  p.causal = opt.causal;
  ATTNLAB_CHECK(opt.window >= 0, cache, "::attend: window must be >= 0, got ", opt.window);
  p.window = opt.window;
  if (opt.return_weights) {
    res.weights = Tensor::empty({B, H, Tq, max_len}, q.dtype());
    p.probs = res.weights.data<T>();
    p.probs_len = max_len;
  }
  kernels::decode_attention<T>(p, r);
  return res;
}

}  // namespace attnlab::nn::detail
