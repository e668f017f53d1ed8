// Matmul through cuBLAS. attnlab is row-major and cuBLAS column-major: a row-major C[M, N] is the
// column-major Cᵀ[N, M], so C = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ, i.e. cuBLAS gets B
// first, then A, with m = N and n = M and the same transpose flags.
#include "kernels/cuda/common.cuh"

namespace attnlab::kernels::cuda {

void gemm_strided_batched(DType dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const void* A,
                          int64_t lda, int64_t stride_a, const void* B, int64_t ldb, int64_t stride_b, void* C,
                          int64_t ldc, int64_t stride_c, int64_t batch, int device) {
  if (M == 0 || N == 0 || batch == 0) return;
  ATTNLAB_CHECK(M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX && lda <= INT32_MAX && ldb <= INT32_MAX &&
                    ldc <= INT32_MAX && batch <= INT32_MAX,
                "matmul: sizes beyond 2^31 are not supported by cuBLAS (M ", M, ", N ", N, ", K ", K, ")");
  cublasHandle_t h = cublas_handle(device);
  const cublasOperation_t opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cudaDataType_t type;
  cublasComputeType_t compute;
  const float one_f = 1.0f, zero_f = 0.0f;
  const double one_d = 1.0, zero_d = 0.0;
  const void* alpha = &one_f;
  const void* beta = &zero_f;
  switch (dtype) {
    case DType::f32: type = CUDA_R_32F; compute = CUBLAS_COMPUTE_32F; break;  // full f32: no TF32
    case DType::f64:
      type = CUDA_R_64F;
      compute = CUBLAS_COMPUTE_64F;
      alpha = &one_d;
      beta = &zero_d;
      break;
    case DType::bf16: type = CUDA_R_16BF; compute = CUBLAS_COMPUTE_32F; break;  // tensor cores, f32 accumulate
    case DType::f16: type = CUDA_R_16F; compute = CUBLAS_COMPUTE_32F; break;
    default: throw Error(cat("matmul: dtype ", dtype_name(dtype), " not supported on cuda (f32, f64, bf16, f16)"));
  }
  ATTNLAB_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      h, opb, opa, int(N), int(M), int(K), alpha, B, type, int(ldb), stride_b, A, type, int(lda), stride_a, beta, C,
      type, int(ldc), stride_c, int(batch), compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace attnlab::kernels::cuda
