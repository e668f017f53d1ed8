// GELU and LayerNorm forward/backward (the CUDA twins of kernels/cpu/gelu.cpp and layernorm.cpp, llm.c's
// layout and naming: forward saves mean/rstd, backward accumulates).
#include "kernels/cuda/common.cuh"

namespace attnlab::kernels::cuda {

namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

template <class T>
__global__ void gelu_forward_kernel(T* out, const T* inp, int64_t n, bool tanh_approx) {
  using A = Compute<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const A x = ld(inp + i);
    const A y = tanh_approx ? A(0.5) * x * (A(1) + tanh(A(kSqrt2OverPi) * (x + A(0.044715) * x * x * x)))
                            : A(0.5) * x * (A(1) + erf(x * A(kInvSqrt2)));
    st(out + i, y);
  }
}

template <class T>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, int64_t n, bool tanh_approx) {
  using A = Compute<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const A x = ld(inp + i);
    A dy;
    if (tanh_approx) {
      const A u = A(kSqrt2OverPi) * (x + A(0.044715) * x * x * x);
      const A th = tanh(u);
      const A du = A(kSqrt2OverPi) * (A(1) + A(3 * 0.044715) * x * x);
      dy = A(0.5) * (A(1) + th) + A(0.5) * x * (A(1) - th * th) * du;
    } else {
      const A cdf = A(0.5) * (A(1) + erf(x * A(kInvSqrt2)));
      const A pdf = A(kInvSqrt2Pi) * exp(A(-0.5) * x * x);
      dy = cdf + x * pdf;
    }
    st(dinp + i, A(ld(dinp + i)) + A(ld(dout + i)) * dy);
  }
}

// One block per row: two-pass moments (mean, then the biased variance), then the normalised output.
template <class T>
__global__ void layernorm_forward_kernel(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                                         int64_t N, int64_t C, T eps) {
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    const T* x = inp + row * C;
    T* y = out + row * C;
    T s = 0;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) s += x[i];
    const T m = block_reduce(s, Sum{}) / T(C);
    T ss = 0;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) ss += (x[i] - m) * (x[i] - m);
    const T r = T(1) / sqrt(block_reduce(ss, Sum{}) / T(C) + eps);
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
      const T v = (x[i] - m) * r;
      y[i] = v * (weight ? weight[i] : T(1)) + (bias ? bias[i] : T(0));
    }
    if (threadIdx.x == 0) {
      mean[row] = m;
      rstd[row] = r;
    }
  }
}

// dinp per row: dnorm = dout * weight; dinp += (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)) * rstd.
template <class T>
__global__ void layernorm_backward_dinp_kernel(T* dinp, const T* dout, const T* inp, const T* weight,
                                               const T* mean, const T* rstd, int64_t N, int64_t C) {
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    const T* g = dout + row * C;
    const T* x = inp + row * C;
    const T m = mean[row], r = rstd[row];
    T a = 0, b = 0;
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
      const T dn = g[i] * (weight ? weight[i] : T(1));
      a += dn;
      b += dn * (x[i] - m) * r;
    }
    const T dnorm_mean = block_reduce(a, Sum{}) / T(C);
    const T dnorm_xhat_mean = block_reduce(b, Sum{}) / T(C);
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
      const T dn = g[i] * (weight ? weight[i] : T(1));
      const T xhat = (x[i] - m) * r;
      dinp[row * C + i] += (dn - dnorm_mean - xhat * dnorm_xhat_mean) * r;
    }
  }
}

// dweight/dbias: column sums over rows. Block (32, 8): threadIdx.x picks the column (coalesced reads),
// the 8 threads of a column and the blocks along y split the rows; one atomicAdd per column per block.
template <class T>
__global__ void layernorm_backward_params_kernel(T* dweight, T* dbias, const T* dout, const T* inp, const T* mean,
                                                 const T* rstd, int64_t N, int64_t C) {
  __shared__ T sw[8][33], sb[8][33];
  const int64_t c = blockIdx.x * 32 + threadIdx.x;
  T w = 0, b = 0;
  if (c < C)
    for (int64_t row = blockIdx.y * 8 + threadIdx.y; row < N; row += int64_t(gridDim.y) * 8) {
      const T g = dout[row * C + c];
      w += g * (inp[row * C + c] - mean[row]) * rstd[row];
      b += g;
    }
  sw[threadIdx.y][threadIdx.x] = w;
  sb[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int k = 1; k < 8; ++k) {
      w += sw[k][threadIdx.x];
      b += sb[k][threadIdx.x];
    }
    if (dweight) atomicAdd(dweight + c, w);
    if (dbias) atomicAdd(dbias + c, b);
  }
}

}  // namespace

void gelu_forward(DType dtype, void* out, const void* inp, int64_t n, bool tanh_approx, int device) {
  if (n == 0) return;
  dispatch_floating(dtype, "gelu", [&](auto tag) {
    using T = decltype(tag);
    gelu_forward_kernel<T><<<grid_for(n), kThreads, 0, current_stream(device)>>>(
        static_cast<T*>(out), static_cast<const T*>(inp), n, tanh_approx);
  });
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

void gelu_backward(DType dtype, void* dinp, const void* inp, const void* dout, int64_t n, bool tanh_approx,
                   int device) {
  if (n == 0) return;
  dispatch_floating(dtype, "gelu_backward", [&](auto tag) {
    using T = decltype(tag);
    gelu_backward_kernel<T><<<grid_for(n), kThreads, 0, current_stream(device)>>>(
        static_cast<T*>(dinp), static_cast<const T*>(inp), static_cast<const T*>(dout), n, tanh_approx);
  });
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

void layernorm_forward(DType dtype, void* out, void* mean, void* rstd, const void* inp, const void* weight,
                       const void* bias, int64_t N, int64_t C, double eps, int device) {
  if (N == 0 || C == 0) return;
  dispatch_f32_f64(dtype, "layernorm_forward", [&](auto tag) {
    using T = decltype(tag);
    layernorm_forward_kernel<T><<<row_grid(N), row_threads(C), 0, current_stream(device)>>>(
        static_cast<T*>(out), static_cast<T*>(mean), static_cast<T*>(rstd), static_cast<const T*>(inp),
        static_cast<const T*>(weight), static_cast<const T*>(bias), N, C, T(eps));
  });
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

void layernorm_backward(DType dtype, void* dinp, void* dweight, void* dbias, const void* dout, const void* inp,
                        const void* weight, const void* mean, const void* rstd, int64_t N, int64_t C, int device) {
  if (N == 0 || C == 0) return;
  cudaStream_t s = current_stream(device);
  dispatch_f32_f64(dtype, "layernorm_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* g = static_cast<const T*>(dout);
    const T* x = static_cast<const T*>(inp);
    const T* m = static_cast<const T*>(mean);
    const T* r = static_cast<const T*>(rstd);
    if (dinp)
      layernorm_backward_dinp_kernel<T><<<row_grid(N), row_threads(C), 0, s>>>(
          static_cast<T*>(dinp), g, x, static_cast<const T*>(weight), m, r, N, C);
    if (dweight || dbias) {
      const int64_t row_blocks = (N + 63) / 64;
      const dim3 grid(unsigned((C + 31) / 32), unsigned(row_blocks < 256 ? row_blocks : 256));
      layernorm_backward_params_kernel<T><<<grid, dim3(32, 8), 0, s>>>(
          static_cast<T*>(dweight), static_cast<T*>(dbias), g, x, m, r, N, C);
    }
  });
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace attnlab::kernels::cuda
