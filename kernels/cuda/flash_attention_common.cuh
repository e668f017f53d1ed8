// Device-side pieces shared by the attention .cu files (flash_attention*.cu): the typed argument block,
// element conversions, warp/block reductions and the launchers each file defines. Private to
// kernels/cuda; the public interface is attention.h.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/cpu/dropout_mask.h"
#include "kernels/cuda/attention.h"

namespace attnlab::kernels::cuda::detail {

// ---- elements ------------------------------------------------------------------------------------
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }

template <class T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }

constexpr float kNegInf = -INFINITY;

// ---- arguments -----------------------------------------------------------------------------------
// FlashArgs with typed pointers and the group size G = H / Hkv; passed to kernels by value.
// Shapes fit in int (checked on the host); element offsets are computed in int64.
template <class T>
struct Attn {
  int B, Sq, Sk, H, Hkv, D, G;
  const T* q;
  int64_t q_sb, q_ss, q_sh;
  const T* k;
  int64_t k_sb, k_ss, k_sh;
  const T* v;
  int64_t v_sb, v_ss, v_sh;
  float scale;
  bool causal;
  const uint8_t* kpm;  // key padding mask [B, Sk] or null
  const T* bias;       // additive bias or null, element strides:
  int64_t bias_sb, bias_sh, bias_sq, bias_sk;
  // Dropout (kernels/cpu/attention_params.h): P_ij is kept when its draw is >= drop_threshold (0 means
  // no dropout) and then scaled by keep_scale = 1 / (1 - p).
  uint64_t drop_seed, drop_threshold;
  float keep_scale;

  __device__ const T* q_row(int b, int i, int h) const { return q + b * q_sb + i * q_ss + h * q_sh; }
  __device__ const T* k_row(int b, int j, int g) const { return k + b * k_sb + j * k_ss + g * k_sh; }
  __device__ const T* v_row(int b, int j, int g) const { return v + b * v_sb + j * v_ss + g * v_sh; }
  // Offset of (b, i, h, 0) in a contiguous [B, Sq, H, D] tensor (O, dO, dQ) and of (b, h, i) in
  // [B, H, Sq] (LSE, Delta); of (b, j, g, 0) in a contiguous [B, Sk, Hkv, D] one (dK, dV).
  __device__ int64_t o_off(int b, int i, int h) const { return ((int64_t(b) * Sq + i) * H + h) * D; }
  __device__ int64_t lse_off(int b, int h, int i) const { return (int64_t(b) * H + h) * Sq + i; }
  __device__ int64_t kv_off(int b, int j, int g) const { return ((int64_t(b) * Sk + j) * Hkv + g) * D; }
  // Causal, bottom-right aligned: query i sees keys j <= i + (Sk - Sq).
  __device__ bool visible(int i, int j) const { return !causal || j <= i + (Sk - Sq); }
  // Whether causal masking or the padding mask hides key j from query i (a -inf bias hides it too).
  __device__ bool masked(int b, int i, int j) const { return !visible(i, j) || (kpm && kpm[int64_t(b) * Sk + j]); }
  __device__ float bias_at(int b, int h, int i, int j) const {
    return bias ? to_f32(bias[b * bias_sb + h * bias_sh + i * bias_sq + j * bias_sk]) : 0.f;
  }
  // The score of (query i of head h, key j) from <q_i, k_j>: -inf where masked.
  __device__ float score(float dot, int b, int h, int i, int j) const {
    return masked(b, i, j) ? kNegInf : scale * dot + bias_at(b, h, i, j);
  }
  // Keys [0, key_end) hold every key a query <= i_last sees.
  __device__ int key_end(int i_last) const {
    return causal ? max(0, min(Sk, i_last + (Sk - Sq) + 1)) : Sk;
  }
  // The first query that sees key j (everything before it sees no key >= j).
  __device__ int first_query(int j) const { return causal ? max(0, j - (Sk - Sq)) : 0; }
  // The dropout factor z_ij on P_ij (keep_scale or 0; 1 without dropout) of query i of head h: the
  // row key hashes (seed, b, h, i), so a kernel handling one row computes it once.
  __device__ uint64_t drop_key(int b, int h, int i) const {
    return drop_threshold ? dropout_row_key(drop_seed, b, h, i) : 0;
  }
  __device__ float drop_factor(uint64_t row_key, int j) const {
    return !drop_threshold ? 1.f : dropout_keep_in_row(row_key, j, drop_threshold) ? keep_scale : 0.f;
  }
};

template <class T>
Attn<T> make_attn(const FlashArgs& a) {
  Attn<T> t;
  t.B = int(a.B), t.Sq = int(a.Sq), t.Sk = int(a.Sk), t.H = int(a.H), t.Hkv = int(a.Hkv), t.D = int(a.D);
  t.G = int(a.H / a.Hkv);
  t.q = static_cast<const T*>(a.q), t.q_sb = a.q_stride_b, t.q_ss = a.q_stride_s, t.q_sh = a.q_stride_h;
  t.k = static_cast<const T*>(a.k), t.k_sb = a.k_stride_b, t.k_ss = a.k_stride_s, t.k_sh = a.k_stride_h;
  t.v = static_cast<const T*>(a.v), t.v_sb = a.v_stride_b, t.v_ss = a.v_stride_s, t.v_sh = a.v_stride_h;
  t.scale = a.scale;
  t.causal = a.causal;
  t.kpm = a.key_padding_mask;
  t.bias = static_cast<const T*>(a.bias);
  t.bias_sb = a.bias_stride_b, t.bias_sh = a.bias_stride_h, t.bias_sq = a.bias_stride_q, t.bias_sk = a.bias_stride_k;
  t.drop_seed = a.dropout_seed;
  t.drop_threshold = dropout_threshold(a.dropout_p);
  t.keep_scale = float(1.0 / (1.0 - a.dropout_p));
  return t;
}

