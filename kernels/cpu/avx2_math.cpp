#include "kernels/cpu/avx2_math.h"

#ifdef __AVX2__
#include <cmath>

namespace attnlab::kernels {

ErfTable::ErfTable() {
  constexpr int n = kDegree + 1;
  // Monomial coefficients of the Chebyshev polynomials T_0..T_7: cheb[k][m] = coefficient of s^m in T_k.
  double cheb[n][n] = {};
  cheb[0][0] = 1, cheb[1][1] = 1;
  for (int k = 2; k < n; ++k)  // T_k = 2 s T_{k-1} - T_{k-2}
    for (int m = 0; m < n; ++m) cheb[k][m] = (m > 0 ? 2 * cheb[k - 1][m - 1] : 0) - cheb[k - 2][m];
  for (int i = 0; i < kIntervals; ++i) {
    const double center = 0.5 * i + 0.25;
    // Interpolation at the Chebyshev nodes s_j = cos(pi (j + 1/2) / n): a_k = 2/n sum_j f(s_j) T_k(s_j).
    double a[n] = {};
    for (int j = 0; j < n; ++j) {
      const double theta = M_PI * (j + 0.5) / n, f = std::erf(center + std::cos(theta) / 4);
      for (int k = 0; k < n; ++k) a[k] += 2.0 / n * f * std::cos(k * theta);
    }
    a[0] /= 2;
    for (int m = 0; m < n; ++m) {
      double cm = 0;
      for (int k = 0; k < n; ++k) cm += a[k] * cheb[k][m];
      c[m][i] = float(cm);
    }
  }
}

const ErfTable& erf_table() {
  static const ErfTable table;
  return table;
}

}  // namespace attnlab::kernels
#endif
