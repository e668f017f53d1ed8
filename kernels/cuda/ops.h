// The CUDA kernels of the tensor ops, as plain C++ (no CUDA headers): raw device pointers, dtypes and
// sizes, like kernels/cpu. tensor/cuda_ops.cpp turns Tensors into these calls; nothing here knows a
// Tensor. Every call is queued on the device's stream (runtime.h) and returns without waiting, except
// the index ops, which read back an out-of-range flag (a synchronisation point) to throw a clear Error.
//
// Compute types: f32/f64 natively; bf16/f16 are loaded to f32, computed in f32 and rounded back
// (round-to-nearest-even), as the CPU ops do. Integer dtypes where the CPU op accepts them.
// In a build without CUDA every function throws an Error saying so (ops_stub.cpp).
#pragma once
#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/op_kinds.h"

namespace attnlab::kernels::cuda {

// ---- strided elementwise ---------------------------------------------------------------------------
// An elementwise call walks one logical shape of up to kMaxDims dims (the caller merges dims that are
// contiguous in every operand and drops size-1 dims first, so most calls have ndim 1 or 2). Each
// operand gives its base pointer (storage + offset) and a stride per dim in elements; stride 0
// broadcasts. An input whose data is null is the constant `scalar` (a broadcast Python-style number).
inline constexpr int kMaxDims = 8;
struct Extent {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
};
struct Operand {
  void* data = nullptr;
  DType dtype = DType::f32;
  int64_t stride[kMaxDims] = {};
  double scalar = 0;  // used when data is null
};

// dst = src converted to dst.dtype (any pair; to integers NaN/inf become 0). A scalar src fills dst.
void copy(const Extent& e, const Operand& dst, const Operand& src, int device);
// out = a op (alpha * b); alpha applies to add and sub only. out, a and b share one dtype.
void binary(BinaryOp op, const Extent& e, const Operand& out, const Operand& a, const Operand& b,
            double alpha, int device);
// out = op(a); transcendental ops need a floating dtype (the caller checks).
void unary(UnaryOp op, const Extent& e, const Operand& out, const Operand& a, int device);
// out (u8) = a op b (0/1), a and b of one dtype.
void compare(CompareOp op, const Extent& e, const Operand& out, const Operand& a, const Operand& b,
             int device);
// out = min(max(a, lo), hi); NaN stays NaN.
void clamp(const Extent& e, const Operand& out, const Operand& a, double lo, double hi, int device);
// out = cond ? a : b; cond is u8, a/b/out share one dtype.
void where(const Extent& e, const Operand& out, const Operand& cond, const Operand& a, const Operand& b,
           int device);

// ---- row reductions over a contiguous [outer, inner] array ----------------------------------------------
// One output per row (outer values). sum: all numeric dtypes (integers accumulate in i64); mean, var
// (divisor inner - correction, NaN when <= 0), logsumexp: floating; amax: all numeric, NaN propagates.
// inner may be 0 for sum (0) and mean/var (NaN); the caller rejects it for amax.
enum class Reduction : uint8_t { sum, mean, var, amax, logsumexp };
void reduce_rows(Reduction r, DType dtype, void* out, const void* in, int64_t outer, int64_t inner,
                 int64_t correction, int device);
// values[o] / indices[o] (i64) of the first max (is_max) or min of each row; the first NaN wins.
void arg_reduce_rows(bool is_max, DType dtype, void* values, int64_t* indices, const void* in,
                     int64_t outer, int64_t inner, int device);

// ---- softmax over the last dim of a contiguous [N, C] array (kernels/cpu/softmax.h) ------------------
// log = false: out = softmax(inp); true: out = log_softmax(inp).
void softmax_forward(bool log, DType dtype, void* out, const void* inp, int64_t N, int64_t C, int device);
// softmax: dinp = out * (dout - sum(dout * out)); log_softmax: dinp = dout - exp(out) * sum(dout).
// Overwrites dinp.
void softmax_backward(bool log, DType dtype, void* dinp, const void* dout, const void* out, int64_t N,
                      int64_t C, int device);

// ---- GELU and LayerNorm (kernels/cpu/gelu.h, layernorm.h): contiguous, f32/f64/bf16/f16 -------------
void gelu_forward(DType dtype, void* out, const void* inp, int64_t n, bool tanh_approx, int device);
// Accumulates: dinp += dout * gelu'(inp).
void gelu_backward(DType dtype, void* dinp, const void* inp, const void* dout, int64_t n,
                   bool tanh_approx, int device);
// inp, out: [N, C]; mean, rstd: [N]; weight, bias: [C] or null. f32/f64.
void layernorm_forward(DType dtype, void* out, void* mean, void* rstd, const void* inp,
                       const void* weight, const void* bias, int64_t N, int64_t C, double eps, int device);
// Accumulates (+=) into dinp [N, C], dweight [C], dbias [C]; dweight/dbias may be null. f32/f64.
void layernorm_backward(DType dtype, void* dinp, void* dweight, void* dbias, const void* dout,
                        const void* inp, const void* weight, const void* mean, const void* rstd, int64_t N,
                        int64_t C, int device);

// ---- indexing (index: i64 or i32 on the device) ----------------------------------------------------
// Each returns false when some index is outside [0, n) (read back from a device flag: a
// synchronisation point); the elements with valid indices are still processed. The caller names the
// first bad index from its own copy of the index (tensor/indexing.cpp index_error).
// out [outer, n_idx, inner] = in [outer, n_in, inner] at rows idx (contiguous arrays). Any dtype.
bool index_select(DType dtype, void* out, const void* in, DType idx_dtype, const void* idx,
                  int64_t outer, int64_t n_in, int64_t n_idx, int64_t inner, int device);
// out [outer, n_out, inner] += src [outer, n_idx, inner] into rows idx (atomic; f32/f64).
bool index_add(DType dtype, void* out, const void* src, DType idx_dtype, const void* idx, int64_t outer,
               int64_t n_out, int64_t n_idx, int64_t inner, int device);
// For every position p of `index` (shape e, strides index.stride): gather: out[p] (contiguous) =
// big[p with dim replaced by index[p]]; scatter_add: big[...] += src[p] (src strided as index, atomic,
// f32/f64). `n` = big's size along dim.
bool gather(DType dtype, void* out, const Operand& big, const Operand& index, const Extent& e, int dim,
            int64_t n, int device);
bool scatter_add(DType dtype, const Operand& big, const Operand& src, const Operand& index,
                 const Extent& e, int dim, int64_t n, int device);

// ---- matmul through cuBLAS -------------------------------------------------------------------------
// Row-major, as kernels/cpu/gemm.h: for b in [0, batch): C_b[M, N] = op(A_b)[M, K] · op(B_b)[K, N],
// with op(X) = X or Xᵀ (the stored matrix then being [K, M] / [N, K]), leading dims and batch strides
// in elements (stride 0 broadcasts a matrix). f32 (full f32, no TF32), f64, and bf16/f16 on tensor
// cores with f32 accumulation (cublasGemmStridedBatchedEx, CUBLAS_COMPUTE_32F).
void gemm_strided_batched(DType dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                          const void* A, int64_t lda, int64_t stride_a, const void* B, int64_t ldb,
                          int64_t stride_b, void* C, int64_t ldc, int64_t stride_c, int64_t batch,
                          int device);

// ---- optimizer -------------------------------------------------------------------------------------
// One fused AdamW step over n f32 master weights, the same arithmetic as nn/optim/adam.cpp (decoupled
// weight decay, bias corrections computed on the host in double from `step`, which starts at 1):
//   g = grad * grad_scale                       (grad_scale = 1 / loss scale, or 1)
//   param *= 1 - lr * weight_decay
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g²
//   param -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
// Hyperparameters in double (rounded to f32 after the host-side arithmetic, as the CPU optimizer).
void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, double lr, double beta1,
                double beta2, double eps, double weight_decay, int64_t step, double grad_scale, int device);

}  // namespace attnlab::kernels::cuda
