// Error checks for CUDA and cuBLAS calls in .cu files: a failure throws attnlab::Error naming the file,
// the line, the call and the CUDA error string, e.g.
//   "kernels/cuda/runtime.cu:41: cudaMalloc(&p, n) failed: cudaErrorMemoryAllocation (out of memory)".
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kernels/error.h"

#define ATTNLAB_CUDA_CHECK(expr)                                                                 \
  do {                                                                                           \
    const cudaError_t attnlab_err_ = (expr);                                                     \
    if (attnlab_err_ != cudaSuccess)                                                             \
      throw ::attnlab::Error(::attnlab::cat(__FILE__, ":", __LINE__, ": ", #expr, " failed: ",   \
                                            cudaGetErrorName(attnlab_err_), " (",                \
                                            cudaGetErrorString(attnlab_err_), ")"));             \
  } while (0)

// After a kernel launch: reports bad launch configurations (the kernel's own faults surface at the
// next synchronizing call, which is checked too).
#define ATTNLAB_CUDA_CHECK_LAUNCH() ATTNLAB_CUDA_CHECK(cudaGetLastError())

#define ATTNLAB_CUBLAS_CHECK(expr)                                                               \
  do {                                                                                           \
    const cublasStatus_t attnlab_st_ = (expr);                                                   \
    if (attnlab_st_ != CUBLAS_STATUS_SUCCESS)                                                    \
      throw ::attnlab::Error(::attnlab::cat(__FILE__, ":", __LINE__, ": ", #expr, " failed: ",   \
                                            cublasGetStatusName(attnlab_st_), " (",              \
                                            cublasGetStatusString(attnlab_st_), ")"));           \
  } while (0)

namespace attnlab::kernels::cuda {
// The stream every attnlab kernel on `device` runs on (see runtime.h).
cudaStream_t current_stream(int device);
// The cuBLAS handle bound to current_stream(device).
cublasHandle_t cublas_handle(int device);
}  // namespace attnlab::kernels::cuda
