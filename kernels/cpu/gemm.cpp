#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include "kernels/cpu/gemv.h"

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
void gemv_blas(bool trans, int64_t rows, int64_t cols, float alpha, const float* A, int64_t lda, const float* x,
               int64_t incx, float beta, float* y, int64_t incy) {
  if (!trans && incx == 1 && incy == 1) {
    // OpenBLAS's sgemv wakes its own spinning thread pool on every call; the row-dot form is as fast.
    return gemv(rows, cols, alpha, A, lda, x, beta, y);
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
