// Internal to tensor/: the CUDA half of the tensor ops. Each ops::* function checks its arguments once
// (shapes, dtypes, devices) and, when its inputs are on a GPU, branches early to the function of the
// same name here, which allocates the output on that device and calls the raw kernels of
// kernels/cuda/ops.h. Host C++ only: no CUDA headers.
//
// A 0-dim CPU tensor may join a CUDA elementwise op as a constant (as in PyTorch), so scalar_tensor(s)
// operands (binary_scalar, masked_fill, autograd's constants) need no device of their own.
#pragma once
#include <utility>

#include "kernels/cuda/ops.h"
#include "tensor/ops.h"

namespace attnlab::cuda_ops {

// True when t is a 0-dim CPU tensor that a CUDA op reads as a constant.
inline bool is_host_scalar(const Tensor& t) { return t.dim() == 0 && t.device().type == DeviceType::cpu; }
// The GPU among the operands of an elementwise op (the first CUDA one).
Device device_of(const Tensor& a, const Tensor& b);

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
