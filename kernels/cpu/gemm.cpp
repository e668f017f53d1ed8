#include "kernels/cpu/gemm.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>

namespace attnlab::kernels {

namespace {

// BLAS entry points by element type.
void gemm_blas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
              B, ldb, beta, C, ldc);
}
void gemm_blas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
               const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
              B, ldb, beta, C, ldc);
}
// y[i] = alpha * <A[i, :], x> + beta * y[i] for rows [r0, r1) of a row-major A, x and y contiguous: four rows
// per pass over x, two accumulators each, one combined horizontal sum (as decode_attention's dots).
void gemv_rows_f32(int64_t r0, int64_t r1, int64_t cols, float alpha, const float* A, int64_t lda, const float* x,
                   float beta, float* y) {
  const int64_t c16 = cols / 16 * 16;
  auto finish = [&](int64_t i, float dot) { y[i] = alpha * dot + (beta == 0.f ? 0.f : beta * y[i]); };
  int64_t i = r0;
  for (; i + 4 <= r1; i += 4) {
    const float* a[4] = {A + i * lda, A + (i + 1) * lda, A + (i + 2) * lda, A + (i + 3) * lda};
    __m256 s[4][2];
    for (auto& r : s) r[0] = r[1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < c16; k += 16) {
      const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
      for (int r = 0; r < 4; ++r) {
        s[r][0] = _mm256_fmadd_ps(_mm256_loadu_ps(a[r] + k), x0, s[r][0]);
        s[r][1] = _mm256_fmadd_ps(_mm256_loadu_ps(a[r] + k + 8), x1, s[r][1]);
      }
    }
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(_mm256_add_ps(s[0][0], s[0][1]), _mm256_add_ps(s[1][0], s[1][1])),
                                    _mm256_hadd_ps(_mm256_add_ps(s[2][0], s[2][1]), _mm256_add_ps(s[3][0], s[3][1])));
    float d[4];
    _mm_storeu_ps(d, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    for (int r = 0; r < 4; ++r) {
      for (int64_t k = c16; k < cols; ++k) d[r] += a[r][k] * x[k];
      finish(i + r, d[r]);
    }
  }
  for (; i < r1; ++i) {
    float d = 0;
    for (int64_t k = 0; k < cols; ++k) d += A[i * lda + k] * x[k];
    finish(i, d);
  }
}

// Matrices below this many elements run on the calling thread: waking a second one costs more.
constexpr int64_t kGemvParallelElems = int64_t(1) << 17;

void gemv_blas(bool trans, int64_t rows, int64_t cols, float alpha, const float* A, int64_t lda, const float* x,
               int64_t incx, float beta, float* y, int64_t incy) {
  if (!trans && incx == 1 && incy == 1) {
    // OpenBLAS's sgemv spins its own thread pool per call; the row-dot form is memory-bound and simple.
    const int64_t threads = rows * cols >= kGemvParallelElems ? std::min<int64_t>(omp_get_max_threads(), rows / 64) : 1;
    if (threads <= 1) return gemv_rows_f32(0, rows, cols, alpha, A, lda, x, beta, y);
#pragma omp parallel num_threads(int(threads))
    {
      const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
      const int64_t per = (rows + n - 1) / n / 4 * 4 + 4;
      const int64_t r0 = std::min(rows, t * per), r1 = std::min(rows, r0 + per);
      gemv_rows_f32(r0, r1, cols, alpha, A, lda, x, beta, y);
    }
    return;
  }
  cblas_sgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, rows, cols, alpha, A, lda, x, incx, beta, y, incy);
}
void gemv_blas(bool trans, int64_t rows, int64_t cols, double alpha, const double* A, int64_t lda, const double* x,
               int64_t incx, double beta, double* y, int64_t incy) {
  cblas_dgemv(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, rows, cols, alpha, A, lda, x, incx, beta, y, incy);
}

// A product with one row (M = 1) or one column (N = 1) is a matrix-vector product. sgemm would pack
// the whole other matrix into its panel layout on every call — for a decode step (one position
// through a Linear layer) that copy costs more than the arithmetic — so these go to gemv, which reads
// the matrix in place.
template <class T>
void gemm_any(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
              int64_t ldb, T beta, T* C, int64_t ldc) {
  if (K > 0 && (M == 1 || N == 1)) {
    const int64_t n_out = M == 1 ? N : M, inc_c = M == 1 ? 1 : ldc;
    if (beta == T(0))  // BLAS may scale garbage (NaN bits) by 0: start from zeros instead
      for (int64_t i = 0; i < n_out; ++i) C[i * inc_c] = T(0);
    if (M == 1)  // c[N] = op(B)^T a, a = row 0 of op(A): A[k] (or A[k * lda] when transposed)
      gemv_blas(!tb, tb ? N : K, tb ? K : N, alpha, B, ldb, A, ta ? lda : 1, beta, C, inc_c);
    else  // c[M] = op(A) b, b = column 0 of op(B): B[k * ldb] (or B[k] when transposed)
      gemv_blas(ta, ta ? K : M, ta ? M : K, alpha, A, lda, B, tb ? 1 : ldb, beta, C, inc_c);
    return;
  }
  gemm_blas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_any(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  gemm_any(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace attnlab::kernels
