// Strided elementwise kernels with broadcasting: one thread per output element (grid-stride), operand
// offsets from the merged shape (common.cuh). The op is a runtime switch (uniform across the grid), so
// each kernel is instantiated once per dtype, not once per (op, dtype): compile time stays small.
#include <cmath>
#include <type_traits>

#include "kernels/cuda/common.cuh"

namespace attnlab::kernels::cuda {

namespace {

// ---- copy / conversion -----------------------------------------------------------------------------
// Any dtype as double (exact for every dtype but i64 beyond 2^53), and back with the CPU's rounding:
// to bf16/f16 through f32, to integers with NaN/inf as 0.
__device__ double load_any(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f64: return static_cast<const double*>(p)[i];
    case DType::bf16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::f16: return __half2float(static_cast<const __half*>(p)[i]);
    case DType::i32: return double(static_cast<const int32_t*>(p)[i]);
    case DType::i64: return double(static_cast<const int64_t*>(p)[i]);
    case DType::i8: return static_cast<const int8_t*>(p)[i];
    case DType::u8: return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}
__device__ void store_any(void* p, DType t, int64_t i, double v) {
  const double vi = isfinite(v) ? v : 0.0;
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = float(v); break;
    case DType::f64: static_cast<double*>(p)[i] = v; break;
    case DType::bf16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(float(v)); break;
    case DType::f16: static_cast<__half*>(p)[i] = __float2half_rn(float(v)); break;
    case DType::i32: static_cast<int32_t*>(p)[i] = int32_t(vi); break;
    case DType::i64: static_cast<int64_t*>(p)[i] = int64_t(vi); break;
    case DType::i8: static_cast<int8_t*>(p)[i] = int8_t(vi); break;
    case DType::u8: static_cast<uint8_t*>(p)[i] = uint8_t(vi); break;
  }
}

// Same dtype: raw moves of W-byte words (W = 1, 2, 4, 8).
template <class W>
__global__ void copy_same_kernel(Geometry<2> g, int64_t n, W* dst, const W* src) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    offsets(g, i, off);
    dst[off[0]] = src[off[1]];
  }
}

// Converting copy, or a fill when src is null.
__global__ void copy_convert_kernel(Geometry<2> g, int64_t n, void* dst, DType dt, const void* src, DType sdt,
                                    double scalar) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    offsets(g, i, off);
    store_any(dst, dt, off[0], src ? load_any(src, sdt, off[1]) : scalar);
  }
}

// ---- math on the compute type ----------------------------------------------------------------------
template <class C>
__device__ __forceinline__ C apply_binary(BinaryOp op, C x, C y) {
  switch (op) {
    case BinaryOp::add: return C(x + y);
    case BinaryOp::sub: return C(x - y);
    case BinaryOp::mul: return C(x * y);
    case BinaryOp::div: return C(x / y);
    case BinaryOp::pow:
      if constexpr (sizeof(C) == 4 && kIsFloat<C>) return powf(x, y);
      else return C(pow(double(x), double(y)));
    case BinaryOp::maximum: return (x != x || x > y) ? x : y;  // NaN propagates
    case BinaryOp::minimum: return (x != x || x < y) ? x : y;
  }
  return x;
}

template <class C>
__device__ __forceinline__ C apply_unary(UnaryOp op, C x) {
  switch (op) {
    case UnaryOp::neg: return C(-x);
    case UnaryOp::abs:
      if constexpr (std::is_unsigned_v<C>) return x;
      else return x < C(0) ? C(-x) : x;
    case UnaryOp::sign:
      if constexpr (std::is_unsigned_v<C>) return C(x > C(0));
      else return C((C(0) < x) - (x < C(0)));
    case UnaryOp::square: return C(x * x);
    case UnaryOp::relu: return x > C(0) ? x : C(0);
    default: break;
  }
  if constexpr (kIsFloat<C>) {
    switch (op) {
      case UnaryOp::exp: return exp(x);
      case UnaryOp::log: return log(x);
      case UnaryOp::sqrt: return sqrt(x);
      case UnaryOp::rsqrt: return C(1) / sqrt(x);
      case UnaryOp::tanh: return tanh(x);
      case UnaryOp::sigmoid: {  // never exponentiates a large positive number
        if (x >= C(0)) return C(1) / (C(1) + exp(-x));
        const C e = exp(x);
        return e / (C(1) + e);
      }
      case UnaryOp::reciprocal: return C(1) / x;
      case UnaryOp::sin: return sin(x);
      case UnaryOp::cos: return cos(x);
      case UnaryOp::erf: return erf(x);
      default: break;
    }
  }
  return x;
}

