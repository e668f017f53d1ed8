// Differentiable ops: the API models and users call (namespace attnlab). Each one runs the tensor-level
// op from tensor/ops.h and records its derivative. The rules sit next to the forwards in
// functions_*.cpp — one place to review every derivative.
//
// Non-differentiable results (comparisons, argmax, indices) are plain tensors.
#pragma once
#include <utility>
#include <vector>

#include "autograd/graph.h"
#include "tensor/creation.h"
#include "tensor/ops.h"

namespace attnlab {

// ---- elementwise (broadcasting; gradients are un-broadcast by summing) -----------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);  // a > 0 where b's gradient is needed
Tensor pow(const Tensor& a, double exponent);
Tensor maximum(const Tensor& a, const Tensor& b);  // ties: gradient split equally (as PyTorch)
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor gelu(const Tensor& a, bool tanh_approx = false);  // fused kernel forward and backward
Tensor abs(const Tensor& a);
Tensor sign(const Tensor& a);  // gradient 0
Tensor square(const Tensor& a);
Tensor clamp(const Tensor& a, double lo, double hi);  // gradient 1 inside [lo, hi], 0 outside
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& a, const Tensor& mask, double value);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double s);
Tensor operator+(double s, const Tensor& a);
Tensor operator-(const Tensor& a, double s);
Tensor operator-(double s, const Tensor& a);
Tensor operator*(const Tensor& a, double s);
Tensor operator*(double s, const Tensor& a);
Tensor operator/(const Tensor& a, double s);
Tensor operator/(double s, const Tensor& a);

// comparisons -> u8, not differentiable
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);

// ---- reductions --------------------------------------------------------------------------------
Tensor sum(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor var(const Tensor& a, std::vector<int64_t> dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor std(const Tensor& a, std::vector<int64_t> dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor amax(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);  // ties split
Tensor amin(const Tensor& a, std::vector<int64_t> dims = {}, bool keepdim = false);
std::pair<Tensor, Tensor> max(const Tensor& a, int64_t dim, bool keepdim = false);  // (values, i64 indices)
std::pair<Tensor, Tensor> min(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor logsumexp(const Tensor& a, std::vector<int64_t> dims, bool keepdim = false);
Tensor softmax(const Tensor& a, int64_t dim);
Tensor log_softmax(const Tensor& a, int64_t dim);
inline Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false) { return ops::argmax(a, dim, keepdim); }

// ---- linear algebra ----------------------------------------------------------------------------
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- views (share storage; gradients flow back through them) -------------------------------------
Tensor view(const Tensor& a, const Shape& shape);
Tensor reshape(const Tensor& a, const Shape& shape);
Tensor permute(const Tensor& a, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& a, int64_t d0, int64_t d1);
Tensor narrow(const Tensor& a, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& a, int64_t dim, int64_t index);
Tensor expand(const Tensor& a, const Shape& shape);
inline Tensor broadcast_to(const Tensor& a, const Shape& shape) { return expand(a, shape); }
Tensor squeeze(const Tensor& a, int64_t dim);
Tensor unsqueeze(const Tensor& a, int64_t dim);
Tensor flatten(const Tensor& a, int64_t start = 0, int64_t end = -1);
Tensor contiguous(const Tensor& a);
Tensor clone(const Tensor& a);
Tensor to_dtype(const Tensor& a, DType dtype);  // gradient converted back to a's dtype

// ---- joining and indexing -------------------------------------------------------------------------
Tensor cat(const std::vector<Tensor>& ts, int64_t dim);
Tensor stack(const std::vector<Tensor>& ts, int64_t dim);
std::vector<Tensor> split(const Tensor& a, int64_t split_size, int64_t dim);
std::vector<Tensor> chunk(const Tensor& a, int64_t chunks, int64_t dim);
Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& a, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& a, int64_t dim, const Tensor& index, const Tensor& src);
Tensor cumsum(const Tensor& a, int64_t dim);

// ---- fused nn ops ------------------------------------------------------------------------------
// LayerNorm over the last dim with the fused kernel (saves mean and rstd). weight/bias may be undefined.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);

// ---- in-place (not differentiable: they refuse tensors that require grad while grad mode is on) ----
void add_(const Tensor& t, const Tensor& other, double alpha = 1.0);
void mul_(const Tensor& t, double s);
void fill_(const Tensor& t, double value);
void zero_(const Tensor& t);
void copy_(const Tensor& dst, const Tensor& src);
Tensor& masked_fill_(Tensor& t, const Tensor& mask, double value);

}  // namespace attnlab
