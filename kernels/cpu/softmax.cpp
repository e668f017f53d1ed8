#include "kernels/cpu/softmax.h"

#include <cmath>
#include <limits>

#include "kernels/cpu/parallel.h"

namespace attnlab::kernels {

namespace {
template <class T>
T row_max(const T* x, int64_t C) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t c = 0; c < C; ++c) m = x[c] > m ? x[c] : m;
  return m;
}
}  // namespace

template <class T>
void softmax_forward(T* out, const T* inp, int64_t N, int64_t C) {
#pragma omp parallel for if (N * C > kParallelGrain)
  for (int64_t n = 0; n < N; ++n) {
    const T* x = inp + n * C;
    T* y = out + n * C;
    const T m = row_max(x, C);
    T sum = 0;
    for (int64_t c = 0; c < C; ++c) {
      y[c] = std::exp(x[c] - m);
      sum += y[c];
    }
    const T inv = T(1) / sum;
    for (int64_t c = 0; c < C; ++c) y[c] *= inv;
  }
}

template <class T>
void softmax_backward(T* dinp, const T* dout, const T* out, int64_t N, int64_t C) {
#pragma omp parallel for if (N * C > kParallelGrain)
  for (int64_t n = 0; n < N; ++n) {
    const T* g = dout + n * C;
    const T* y = out + n * C;
    T dot = 0;
    for (int64_t c = 0; c < C; ++c) dot += g[c] * y[c];
    for (int64_t c = 0; c < C; ++c) dinp[n * C + c] = y[c] * (g[c] - dot);
  }
}

template <class T>
void log_softmax_forward(T* out, const T* inp, int64_t N, int64_t C) {
#pragma omp parallel for if (N * C > kParallelGrain)
  for (int64_t n = 0; n < N; ++n) {
    const T* x = inp + n * C;
    const T m = row_max(x, C);
    T sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(x[c] - m);
    const T lse = m + std::log(sum);
    for (int64_t c = 0; c < C; ++c) out[n * C + c] = x[c] - lse;
  }
}

template <class T>
void log_softmax_backward(T* dinp, const T* dout, const T* out, int64_t N, int64_t C) {
#pragma omp parallel for if (N * C > kParallelGrain)
  for (int64_t n = 0; n < N; ++n) {
    const T* g = dout + n * C;
    T sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += g[c];
    for (int64_t c = 0; c < C; ++c) dinp[n * C + c] = g[c] - std::exp(out[n * C + c]) * sum;
  }
}

template <class T>
void logsumexp_forward(T* lse, const T* inp, int64_t N, int64_t C) {
#pragma omp parallel for if (N * C > kParallelGrain)
  for (int64_t n = 0; n < N; ++n) {
    const T* x = inp + n * C;
    const T m = row_max(x, C);
    if (std::isinf(m)) {  // all -inf -> -inf; any +inf -> +inf (avoids inf - inf = NaN)
      lse[n] = m;
      continue;
    }
    T sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(x[c] - m);
    lse[n] = m + std::log(sum);
  }
}

#define INSTANTIATE(T)                                                              \
  template void softmax_forward<T>(T*, const T*, int64_t, int64_t);                 \
  template void softmax_backward<T>(T*, const T*, const T*, int64_t, int64_t);      \
  template void log_softmax_forward<T>(T*, const T*, int64_t, int64_t);             \
  template void log_softmax_backward<T>(T*, const T*, const T*, int64_t, int64_t);  \
  template void logsumexp_forward<T>(T*, const T*, int64_t, int64_t);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace attnlab::kernels