template <class C>
__device__ __forceinline__ bool apply_compare(CompareOp op, C x, C y) {
  switch (op) {
    case CompareOp::eq: return x == y;
    case CompareOp::ne: return x != y;
    case CompareOp::lt: return x < y;
    case CompareOp::le: return x <= y;
    case CompareOp::gt: return x > y;
    case CompareOp::ge: return x >= y;
  }
  return false;
}

// An input operand: a strided array, or a constant when the pointer is null.
template <class T>
__device__ __forceinline__ Compute<T> in(const T* p, int64_t off, Compute<T> constant) {
  return p ? ld(p + off) : constant;
}

#define ATTNLAB_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <class T>
__global__ void binary_kernel(BinaryOp op, Geometry<3> g, int64_t n, T* out, const T* a, const T* b,
                              Compute<T> ca, Compute<T> cb, Compute<T> alpha) {
  using C = Compute<T>;
  ATTNLAB_GRID_STRIDE(i, n) {
    int64_t off[3];
    offsets(g, i, off);
    C y = in(b, off[2], cb);
    if (op == BinaryOp::add || op == BinaryOp::sub) y = C(alpha * y);
    st(out + off[0], apply_binary<C>(op, in(a, off[1], ca), y));
  }
}

template <class T>
__global__ void unary_kernel(UnaryOp op, Geometry<2> g, int64_t n, T* out, const T* a) {
  ATTNLAB_GRID_STRIDE(i, n) {
    int64_t off[2];
    offsets(g, i, off);
    st(out + off[0], apply_unary<Compute<T>>(op, ld(a + off[1])));
  }
}

template <class T>
__global__ void compare_kernel(CompareOp op, Geometry<3> g, int64_t n, uint8_t* out, const T* a, const T* b,
                               Compute<T> ca, Compute<T> cb) {
  ATTNLAB_GRID_STRIDE(i, n) {
    int64_t off[3];
    offsets(g, i, off);
    out[off[0]] = uint8_t(apply_compare<Compute<T>>(op, in(a, off[1], ca), in(b, off[2], cb)));
  }
}

template <class T>
__global__ void clamp_kernel(Geometry<2> g, int64_t n, T* out, const T* a, double lo, double hi) {
  using C = Compute<T>;
  ATTNLAB_GRID_STRIDE(i, n) {
    int64_t off[2];
    offsets(g, i, off);
    const C x = ld(a + off[1]);
    st(out + off[0], x != x ? x : double(x) < lo ? C(lo) : double(x) > hi ? C(hi) : x);
  }
}

template <class T>
__global__ void where_kernel(Geometry<4> g, int64_t n, T* out, const uint8_t* cond, const T* a, const T* b,
                             Compute<T> ca, Compute<T> cb) {
  ATTNLAB_GRID_STRIDE(i, n) {
    int64_t off[4];
    offsets(g, i, off);
    st(out + off[0], cond[off[1]] ? in(a, off[2], ca) : in(b, off[3], cb));
  }
}

template <class T> T* typed(const Operand& o) { return static_cast<T*>(o.data); }
// The constant of a scalar operand in the compute type (rounded to T first, as a T tensor would be).
template <class T> Compute<T> constant(const Operand& o) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(__float2bfloat16_rn(float(o.scalar)));
  else if constexpr (std::is_same_v<T, __half>) return __half2float(__float2half_rn(float(o.scalar)));
  else return T(o.scalar);
}