// ---- reductions ----------------------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
// Over the whole block (blockDim.x a multiple of 32, at most 1024); `red` holds 32 floats. Every
// thread gets the result. Contains __syncthreads: call from all threads.
__device__ __forceinline__ float block_sum(float x, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  x = warp_sum(x);
  __syncthreads();  // `red` may still be read by a previous reduction
  if (lane == 0) red[warp] = x;
  __syncthreads();
  x = lane < nwarps ? red[lane] : 0.f;
  return warp_sum(x);
}
__device__ __forceinline__ float block_max(float x, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  x = warp_max(x);
  __syncthreads();
  if (lane == 0) red[warp] = x;
  __syncthreads();
  x = lane < nwarps ? red[lane] : kNegInf;
  return warp_max(x);
}

// Online-softmax state of R rows with U output accumulators each, before the first key: running max
// m = -inf, running sum l = 0, accumulators 0.
template <int R, int U>
__device__ __forceinline__ void reset_softmax_rows(float (&m)[R], float (&l)[R], float (&acc)[R][U]) {
#pragma unroll
  for (int r = 0; r < R; ++r) {
    m[r] = kNegInf, l[r] = 0.f;
#pragma unroll
    for (int u = 0; u < U; ++u) acc[r][u] = 0.f;
  }
}

inline unsigned ceil_div(int64_t a, int64_t b) { return unsigned((a + b - 1) / b); }
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Calls fn(T{}) with T the CUDA element type of `t` (float, __nv_bfloat16, __half).
template <class Fn>
void with_elem(ElemType t, Fn&& fn) {
  switch (t) {
    case ElemType::f32: return fn(float{});
    case ElemType::bf16: return fn(__nv_bfloat16{});
    case ElemType::f16: return fn(__half{});
  }
}

// Calls fn(T{}, std::integral_constant<int, D>{}) for the tensor-core kernels' shapes: T the 16-bit
// element type of `a` (bf16 or f16), D = 64 or 128 (the callers checked a.D).
template <class Fn>
void with_mma_shape(const FlashArgs& a, Fn&& fn) {
  auto with_d = [&](auto zero) {
    if (a.D == 64) return fn(zero, std::integral_constant<int, 64>{});
    return fn(zero, std::integral_constant<int, 128>{});
  };
  if (a.dtype == ElemType::bf16) return with_d(__nv_bfloat16{});
  return with_d(__half{});
}

// ---- launchers (one per .cu file) ------------------------------------------------------------------
// flash_attention_reference.cu
template <class T>
void reference_forward(const Attn<T>& a, T* o, float* lse, cudaStream_t s);
template <class T>
void reference_backward(const Attn<T>& a, const T* o, const T* dout, const float* lse, T* dq, T* dk, T* dv,
                        cudaStream_t s);
template <class T>
void reference_weights(const Attn<T>& a, const float* lse, T* weights, cudaStream_t s);
// flash_attention.cu (SIMT tiles, any D <= 256, f32 maths)
template <class T>
void simt_forward(const Attn<T>& a, T* o, float* lse, cudaStream_t s);
// flash_attention_mma.cu (tensor cores; T = __nv_bfloat16 or __half, D = 64 or 128)
bool mma_forward_supported(const FlashArgs& a, const void* o);
void mma_forward(const FlashArgs& a, void* o, float* lse, cudaStream_t s);
// flash_attention_mma_bwd.cu (tensor cores; same types and head dims): the dK/dV kernel, adding dQ
// into the f32 buffer dq_acc unless it is null (deterministic mode computes dQ separately).
bool mma_backward_supported(const FlashArgs& a, const void* dout, const void* dk, const void* dv);
void mma_dkdv(const FlashArgs& a, const void* dout, const float* lse, const float* delta, void* dk, void* dv,
              float* dq_acc, cudaStream_t s);
// flash_attention_fast.cu / flash_attention_fast_bwd.cu (Variant::fast; same types and head dims,
// scale > 0, no padding mask or bias). The backward needs fast_stats_floats(a) floats of scratch
// (Delta and the scaled LSE per row) and, unless deterministic, the f32 dQ buffer dq_acc (zeroed;
// then dq is not written: convert it); with dq_acc null it writes dq itself, deterministically.
bool fast_supported(const FlashArgs& a, const void* o);
void fast_forward(const FlashArgs& a, void* o, float* lse, cudaStream_t s);
int64_t fast_stats_floats(const FlashArgs& a);
void fast_backward(const FlashArgs& a, const void* o, const void* dout, const float* lse, float* stats, void* dq,
                   void* dk, void* dv, float* dq_acc, cudaStream_t s);

}  // namespace attnlab::kernels::cuda::detail
