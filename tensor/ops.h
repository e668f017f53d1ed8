// Tensor-level compute ops: no autograd here (autograd/ wraps each of these with its derivative).
// All ops take strided inputs; outputs are new contiguous tensors unless the op is a view.
// Binary ops follow NumPy broadcasting and require equal dtypes (no silent promotion: convert with
// to_dtype). bf16/f16 inputs are computed in f32 and rounded back (round-to-nearest-even).
#pragma once
#include <utility>
#include <vector>

#include "kernels/op_kinds.h"
#include "tensor/tensor.h"

namespace attnlab::ops {

// ---- views (share storage) --------------------------------------------------------------------------
Tensor view(const Tensor& t, Shape shape);              // throws when strides forbid; one -1 allowed
Tensor reshape(const Tensor& t, Shape shape);           // a view when possible, else a copy
Tensor permute(const Tensor& t, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& t, int64_t dim, int64_t index);  // removes dim
Tensor expand(const Tensor& t, const Shape& shape);          // broadcast_to; -1 keeps a dim
Tensor squeeze(const Tensor& t, int64_t dim);
Tensor squeeze(const Tensor& t);                             // all size-1 dims
Tensor unsqueeze(const Tensor& t, int64_t dim);
Tensor flatten(const Tensor& t, int64_t start = 0, int64_t end = -1);
// Resolves one -1 in `shape` against numel; checks the product.
Shape infer_shape(Shape shape, int64_t numel, const char* op);
// A view with `shape` (already resolved), or an undefined Tensor when strides forbid one.
Tensor try_view(const Tensor& t, const Shape& shape);

// ---- copies / conversion ----------------------------------------------------------------------------
Tensor contiguous(const Tensor& t);  // t itself when already contiguous
Tensor clone(const Tensor& t);       // always a fresh contiguous copy
Tensor to_dtype(const Tensor& t, DType dtype);
// dst[...] = broadcast(src) converted to dst's dtype; bumps dst's version. dst and src may be on
// different devices (the bytes go through runtime.h's staged copies).
void copy_(const Tensor& dst, const Tensor& src);
// A contiguous copy of t on `device` with t's dtype, or t itself when already there. No autograd edge
// (autograd wraps it). CUDA→CPU waits for the GPU; CPU→CUDA returns once t may be reused.
Tensor to_device(const Tensor& t, Device device);

// ---- elementwise --------------------------------------------------------------------------------------
// add sub mul div pow maximum minimum | neg exp log sqrt rsqrt tanh sigmoid relu abs sign square
// reciprocal sin cos erf | eq ne lt le gt ge  (defined in kernels/op_kinds.h for the CUDA kernels too)
using BinaryOp = kernels::BinaryOp;
using UnaryOp = kernels::UnaryOp;
using CompareOp = kernels::CompareOp;

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor binary_scalar(BinaryOp op, const Tensor& a, double s);   // a op s
Tensor rbinary_scalar(BinaryOp op, double s, const Tensor& a);  // s op a
Tensor unary(UnaryOp op, const Tensor& a);
Tensor compare(CompareOp op, const Tensor& a, const Tensor& b);  // -> u8 (0/1)
Tensor compare_scalar(CompareOp op, const Tensor& a, double s);  // -> u8
Tensor clamp(const Tensor& a, double lo, double hi);             // use ±inf for one-sided
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // cond: u8, broadcasting
Tensor masked_fill(const Tensor& a, const Tensor& mask, double value);  // mask: u8, broadcastable to a
Tensor gelu(const Tensor& a, bool tanh_approx = false);

inline Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::add, a, b); }
inline Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::sub, a, b); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::mul, a, b); }
inline Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::div, a, b); }

// ---- fused layers: forward saves what backward needs (kernels/cpu/gelu.h, layernorm.h) -------------
// g * gelu'(x) (shapes equal).
Tensor gelu_backward(const Tensor& g, const Tensor& x, bool tanh_approx = false);
// LayerNorm over the last dim C of x [..., C]; weight/bias [C] or undefined. f32/f64, bf16/f16 computed
// in f32 (mean/rstd [N = numel / C] then f32).
struct LayerNormOut {
  Tensor out, mean, rstd;
};
LayerNormOut layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);
struct LayerNormGrads {
  Tensor dx, dweight, dbias;  // dweight/dbias undefined without weight/bias
};
LayerNormGrads layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                                   const Tensor& rstd, bool has_bias);

// ---- in-place (each bumps the version counter) ------------------------------------------------------
void fill_(const Tensor& t, double value);
void add_(const Tensor& t, const Tensor& other, double alpha = 1.0);  // t += alpha * other
void mul_(const Tensor& t, double s);
void binary_(BinaryOp op, const Tensor& t, const Tensor& other);     // t = t op other

// ---- reductions (dims empty = all) ---------------------------------------------------------------
Tensor sum(const Tensor& t, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& t, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor var(const Tensor& t, std::vector<int64_t> dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor std(const Tensor& t, std::vector<int64_t> dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor amax(const Tensor& t, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amin(const Tensor& t, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor logsumexp(const Tensor& t, std::vector<int64_t> dims, bool keepdim = false);
// values and i64 indices of the first max/min along dim
std::pair<Tensor, Tensor> max(const Tensor& t, int64_t dim, bool keepdim = false);
std::pair<Tensor, Tensor> min(const Tensor& t, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& t, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& t, int64_t dim, bool keepdim = false);
// Sums `t` down to `shape` (the inverse of broadcasting; used to un-broadcast gradients).
Tensor sum_to(const Tensor& t, const Shape& shape);

Tensor softmax(const Tensor& t, int64_t dim);
Tensor log_softmax(const Tensor& t, int64_t dim);
// grad of softmax given its output y: y * (g - sum(g*y)); of log_softmax given its output.
Tensor softmax_backward(const Tensor& g, const Tensor& y, int64_t dim);
Tensor log_softmax_backward(const Tensor& g, const Tensor& y, int64_t dim);

// ---- linear algebra -------------------------------------------------------------------------------
// 1-D…N-D with batch broadcasting, as torch.matmul. f32/f64 through OpenBLAS; transposed views are
// passed to BLAS as transposes, never copied.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- joining, splitting, indexing -------------------------------------------------------------------
Tensor cat(const std::vector<Tensor>& ts, int64_t dim);
Tensor stack(const std::vector<Tensor>& ts, int64_t dim);
std::vector<Tensor> split(const Tensor& t, int64_t split_size, int64_t dim);  // views
std::vector<Tensor> chunk(const Tensor& t, int64_t chunks, int64_t dim);      // views
Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index);  // index: i64/i32 1-D
Tensor gather(const Tensor& t, int64_t dim, const Tensor& index);        // index same ndim as t
// out = t.clone(); out[... index[i] ...] += src[i] along dim (index shaped like src)
Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src);
// out[index[i]] += src[i] along dim, for index_select's backward: index 1-D, out shaped like `shape`
Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);
Tensor cumsum(const Tensor& t, int64_t dim);

}  // namespace attnlab::ops