// Launches launch(T{}, geometry, n, stream) for `dtype`'s storage type T; nothing when e is empty.
template <int N, class F>
void elementwise(const Extent& e, const Operand* const (&ops)[N], DType dtype, int device, F&& launch) {
  const int64_t n = numel(e);
  if (n == 0) return;
  const Geometry<N> g = geometry<N>(e, ops);
  cudaStream_t s = current_stream(device);
  dispatch_all(dtype, [&](auto tag) { launch(tag, g, n, s); });
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace

void copy(const Extent& e, const Operand& dst, const Operand& src, int device) {
  const Operand* ops[2] = {&dst, &src};
  elementwise<2>(e, ops, dst.dtype, device, [&](auto, const Geometry<2>& g, int64_t n, cudaStream_t s) {
    if (src.data && src.dtype == dst.dtype) {
      dispatch_word(dst.dtype, [&](auto w) {
        using W = decltype(w);
        copy_same_kernel<W><<<grid_for(n), kThreads, 0, s>>>(g, n, static_cast<W*>(dst.data),
                                                             static_cast<const W*>(src.data));
      });
    } else {
      copy_convert_kernel<<<grid_for(n), kThreads, 0, s>>>(g, n, dst.data, dst.dtype, src.data, src.dtype,
                                                           src.scalar);
    }
  });
}

void binary(BinaryOp op, const Extent& e, const Operand& out, const Operand& a, const Operand& b, double alpha,
            int device) {
  const Operand* ops[3] = {&out, &a, &b};
  elementwise<3>(e, ops, out.dtype, device, [&](auto tag, const Geometry<3>& g, int64_t n, cudaStream_t s) {
    using T = decltype(tag);
    binary_kernel<T><<<grid_for(n), kThreads, 0, s>>>(op, g, n, typed<T>(out), typed<T>(a), typed<T>(b),
                                                      constant<T>(a), constant<T>(b), Compute<T>(alpha));
  });
}

void unary(UnaryOp op, const Extent& e, const Operand& out, const Operand& a, int device) {
  const Operand* ops[2] = {&out, &a};
  elementwise<2>(e, ops, out.dtype, device, [&](auto tag, const Geometry<2>& g, int64_t n, cudaStream_t s) {
    using T = decltype(tag);
    unary_kernel<T><<<grid_for(n), kThreads, 0, s>>>(op, g, n, typed<T>(out), typed<T>(a));
  });
}

void compare(CompareOp op, const Extent& e, const Operand& out, const Operand& a, const Operand& b, int device) {
  const Operand* ops[3] = {&out, &a, &b};
  elementwise<3>(e, ops, a.dtype, device, [&](auto tag, const Geometry<3>& g, int64_t n, cudaStream_t s) {
    using T = decltype(tag);
    compare_kernel<T><<<grid_for(n), kThreads, 0, s>>>(op, g, n, typed<uint8_t>(out), typed<T>(a), typed<T>(b),
                                                       constant<T>(a), constant<T>(b));
  });
}

void clamp(const Extent& e, const Operand& out, const Operand& a, double lo, double hi, int device) {
  const Operand* ops[2] = {&out, &a};
  elementwise<2>(e, ops, out.dtype, device, [&](auto tag, const Geometry<2>& g, int64_t n, cudaStream_t s) {
    using T = decltype(tag);
    clamp_kernel<T><<<grid_for(n), kThreads, 0, s>>>(g, n, typed<T>(out), typed<T>(a), lo, hi);
  });
}

void where(const Extent& e, const Operand& out, const Operand& cond, const Operand& a, const Operand& b,
           int device) {
  const Operand* ops[4] = {&out, &cond, &a, &b};
  elementwise<4>(e, ops, out.dtype, device, [&](auto tag, const Geometry<4>& g, int64_t n, cudaStream_t s) {
    using T = decltype(tag);
    where_kernel<T><<<grid_for(n), kThreads, 0, s>>>(g, n, typed<T>(out), typed<uint8_t>(cond), typed<T>(a),
                                                     typed<T>(b), constant<T>(a), constant<T>(b));
  });
}

}  // namespace attnlab::kernels::cuda
