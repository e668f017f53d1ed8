// Shared by the kernels of kernels/cuda/*.cu: storage types per DType, their f32/f64 compute types,
// dtype dispatch, launch sizes, the strided offset calculator and block reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/ops.h"
#include "kernels/dtype.h"

namespace attnlab::kernels::cuda {

// ---- element types ---------------------------------------------------------------------------------
// Compute<T>: the type arithmetic happens in (f32 for the 16-bit floats).
template <class T> struct ComputeOf { using type = T; };
template <> struct ComputeOf<__nv_bfloat16> { using type = float; };
template <> struct ComputeOf<__half> { using type = float; };
template <class T> using Compute = typename ComputeOf<T>::type;

template <class T> __device__ __forceinline__ Compute<T> ld(const T* p) { return *p; }
template <> __device__ __forceinline__ float ld(const __nv_bfloat16* p) { return __bfloat162float(*p); }
template <> __device__ __forceinline__ float ld(const __half* p) { return __half2float(*p); }
template <class T> __device__ __forceinline__ void st(T* p, Compute<T> v) { *p = v; }
template <> __device__ __forceinline__ void st(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ void st(__half* p, float v) { *p = __float2half_rn(v); }

template <class T> constexpr bool kIsFloat = false;
template <> constexpr bool kIsFloat<float> = true;
template <> constexpr bool kIsFloat<double> = true;
template <> constexpr bool kIsFloat<__nv_bfloat16> = true;
template <> constexpr bool kIsFloat<__half> = true;

// Calls f(T{}) with the storage type of `t`.
template <class F>
void dispatch_all(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::bf16: return f(__nv_bfloat16{});
    case DType::f16: return f(__half{});
    case DType::i32: return f(int32_t{});
    case DType::i64: return f(int64_t{});
    case DType::i8: return f(int8_t{});
    case DType::u8: return f(uint8_t{});
  }
}
// Calls f(W{}) with an unsigned word of the dtype's size (raw element moves).
template <class F>
void dispatch_word(DType t, F&& f) {
  switch (itemsize(t)) {
    case 1: return f(uint8_t{});
    case 2: return f(uint16_t{});
    case 4: return f(uint32_t{});
    default: return f(uint64_t{});
  }
}
// The four floating dtypes; throws for the others.
template <class F>
void dispatch_floating(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::bf16: return f(__nv_bfloat16{});
    case DType::f16: return f(__half{});
    default: throw Error(cat(op, ": dtype ", dtype_name(t), " not implemented on cuda (floating dtypes only)"));
  }
}
// f32 and f64 only.
template <class F>
void dispatch_f32_f64(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    default: throw Error(cat(op, ": dtype ", dtype_name(t), " not implemented on cuda (f32 and f64 only)"));
  }
}

// ---- launches --------------------------------------------------------------------------------------
inline constexpr int kThreads = 256;
// Blocks for a grid-stride loop over n elements (n > 0).
inline unsigned grid_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return unsigned(b < (int64_t(1) << 20) ? b : (int64_t(1) << 20));
}
// Threads for one block per row of `inner` elements: a multiple of 32, at most kThreads.
inline int row_threads(int64_t inner) {
  int t = 32;
  while (t < kThreads && t < inner) t *= 2;
  return t;
}
// Rows handled by a grid of one block per row (grid-stride over rows beyond this).
inline unsigned row_grid(int64_t rows) { return unsigned(rows < 65535 * 16 ? rows : 65535 * 16); }

// ---- strided offsets -------------------------------------------------------------------------------
// The geometry of an N-operand elementwise call, passed by value to the kernel.
template <int N>
struct Geometry {
  int ndim;
  int64_t size[kMaxDims];
  int64_t stride[N][kMaxDims];
};
template <int N>
Geometry<N> geometry(const Extent& e, const Operand* const (&ops)[N]) {
  Geometry<N> g{};
  g.ndim = e.ndim;
  for (int d = 0; d < e.ndim; ++d) {
    g.size[d] = e.size[d];
    for (int k = 0; k < N; ++k) g.stride[k][d] = ops[k]->stride[d];
  }
  return g;
}
inline int64_t numel(const Extent& e) {
  int64_t n = 1;
  for (int d = 0; d < e.ndim; ++d) n *= e.size[d];
  return n;
}
// Element offsets of logical index i in every operand (row-major over g.size). With one dim (the
// contiguous case after merging) this is a multiply per operand and no division.
template <int N>
__device__ __forceinline__ void offsets(const Geometry<N>& g, int64_t i, int64_t (&off)[N]) {
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] = 0;
  for (int d = g.ndim - 1; d > 0; --d) {
    const int64_t q = i / g.size[d];
    const int64_t r = i - q * g.size[d];
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] += r * g.stride[k][d];
    i = q;
  }
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] += i * g.stride[k][0];
}

// ---- block reductions (blockDim.x a multiple of 32, at most 1024) -------------------------------------
template <class A, class F>
__device__ __forceinline__ A warp_reduce(A v, F f) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = f(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Every thread gets f over all threads' v, combined in a fixed order (deterministic).
template <class A, class F>
__device__ __forceinline__ A block_reduce(A v, F f) {
  __shared__ A partial[32];
  v = warp_reduce(v, f);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = int(blockDim.x >> 5);
  __syncthreads();  // an earlier call may still be reading `partial`
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  A r = partial[0];
  for (int w = 1; w < nwarps; ++w) r = f(r, partial[w]);
  return r;
}

struct Sum {
  template <class A> __device__ __forceinline__ A operator()(A a, A b) const { return a + b; }
};
// max with NaN propagation (torch.amax)
struct MaxNaN {
  template <class A> __device__ __forceinline__ A operator()(A a, A b) const {
    return a != a ? a : b != b ? b : a > b ? a : b;
  }
};

}  // namespace attnlab::kernels::cuda
