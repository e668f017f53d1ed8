// Views, joins and indexing with their derivatives. A view's gradient maps g back to the input's
// layout: the inverse permutation, a zero tensor with g written into the viewed region, a sum over
// expanded dims, and so on.
#include <numeric>

#include "autograd/autocast.h"
#include "autograd/derivative_helpers.h"
#include "autograd/functions.h"

namespace attnlab {


Tensor view(const Tensor& a, const Shape& shape) {
  return record("view", ops::view(a, shape), {a}, [s = a.shape()](const Tensor& g) { return Grads{reshape(g, s)}; });
}

Tensor reshape(const Tensor& a, const Shape& shape) {
  return record("reshape", ops::reshape(a, shape), {a}, [s = a.shape()](const Tensor& g) { return Grads{ops::reshape(g, s)}; });
}

Tensor flatten(const Tensor& a, int64_t start, int64_t end) {
  return record("flatten", ops::flatten(a, start, end), {a}, [s = a.shape()](const Tensor& g) { return Grads{ops::reshape(g, s)}; });
}

Tensor permute(const Tensor& a, const std::vector<int64_t>& dims) {
  std::vector<int64_t> inv(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inv[size_t(wrap_dim(dims[i], a.dim(), "permute"))] = int64_t(i);
  return record("permute", ops::permute(a, dims), {a}, [inv](const Tensor& g) { return Grads{ops::permute(g, inv)}; });
}

Tensor transpose(const Tensor& a, int64_t d0, int64_t d1) {
  return record("transpose", ops::transpose(a, d0, d1), {a}, [d0, d1](const Tensor& g) { return Grads{ops::transpose(g, d0, d1)}; });
}

Tensor slice(const Tensor& a, int64_t dim, int64_t start, int64_t end, int64_t step) {
  Tensor out = ops::slice(a, dim, start, end, step);
  // Recover the normalized start from the view's offset, so the backward writes the same region.
  const int64_t d = wrap_dim(dim, a.dim(), "slice");
  const int64_t st = a.strides()[size_t(d)];
  const int64_t norm_start = st ? (out.offset() - a.offset()) / st : 0;
  return record("slice", out, {a}, [s = a.shape(), d, norm_start, step, n = out.shape()[size_t(d)]](const Tensor& g) {
    Tensor z = zeros(s, g.dtype(), g.device());
    ops::copy_(ops::slice(z, d, norm_start, norm_start + n * step, step), g);
    return Grads{z};
  });
}

Tensor narrow(const Tensor& a, int64_t dim, int64_t start, int64_t length) {
  ops::narrow(a, dim, start, length);  // validates the range with narrow's own message
  return slice(a, dim, start, start + length);
}

Tensor select(const Tensor& a, int64_t dim, int64_t index) {
  const int64_t d = wrap_dim(dim, a.dim(), "select");
  Tensor out = ops::select(a, d, index);
  const int64_t n = a.shape()[size_t(d)];
  const int64_t idx = index < 0 ? index + n : index;
  return record("select", out, {a}, [s = a.shape(), d, idx](const Tensor& g) {
    Tensor z = zeros(s, g.dtype(), g.device());
    ops::copy_(ops::select(z, d, idx), g);
    return Grads{z};
  });
}

Tensor expand(const Tensor& a, const Shape& shape) {
  return record("expand", ops::expand(a, shape), {a}, [s = a.shape()](const Tensor& g) { return Grads{sum_to(g, s)}; });
}

Tensor squeeze(const Tensor& a, int64_t dim) {
  return record("squeeze", ops::squeeze(a, dim), {a}, [s = a.shape()](const Tensor& g) { return Grads{ops::reshape(g, s)}; });
}

Tensor unsqueeze(const Tensor& a, int64_t dim) {
  return record("unsqueeze", ops::unsqueeze(a, dim), {a}, [s = a.shape()](const Tensor& g) { return Grads{ops::reshape(g, s)}; });
}

Tensor contiguous(const Tensor& a) {
  if (a.is_contiguous()) return a;
  return record("contiguous", ops::contiguous(a), {a}, [](const Tensor& g) { return Grads{g}; });
}

Tensor clone(const Tensor& a) {
  return record("clone", ops::clone(a), {a}, [](const Tensor& g) { return Grads{g}; });
}

Tensor to_dtype(const Tensor& a, DType dtype) {
  if (a.dtype() == dtype) return a;
  ATTNLAB_CHECK(!a.requires_grad() || is_floating(dtype), "to_dtype: converting ", describe(a),
                " which requires grad to non-floating ", dtype_name(dtype), " cuts the gradient");
  return record("to_dtype", ops::to_dtype(a, dtype), {a}, [from = a.dtype()](const Tensor& g) {
    return Grads{ops::to_dtype(g, from)};
  });
}

Tensor cat(const std::vector<Tensor>& ts, int64_t dim) {
  Tensor out = ops::cat(ts, dim);
  if (!needs_grad(ts)) return out;
  const int64_t d = wrap_dim(dim, ts[0].dim(), "cat");
  std::vector<int64_t> sizes;
  for (const auto& t : ts) sizes.push_back(t.shape()[size_t(d)]);
  return record("cat", out, ts, [d, sizes](const Tensor& g) {
    Grads gs;
    int64_t at = 0;
    for (int64_t n : sizes) {
      gs.push_back(ops::narrow(g, d, at, n));
      at += n;
    }
    return gs;
  });
}

Tensor stack(const std::vector<Tensor>& ts, int64_t dim) {
  ATTNLAB_CHECK(!ts.empty(), "stack: expected a non-empty list of tensors");
  const int64_t d = wrap_dim(dim, ts[0].dim() + 1, "stack");
  std::vector<Tensor> u;
  for (const auto& t : ts) u.push_back(unsqueeze(t, d));
  return cat(u, d);
}

std::vector<Tensor> split(const Tensor& a, int64_t split_size, int64_t dim) {
  ATTNLAB_CHECK(split_size > 0, "split: split_size must be positive, got ", split_size);
  const int64_t d = wrap_dim(dim, a.dim(), "split");
  std::vector<Tensor> out;
  const int64_t n = a.shape()[size_t(d)];
  for (int64_t s = 0; s < n; s += split_size) out.push_back(narrow(a, d, s, std::min(split_size, n - s)));
  return out;
}

std::vector<Tensor> chunk(const Tensor& a, int64_t chunks, int64_t dim) {
  ATTNLAB_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  const int64_t n = a.shape()[size_t(wrap_dim(dim, a.dim(), "chunk"))];
  return split(a, std::max<int64_t>(1, (n + chunks - 1) / chunks), dim);
}

Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index) {
  // d/da: scatter-add g back to the selected rows (repeated indices accumulate)
  return record("index_select", ops::index_select(a, dim, index), {a},
                [s = a.shape(), dim, idx = index.detach()](const Tensor& g) { return Grads{index_add(s, dim, idx, g)}; });
}

Tensor gather(const Tensor& a, int64_t dim, const Tensor& index) {
  return record("gather", ops::gather(a, dim, index), {a}, [s = a.shape(), dim, idx = index.detach()](const Tensor& g) {
    return Grads{ops::scatter_add(zeros(s, g.dtype(), g.device()), dim, idx, contiguous(g))};
  });
}

Tensor scatter_add(const Tensor& a, int64_t dim, const Tensor& index, const Tensor& src) {
  // d/da = g; d/dsrc = gather(g, index)
  return record("scatter_add", ops::scatter_add(a, dim, index, src), {a, src},
                [dim, idx = index.detach()](const Tensor& g) { return Grads{g, ops::gather(g, dim, idx)}; });
}

Tensor cumsum(const Tensor& a0, int64_t dim) {
  const Tensor a = autocast::to_f32(a0);
  // d/da = reverse cumsum of g: g[i] + g[i+1] + ... (flip, cumsum, flip)
  return record("cumsum", ops::cumsum(a, dim), {a}, [dim](const Tensor& g) {
    const int64_t d = wrap_dim(dim, g.dim(), "cumsum");
    const Tensor total = ops::sum(g, {d}, true);
    // reverse cumsum = total - cumsum + g
    return Grads{ops::add(ops::sub(expand(total, g.shape()), ops::cumsum(g, d)), g)};
  });
}

}  // namespace attnlab
