// Row reductions and softmax over contiguous [rows, inner] arrays: one block per row (grid-stride over
// rows), each thread striding over the row, then a warp-shuffle + shared-memory block reduction.
// Accumulators: f32 for f32/bf16/f16, f64 for f64, i64 for integers.
#include <type_traits>

#include "kernels/cuda/common.cuh"

namespace attnlab::kernels::cuda {

namespace {

template <class T>
using Acc = std::conditional_t<kIsFloat<T>, Compute<T>, int64_t>;

#define ATTNLAB_ROWS(row, rows) for (int64_t row = blockIdx.x; row < (rows); row += gridDim.x)

template <class T>
__global__ void reduce_rows_kernel(Reduction r, T* out, const T* in, int64_t outer, int64_t inner,
                                   int64_t correction) {
  using A = Acc<T>;
  ATTNLAB_ROWS(row, outer) {
    const T* x = in + row * inner;
    A result = 0;
    if (r == Reduction::amax) {
      A m = A(ld(x));  // inner > 0 (the caller checks)
      for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) m = MaxNaN{}(m, A(ld(x + i)));
      result = block_reduce(m, MaxNaN{});
    } else {
      A s = 0;
      for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) s += A(ld(x + i));
      s = block_reduce(s, Sum{});
      result = s;
      if constexpr (kIsFloat<T>) {
        const A n = A(inner);
        if (r == Reduction::mean) result = inner ? s / n : A(NAN);
        if (r == Reduction::var) {
          const A mean = s / n;
          A ss = 0;
          for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) {
            const A d = A(ld(x + i)) - mean;
            ss += d * d;
          }
          ss = block_reduce(ss, Sum{});
          const A denom = A(inner - correction);
          result = denom > A(0) ? ss / denom : A(NAN);
        }
        if (r == Reduction::logsumexp) {
          A m = A(-INFINITY);
          for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) {
            const A v = A(ld(x + i));
            m = v > m ? v : m;
          }
          m = block_reduce(m, [](A a, A b) { return a > b ? a : b; });
          if (isinf(m)) {  // all -inf -> -inf; any +inf -> +inf (as the CPU kernel)
            result = m;
          } else {
            A e = 0;
            for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) e += exp(A(ld(x + i)) - m);
            result = m + log(block_reduce(e, Sum{}));
          }
        }
      }
    }
    if (threadIdx.x == 0) st(out + row, Compute<T>(result));
  }
}

// (value, index) of the first max/min; a NaN beats everything, the first NaN wins.
template <class C>
struct ArgBest {
  bool is_max;
  __device__ __forceinline__ void combine(C& v, int64_t& i, C v2, int64_t i2) const {
    const bool nan1 = v != v, nan2 = v2 != v2;
    bool take;
    if (nan1 || nan2) take = nan2 && (!nan1 || i2 < i);
    else if (v2 == v) take = i2 < i;
    else take = is_max ? v2 > v : v2 < v;
    if (take) {
      v = v2;
      i = i2;
    }
  }
};

template <class T>
__global__ void arg_reduce_kernel(bool is_max, T* values, int64_t* indices, const T* in, int64_t outer,
                                  int64_t inner) {
  using C = Compute<T>;
  __shared__ C sv[32];
  __shared__ int64_t si[32];
  const ArgBest<C> best{is_max};
  ATTNLAB_ROWS(row, outer) {
    const T* x = in + row * inner;
    C v = ld(x);
    int64_t idx = 0;
    for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) best.combine(v, idx, ld(x + i), i);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const C v2 = __shfl_xor_sync(0xffffffffu, v, o);
      const int64_t i2 = __shfl_xor_sync(0xffffffffu, idx, o);
      best.combine(v, idx, v2, i2);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) {
      sv[warp] = v;
      si[warp] = idx;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      v = sv[0];
      idx = si[0];
      for (int w = 1; w < int(blockDim.x >> 5); ++w) best.combine(v, idx, sv[w], si[w]);
      st(values + row, v);
      indices[row] = idx;
    }
  }
}

template <class T>
__global__ void softmax_forward_kernel(bool log_out, T* out, const T* inp, int64_t N, int64_t C) {
  using A = Compute<T>;
  ATTNLAB_ROWS(row, N) {
    const T* x = inp + row * C;
    T* y = out + row * C;
    A m = A(-INFINITY);
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
      const A v = ld(x + i);
      m = v > m ? v : m;
    }
    m = block_reduce(m, [](A a, A b) { return a > b ? a : b; });
    A s = 0;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) s += exp(A(ld(x + i)) - m);
    s = block_reduce(s, Sum{});
    if (log_out) {
      const A lse = m + log(s);
      for (int64_t i = threadIdx.x; i < C; i += blockDim.x) st(y + i, A(ld(x + i)) - lse);
    } else {
      const A inv = A(1) / s;
      for (int64_t i = threadIdx.x; i < C; i += blockDim.x) st(y + i, exp(A(ld(x + i)) - m) * inv);
    }
  }
}

template <class T>
__global__ void softmax_backward_kernel(bool log_out, T* dinp, const T* dout, const T* out, int64_t N, int64_t C) {
  using A = Compute<T>;
  ATTNLAB_ROWS(row, N) {
    const T* g = dout + row * C;
    const T* y = out + row * C;
    T* d = dinp + row * C;
    A s = 0;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) s += log_out ? A(ld(g + i)) : A(ld(g + i)) * A(ld(y + i));
    s = block_reduce(s, Sum{});
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
      const A gi = ld(g + i), yi = ld(y + i);
      st(d + i, log_out ? gi - exp(yi) * s : yi * (gi - s));
    }
  }
}

}  // namespace

void reduce_rows(Reduction r, DType dtype, void* out, const void* in, int64_t outer, int64_t inner,
                 int64_t correction, int device) {
  if (outer == 0) return;
  dispatch_all(dtype, [&](auto tag) {
    using T = decltype(tag);
    reduce_rows_kernel<T><<<row_grid(outer), row_threads(inner), 0, current_stream(device)>>>(
        r, static_cast<T*>(out), static_cast<const T*>(in), outer, inner, correction);
  });
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

void arg_reduce_rows(bool is_max, DType dtype, void* values, int64_t* indices, const void* in, int64_t outer,
                     int64_t inner, int device) {
  if (outer == 0) return;
  dispatch_all(dtype, [&](auto tag) {
    using T = decltype(tag);
    arg_reduce_kernel<T><<<row_grid(outer), row_threads(inner), 0, current_stream(device)>>>(
        is_max, static_cast<T*>(values), indices, static_cast<const T*>(in), outer, inner);
  });
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

void softmax_forward(bool log, DType dtype, void* out, const void* inp, int64_t N, int64_t C, int device) {
  if (N == 0 || C == 0) return;
  dispatch_floating(dtype, "softmax", [&](auto tag) {
    using T = decltype(tag);
    softmax_forward_kernel<T><<<row_grid(N), row_threads(C), 0, current_stream(device)>>>(
        log, static_cast<T*>(out), static_cast<const T*>(inp), N, C);
  });
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

void softmax_backward(bool log, DType dtype, void* dinp, const void* dout, const void* out, int64_t N, int64_t C,
                      int device) {
  if (N == 0 || C == 0) return;
  dispatch_floating(dtype, "softmax_backward", [&](auto tag) {
    using T = decltype(tag);
    softmax_backward_kernel<T><<<row_grid(N), row_threads(C), 0, current_stream(device)>>>(
        log, static_cast<T*>(dinp), static_cast<const T*>(dout), static_cast<const T*>(out), N, C);
  });
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace attnlab::kernels::cuda
