// Reductions, softmax and matmul with their derivatives.
#include <numeric>

#include "autograd/autocast.h"
#include "autograd/derivative_helpers.h"
#include "autograd/functions.h"
#include "tensor/dispatch.h"

namespace attnlab {


namespace {
// The dims a reduction removed, as non-negative numbers (all dims when `dims` is empty).
std::vector<int64_t> reduced_dims(std::vector<int64_t> dims, int64_t ndim) {
  if (dims.empty()) {
    dims.resize(size_t(ndim));
    std::iota(dims.begin(), dims.end(), 0);
  }
  for (auto& d : dims) d = wrap_dim(d, ndim, "reduction");
  return dims;
}

// Re-inserts the reduced dims as size 1 so a reduced tensor broadcasts against the input.
Tensor keep(const Tensor& t, const Shape& in_shape, const std::vector<int64_t>& dims, bool keepdim) {
  if (keepdim) return t;
  Shape s = in_shape;
  for (int64_t d : dims) s[size_t(d)] = 1;
  return reshape(t, s);
}
}  // namespace

Tensor sum(const Tensor& a0, std::vector<int64_t> dims, bool keepdim) {
  const Tensor a = autocast::to_f32(a0);
  // d/da = 1 broadcast back
  const auto rd = reduced_dims(dims, a.dim());
  return record("sum", ops::sum(a, dims, keepdim), {a}, [shape = a.shape(), rd, keepdim](const Tensor& g) {
    return Grads{contiguous(expand(keep(g, shape, rd, keepdim), shape))};
  });
}

Tensor mean(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  // d/da = 1/n broadcast back
  const auto rd = reduced_dims(dims, a.dim());
  int64_t n = 1;
  for (int64_t d : rd) n *= a.dim() ? a.shape()[size_t(d)] : 1;
  return record("mean", ops::mean(a, dims, keepdim), {a}, [shape = a.shape(), rd, keepdim, n](const Tensor& g) {
    return Grads{binary_scalar(BinaryOp::mul, expand(keep(g, shape, rd, keepdim), shape), 1.0 / double(n))};
  });
}

Tensor var(const Tensor& a, std::vector<int64_t> dims, int64_t correction, bool keepdim) {
  // d/da = 2 (a - mean) / (n - correction)
  const auto rd = reduced_dims(dims, a.dim());
  int64_t n = 1;
  for (int64_t d : rd) n *= a.dim() ? a.shape()[size_t(d)] : 1;
  Tensor out = ops::var(a, dims, correction, keepdim);
  if (!needs_grad({a})) return out;
  return record("var", out, {a}, [sa = SavedTensor(a, "var"), rd, keepdim, n, correction](const Tensor& g) {
    const Tensor x = sa.get();
    const Tensor centered = ops::sub(x, ops::mean(x, rd, true));
    const Tensor gk = keep(g, x.shape(), rd, keepdim);
    return Grads{ops::mul(gk, binary_scalar(BinaryOp::mul, centered, 2.0 / double(n - correction)))};
  });
}

Tensor std(const Tensor& a, std::vector<int64_t> dims, int64_t correction, bool keepdim) {
  return sqrt(var(a, std::move(dims), correction, keepdim));
}

namespace {
// amax/amin: gradient spread evenly over the positions equal to the extremum (PyTorch's rule).
Tensor extreme_all(const Tensor& a, std::vector<int64_t> dims, bool keepdim, bool is_max) {
  const char* name = is_max ? "amax" : "amin";
  const auto rd = reduced_dims(dims, a.dim());
  Tensor out = is_max ? ops::amax(a, dims, keepdim) : ops::amin(a, dims, keepdim);
  if (!needs_grad({a})) return out;
  return record(name, out, {a}, [sa = SavedTensor(a, name), so = SavedTensor(out, name), rd, keepdim](const Tensor& g) {
    const Tensor x = sa.get();
    const Tensor hit = to_dtype(compare(ops::CompareOp::eq, x, keep(so.get(), x.shape(), rd, keepdim)), g.dtype());
    const Tensor count = ops::sum(hit, rd, true);
    return Grads{ops::mul(ops::div(hit, count), keep(g, x.shape(), rd, keepdim))};
  });
}

std::pair<Tensor, Tensor> extreme_dim(const Tensor& a, int64_t dim, bool keepdim, bool is_max) {
  const char* name = is_max ? "max" : "min";
  auto [values, indices] = is_max ? ops::max(a, dim, keepdim) : ops::min(a, dim, keepdim);
  const int64_t d = wrap_dim(dim, a.dim(), name);
  values = record(name, values, {a}, [shape = a.shape(), d, idx = indices, keepdim](const Tensor& g) {
    // the gradient goes to the selected index only
    const Tensor gi = keepdim ? g : unsqueeze(g, d);
    const Tensor ii = keepdim ? idx : unsqueeze(idx, d);
    return Grads{scatter_add(zeros(shape, g.dtype(), g.device()), d, ii, contiguous(gi))};
  });
  return {values, indices};
}
}  // namespace

Tensor amax(const Tensor& a, std::vector<int64_t> dims, bool keepdim) { return extreme_all(a, std::move(dims), keepdim, true); }
Tensor amin(const Tensor& a, std::vector<int64_t> dims, bool keepdim) { return extreme_all(a, std::move(dims), keepdim, false); }
std::pair<Tensor, Tensor> max(const Tensor& a, int64_t dim, bool keepdim) { return extreme_dim(a, dim, keepdim, true); }
std::pair<Tensor, Tensor> min(const Tensor& a, int64_t dim, bool keepdim) { return extreme_dim(a, dim, keepdim, false); }

Tensor logsumexp(const Tensor& a0, std::vector<int64_t> dims, bool keepdim) {
  const Tensor a = autocast::to_f32(a0);
  // d/da = exp(a - out) = softmax over the reduced dims
  const auto rd = reduced_dims(dims, a.dim());
  Tensor out = ops::logsumexp(a, dims, keepdim);
  if (!needs_grad({a})) return out;
  return record("logsumexp", out, {a}, [sa = SavedTensor(a, "logsumexp"), so = SavedTensor(out, "logsumexp"), rd, keepdim](const Tensor& g) {
    const Tensor x = sa.get();
    const Tensor p = unary(ops::UnaryOp::exp, ops::sub(x, keep(so.get(), x.shape(), rd, keepdim)));
    return Grads{ops::mul(p, keep(g, x.shape(), rd, keepdim))};
  });
}

Tensor softmax(const Tensor& a0, int64_t dim) {
  const Tensor a = autocast::to_f32(a0);
  // d/da = y (g - sum(g y))
  Tensor out = ops::softmax(a, dim);
  if (!needs_grad({a})) return out;
  return record("softmax", out, {a}, [so = SavedTensor(out, "softmax"), dim](const Tensor& g) {
    return Grads{softmax_backward(g, so.get(), dim)};
  });
}

Tensor log_softmax(const Tensor& a0, int64_t dim) {
  const Tensor a = autocast::to_f32(a0);
  // d/da = g - exp(y) sum(g)
  Tensor out = ops::log_softmax(a, dim);
  if (!needs_grad({a})) return out;
  return record("log_softmax", out, {a}, [so = SavedTensor(out, "log_softmax"), dim](const Tensor& g) {
    return Grads{log_softmax_backward(g, so.get(), dim)};
  });
}

Tensor matmul(const Tensor& a0, const Tensor& b0) {
  const Tensor a = autocast::to_low(a0), b = autocast::to_low(b0);
  // For the 2-D core C = A B: dA = G Bᵀ, dB = Aᵀ G. 1-D operands are promoted to matrices, and batch
  // dims broadcast, exactly as the forward does; gradients are then summed back to each input's shape.
  Tensor out = ops::matmul(a, b);
  if (!needs_grad({a, b})) return out;
  return record("matmul", out, {a, b},
                [sa = SavedTensor(b.requires_grad() ? a : Tensor(), "matmul"),
                 sb = SavedTensor(a.requires_grad() ? b : Tensor(), "matmul"), as = a.shape(),
                 bs = b.shape()](const Tensor& g0) {
                  const bool a1 = as.size() == 1, b1 = bs.size() == 1;
                  Tensor g = g0;
                  if (a1 && b1) g = reshape(g, {1, 1});
                  else if (a1) g = unsqueeze(g, -2);
                  else if (b1) g = unsqueeze(g, -1);
                  Grads out(2);
                  if (sb.defined()) {
                    const Tensor B = b1 ? unsqueeze(sb.get(), 1) : sb.get();
                    Tensor da = ops::matmul(g, transpose(B, -1, -2));
                    if (a1) da = squeeze(da, -2);
                    out[0] = sum_to(da, as);
                  }
                  if (sa.defined()) {
                    const Tensor A = a1 ? unsqueeze(sa.get(), 0) : sa.get();
                    Tensor db = ops::matmul(transpose(A, -1, -2), g);
                    if (b1) db = squeeze(db, -1);
                    out[1] = sum_to(db, bs);
                  }
                  return out;
                });
}

Tensor layer_norm(const Tensor& x0, const Tensor& weight0, const Tensor& bias0, double eps) {
  const Tensor x = autocast::to_f32(x0), weight = autocast::to_f32(weight0), bias = autocast::to_f32(bias0);
  // The fused kernel (CPU or CUDA, ops::layer_norm_forward) returns mean and rstd for the backward.
  const ops::LayerNormOut f = ops::layer_norm_forward(x, weight, bias, eps);
  if (!needs_grad({x, weight, bias})) return f.out;
  // Saves exactly what the fused backward needs: the input, the weight, mean and rstd.
  return record("layer_norm", f.out, {x, weight, bias},
                [sx = SavedTensor(x, "layer_norm"), sw = SavedTensor(weight, "layer_norm"), mean = f.mean,
                 rstd = f.rstd, has_b = bias.defined()](const Tensor& g) {
                  const ops::LayerNormGrads r = ops::layer_norm_backward(g, sx.get(), sw.get(), mean, rstd, has_b);
                  return Grads{r.dx, r.dweight, r.dbias};
                });
}

}  // namespace attnlab
