// Internal to tensor/: the CUDA half of the tensor ops. Each ops::* function checks its arguments once
// (shapes, dtypes, devices) and, when its inputs are on a GPU, branches early to the function of the
// same name here, which allocates the output on that device and calls the raw kernels of
// kernels/cuda/ops.h. Host C++ only: no CUDA headers.
//
// A host scalar (tensor.h is_host_scalar: a 0-dim cpu:0 tensor) may join a CUDA elementwise op as a
// constant (as in PyTorch), so scalar_tensor(s) operands need no device of their own.
#pragma once
#include <utility>

#include "kernels/cuda/ops.h"
#include "tensor/ops.h"

namespace attnlab::cuda_ops {

// dst = broadcast(src) converted to dst's dtype; both on one GPU, or src a host scalar.
void copy_(const Tensor& dst, const Tensor& src);
void fill_(const Tensor& t, double value);
// a op (alpha * b), broadcasting; a and b of one dtype.
Tensor binary(ops::BinaryOp op, const Tensor& a, const Tensor& b, double alpha = 1.0);
// t = t op (alpha * other) in place (through a temporary when t overlaps itself or `other`).
void binary_(ops::BinaryOp op, const Tensor& t, const Tensor& other, double alpha = 1.0);
Tensor unary(ops::UnaryOp op, const Tensor& a);
Tensor compare(ops::CompareOp op, const Tensor& a, const Tensor& b);
Tensor clamp(const Tensor& a, double lo, double hi);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor gelu(const Tensor& a, bool tanh_approx);

// Reductions of a contiguous [outer, inner] `rows` tensor to `out_shape` (outer elements).
Tensor reduce_rows(kernels::cuda::Reduction r, const Tensor& rows, int64_t outer, int64_t inner,
                   const Shape& out_shape, int64_t correction = 0);
std::pair<Tensor, Tensor> arg_reduce_rows(bool is_max, const Tensor& rows, int64_t outer, int64_t inner,
                                          const Shape& out_shape);
// Softmax rows of contiguous [N, C] tensors into `out` (allocated by the caller).
void softmax_forward(bool log, const Tensor& out, const Tensor& in, int64_t N, int64_t C);
void softmax_backward(bool log, const Tensor& dinp, const Tensor& dout, const Tensor& out, int64_t N,
                      int64_t C);

// dim already wrapped; index validated for dtype and rank by the caller.
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);
Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);
Tensor gather(const Tensor& t, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src);

}  // namespace attnlab::cuda_ops

namespace attnlab::ops {
// The Error for an out-of-range index, shared by the CPU and CUDA paths (defined in indexing.cpp): the
// first bad value of `index` in row-major order and its position, e.g.
//   "gather: index 4 out of range for dim 1 of size 4 (element [0, 1] of the index i64[1, 2])".
// The CUDA kernels only flag that some index was bad; this reads the index back to name it.
Error index_error(const char* op, const Tensor& index, int64_t dim, int64_t n);
}  // namespace attnlab::ops
