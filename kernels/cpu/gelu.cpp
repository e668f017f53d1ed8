#include "kernels/cpu/gelu.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/avx2_math.h"
#include "kernels/cpu/parallel.h"

namespace attnlab::kernels {

namespace {
constexpr double kSqrt2OverPi = 0.7978845608028654;  // √(2/π)
constexpr double kInvSqrt2 = 0.7071067811865476;      // 1/√2
constexpr double kInvSqrt2Pi = 0.3989422804014327;    // 1/√(2π)

// The exact form over elements [i0, i1), one at a time.
template <class T>
void exact_forward_scalar(T* out, const T* inp, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    const T x = inp[i];
    out[i] = T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
  }
}
template <class T>
void exact_backward_scalar(T* dinp, const T* inp, const T* dout, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    const T x = inp[i];
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2)));
    const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    dinp[i] += dout[i] * (cdf + x * pdf);
  }
}

template <class T>
void exact_forward(T* out, const T* inp, int64_t i0, int64_t i1) { exact_forward_scalar(out, inp, i0, i1); }
template <class T>
void exact_backward(T* dinp, const T* inp, const T* dout, int64_t i0, int64_t i1) {
  exact_backward_scalar(dinp, inp, dout, i0, i1);
}

#ifdef __AVX2__
// float: eight lanes through erf8 and exp_nonpositive (kernels/cpu/avx2_math.h). A libm erff per
// element was a tenth of a streaming tick of the seed model, more than its attention's score pass.
inline __m256 normal_cdf8(__m256 x, const ErfTable& table) {  // 0.5 (1 + erf(x / √2))
  const __m256 e = erf8(_mm256_mul_ps(x, _mm256_set1_ps(float(kInvSqrt2))), table);
  return _mm256_fmadd_ps(e, _mm256_set1_ps(0.5f), _mm256_set1_ps(0.5f));
}

template <>
void exact_forward<float>(float* out, const float* inp, int64_t i0, int64_t i1) {
  const ErfTable& table = erf_table();
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8) {
    const __m256 x = _mm256_loadu_ps(inp + i);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(x, normal_cdf8(x, table)));
  }
  exact_forward_scalar(out, inp, i, i1);
}

template <>
void exact_backward<float>(float* dinp, const float* inp, const float* dout, int64_t i0, int64_t i1) {
  const ErfTable& table = erf_table();
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8) {
    const __m256 x = _mm256_loadu_ps(inp + i);
    const __m256 pdf = _mm256_mul_ps(_mm256_set1_ps(float(kInvSqrt2Pi)),
                                     exp_nonpositive(_mm256_mul_ps(_mm256_set1_ps(-0.5f), _mm256_mul_ps(x, x))));
    const __m256 grad = _mm256_fmadd_ps(x, pdf, normal_cdf8(x, table));  // cdf + x pdf
    _mm256_storeu_ps(dinp + i, _mm256_fmadd_ps(_mm256_loadu_ps(dout + i), grad, _mm256_loadu_ps(dinp + i)));
  }
  exact_backward_scalar(dinp, inp, dout, i, i1);
}
#endif

// f(i0, i1) over [0, n): in chunks over the threads when n is large, else on the calling thread.
template <class F>
void over_chunks(int64_t n, F&& f) {
  constexpr int64_t kChunk = 4096;
  if (n <= kParallelGrain) return f(int64_t(0), n);
#pragma omp parallel for
  for (int64_t c = 0; c < (n + kChunk - 1) / kChunk; ++c) f(c * kChunk, std::min(n, (c + 1) * kChunk));
}
}  // namespace

template <class T>
void gelu_forward(T* out, const T* inp, int64_t n, GeluApprox approx) {
  if (approx == GeluApprox::tanh) {
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      const T x = inp[i];
      out[i] = T(0.5) * x * (T(1) + std::tanh(T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x)));
    }
  } else {
    over_chunks(n, [&](int64_t i0, int64_t i1) { exact_forward(out, inp, i0, i1); });
  }
}

template <class T>
void gelu_backward(T* dinp, const T* inp, const T* dout, int64_t n, GeluApprox approx) {
  if (approx == GeluApprox::tanh) {
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      const T x = inp[i];
      const T u = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
      const T th = std::tanh(u);
      const T du = T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * x * x);
      dinp[i] += dout[i] * (T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * du);
    }
  } else {
    over_chunks(n, [&](int64_t i0, int64_t i1) { exact_backward(dinp, inp, dout, i0, i1); });
  }
}

template void gelu_forward<float>(float*, const float*, int64_t, GeluApprox);
template void gelu_forward<double>(double*, const double*, int64_t, GeluApprox);
template void gelu_backward<float>(float*, const float*, const float*, int64_t, GeluApprox);
template void gelu_backward<double>(double*, const double*, const double*, int64_t, GeluApprox);

}  // namespace attnlab::kernels
