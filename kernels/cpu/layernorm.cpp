#include "kernels/cpu/layernorm.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace attnlab::kernels {

template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                       int64_t N, int64_t C, double eps) {
#pragma omp parallel for if (N * C > kParallelGrain)
  for (int64_t n = 0; n < N; ++n) {
    const T* x = inp + n * C;
    double s = 0, ss = 0;  // wide accumulators: f32 rows of a few thousand stay exact enough
    for (int64_t c = 0; c < C; ++c) {
      s += x[c];
      ss += double(x[c]) * x[c];
    }
    const double m = s / C;
    const double var = ss / C - m * m > 0 ? ss / C - m * m : 0.0;
    const T r = T(1.0 / std::sqrt(var + eps));
    const T mt = T(m);
    T* y = out + n * C;
    for (int64_t c = 0; c < C; ++c) {
      T v = (x[c] - mt) * r;
      if (weight) v *= weight[c];
      if (bias) v += bias[c];
      y[c] = v;
    }
    mean[n] = mt;
    rstd[n] = r;
  }
}

template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const T* mean, const T* rstd, int64_t N, int64_t C) {
  // dinp per row is independent: parallel over rows. dweight/dbias reduce over rows: each thread
  // accumulates a private copy, then the copies are summed in thread order (deterministic for a fixed
  // thread count).
  const int nthreads = (N * C > kParallelGrain) ? omp_get_max_threads() : 1;
  std::vector<T> dw_part((dweight ? C : 0) * nthreads, T(0)), db_part((dbias ? C : 0) * nthreads, T(0));
#pragma omp parallel num_threads(nthreads)
  {
    const int tid = omp_get_thread_num();
    T* dw = dweight ? dw_part.data() + tid * C : nullptr;
    T* db = dbias ? db_part.data() + tid * C : nullptr;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const T* x = inp + n * C;
      const T* g = dout + n * C;
      const T m = mean[n], r = rstd[n];
      // dnorm = g * w; dx = r * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat))
      T sum_dn = 0, sum_dn_xhat = 0;
      for (int64_t c = 0; c < C; ++c) {
        const T xhat = (x[c] - m) * r;
        const T dn = weight ? g[c] * weight[c] : g[c];
        sum_dn += dn;
        sum_dn_xhat += dn * xhat;
        if (dw) dw[c] += g[c] * xhat;
        if (db) db[c] += g[c];
      }
      const T mean_dn = sum_dn / C, mean_dn_xhat = sum_dn_xhat / C;
      if (dinp) {
        T* dx = dinp + n * C;
        for (int64_t c = 0; c < C; ++c) {
          const T xhat = (x[c] - m) * r;
          const T dn = weight ? g[c] * weight[c] : g[c];
          dx[c] += r * (dn - mean_dn - xhat * mean_dn_xhat);
        }
      }
    }
  }
  for (int t = 0; t < nthreads; ++t)
    for (int64_t c = 0; c < C; ++c) {
      if (dweight) dweight[c] += dw_part[t * C + c];
      if (dbias) dbias[c] += db_part[t * C + c];
    }
}

template <class T>
void layernorm_forward_reference(T* out, T* mean, T* rstd, const T* inp, const T* weight,
                                 const T* bias, int64_t N, int64_t C, double eps) {
  for (int64_t n = 0; n < N; ++n) {
    const T* x = inp + n * C;
    double m = 0;
    for (int64_t c = 0; c < C; ++c) m += x[c];
    m /= C;
    double var = 0;
    for (int64_t c = 0; c < C; ++c) var += (x[c] - m) * (x[c] - m);
    var /= C;
    const double r = 1.0 / std::sqrt(var + eps);
    for (int64_t c = 0; c < C; ++c) {
      double v = (x[c] - m) * r;
      if (weight) v *= weight[c];
      if (bias) v += bias[c];
      out[n * C + c] = T(v);
    }
    mean[n] = T(m);
    rstd[n] = T(r);
  }
}

template <class T>
void layernorm_backward_reference(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                                  const T* weight, const T* mean, const T* rstd, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; ++n) {
    const T* x = inp + n * C;
    const T* g = dout + n * C;
    double mean_dn = 0, mean_dn_xhat = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double xhat = (x[c] - mean[n]) * rstd[n];
      const double dn = weight ? g[c] * weight[c] : g[c];
      mean_dn += dn / C;
      mean_dn_xhat += dn * xhat / C;
    }
    for (int64_t c = 0; c < C; ++c) {
      const double xhat = (x[c] - mean[n]) * rstd[n];
      const double dn = weight ? g[c] * weight[c] : g[c];
      if (dinp) dinp[n * C + c] += T(rstd[n] * (dn - mean_dn - xhat * mean_dn_xhat));
      if (dweight) dweight[c] += T(g[c] * xhat);
      if (dbias) dbias[c] += g[c];
    }
  }
}

#define INSTANTIATE(T)                                                                            \
  template void layernorm_forward<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t,  \
                                     double);                                                     \
  template void layernorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,         \
                                      const T*, int64_t, int64_t);                                \
  template void layernorm_forward_reference<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, \
                                               int64_t, double);                                  \
  template void layernorm_backward_reference<T>(T*, T*, T*, const T*, const T*, const T*,         \
                                                const T*, const T*, int64_t, int64_t);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace attnlab::kernels
