#include "kernels/cpu/gelu.h"

#include <cmath>

#include "kernels/cpu/parallel.h"

namespace attnlab::kernels {

namespace {
constexpr double kSqrt2OverPi = 0.7978845608028654;  // √(2/π)
constexpr double kInvSqrt2 = 0.7071067811865476;      // 1/√2
constexpr double kInvSqrt2Pi = 0.3989422804014327;    // 1/√(2π)
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
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      const T x = inp[i];
      out[i] = T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
    }
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
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      const T x = inp[i];
      const T cdf = T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2)));
      const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
      dinp[i] += dout[i] * (cdf + x * pdf);
    }
  }
}

template void gelu_forward<float>(float*, const float*, int64_t, GeluApprox);
template void gelu_forward<double>(double*, const double*, int64_t, GeluApprox);
template void gelu_backward<float>(float*, const float*, const float*, int64_t, GeluApprox);
template void gelu_backward<double>(double*, const double*, const double*, int64_t, GeluApprox);

}  // namespace attnlab::kernels
