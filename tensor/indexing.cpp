// Joining, splitting and indexing ops.
#include <algorithm>

#include "tensor/creation.h"
#include "tensor/cuda_ops.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace attnlab::ops {

Tensor cat(const std::vector<Tensor>& ts, int64_t dim) {
  ATTNLAB_CHECK(!ts.empty(), "cat: expected a non-empty list of tensors");
  const Tensor& t0 = ts[0];
  dim = wrap_dim(dim, t0.dim(), "cat");
  Shape shape = t0.shape();
  int64_t total = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    ATTNLAB_CHECK(t.dtype() == t0.dtype(), "cat: tensor ", i, " is ", describe(t), ", tensor 0 is ", describe(t0));
    check_same_device("cat", t0, t);
    ATTNLAB_CHECK(t.dim() == t0.dim(), "cat: tensor ", i, " ", describe(t), " has ", t.dim(),
                  " dims, tensor 0 ", describe(t0), " has ", t0.dim());
    for (int64_t d = 0; d < t.dim(); ++d)
      ATTNLAB_CHECK(d == dim || t.shape()[size_t(d)] == shape[size_t(d)], "cat: tensor ", i, " ",
                    describe(t), " differs from ", describe(t0), " in dim ", d);
    total += t.shape()[size_t(dim)];
  }
  shape[size_t(dim)] = total;
  Tensor out = Tensor::empty(shape, t0.dtype(), t0.device());
  int64_t at = 0;
  for (const auto& t : ts) {
    const int64_t n = t.shape()[size_t(dim)];
    if (n) copy_(narrow(out, dim, at, n), t);
    at += n;
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& ts, int64_t dim) {
  ATTNLAB_CHECK(!ts.empty(), "stack: expected a non-empty list of tensors");
  dim = wrap_dim(dim, ts[0].dim() + 1, "stack");
  std::vector<Tensor> u;
  for (size_t i = 0; i < ts.size(); ++i) {
    ATTNLAB_CHECK(ts[i].shape() == ts[0].shape(), "stack: tensor ", i, " ", describe(ts[i]),
                  " differs from tensor 0 ", describe(ts[0]));
    u.push_back(unsqueeze(ts[i], dim));
  }
  return cat(u, dim);
}

std::vector<Tensor> split(const Tensor& t, int64_t split_size, int64_t dim) {
  dim = wrap_dim(dim, t.dim(), "split");
  ATTNLAB_CHECK(split_size > 0, "split: split_size must be positive, got ", split_size);
  std::vector<Tensor> out;
  const int64_t n = t.shape()[size_t(dim)];
  for (int64_t s = 0; s < n; s += split_size) out.push_back(narrow(t, dim, s, std::min(split_size, n - s)));
  return out;
}

std::vector<Tensor> chunk(const Tensor& t, int64_t chunks, int64_t dim) {
  ATTNLAB_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  const int64_t n = t.shape()[size_t(wrap_dim(dim, t.dim(), "chunk"))];
  return split(t, std::max<int64_t>(1, (n + chunks - 1) / chunks), dim);
}

namespace {
void index_values_dtype(const Tensor& index, const char* op) {
  ATTNLAB_CHECK(index.dtype() == DType::i64 || index.dtype() == DType::i32, op,
                ": index must be i64 or i32, got ", describe(index));
}
std::vector<int64_t> index_values(const Tensor& index, const char* op) {
  index_values_dtype(index, op);
  return index.to_vector<int64_t>();
}
}  // namespace

Error index_error(const char* op, const Tensor& index, int64_t dim, int64_t n) {
  const std::vector<int64_t> idx = index.to_vector<int64_t>();  // a host copy: this is the error path
  size_t k = 0;
  while (k < idx.size() && idx[k] >= 0 && idx[k] < n) ++k;
  ATTNLAB_CHECK(k < idx.size(), "internal: ", op, " reported an out-of-range index, but every index of ",
                describe(index), " is in [0, ", n, ")");
  // The position as the index tensor's coordinates, e.g. [0, 1] (row-major order, as idx).
  std::vector<int64_t> pos(size_t(std::max<int64_t>(index.dim(), 1)), 0);
  for (int64_t d = index.dim() - 1, rem = int64_t(k); d >= 0; --d) {
    pos[size_t(d)] = rem % index.shape()[size_t(d)];
    rem /= index.shape()[size_t(d)];
  }
  return Error(attnlab::cat(op, ": index ", idx[k], " out of range for dim ", dim, " of size ", n, " (element ",
                   shape_str(pos), " of the index ", describe(index), ")"));
}

namespace {
// gather/scatter_add's checks of index against the big tensor (shared by the CPU and CUDA paths).
void check_index_shape(const Tensor& big, int64_t dim, const Tensor& index, const char* op) {
  ATTNLAB_CHECK(index.dim() == big.dim(), op, ": index ", describe(index), " must have as many dims as ",
                describe(big));
  for (int64_t d = 0; d < big.dim(); ++d)
    ATTNLAB_CHECK(d == dim || index.shape()[size_t(d)] <= big.shape()[size_t(d)], op, ": index ",
                  describe(index), " larger than ", describe(big), " in dim ", d);
  index_values_dtype(index, op);
}
}  // namespace

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  dim = wrap_dim(dim, t.dim(), "index_select");
  ATTNLAB_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got ", describe(index));
  if (t.is_cuda()) {
    index_values_dtype(index, "index_select");
    return cuda_ops::index_select(t, dim, index);
  }
  const auto idx = index_values(index, "index_select");
  const int64_t n = t.shape()[size_t(dim)];
  Shape shape = t.shape();
  shape[size_t(dim)] = int64_t(idx.size());
  Tensor out = Tensor::empty(shape, t.dtype(), t.device());
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] < 0 || idx[i] >= n) throw index_error("index_select", index, dim, n);
    copy_(select(out, dim, int64_t(i)), select(t, dim, idx[i]));
  }
  return out;
}

Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  dim = wrap_dim(dim, int64_t(shape.size()), "index_add");
  if (src.is_cuda()) {
    index_values_dtype(index, "index_add");
    return cuda_ops::index_add(shape, dim, index, src);
  }
  const auto idx = index_values(index, "index_add");
  Tensor out = zeros(shape, src.dtype(), src.device());
  const int64_t n = shape[size_t(dim)];
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx[i] < 0 || idx[i] >= n) throw index_error("index_add", index, dim, n);
    add_(select(out, dim, idx[i]), select(src, dim, int64_t(i)));
  }
  return out;
}

namespace {
// Shared loop of gather/scatter_add: for every position p of `index` (shape S), the element of the
// big tensor at p with dim replaced by index[p].
template <class F>
void for_index(const Tensor& big, int64_t dim, const Tensor& index, const char* op, F f) {
  check_index_shape(big, dim, index, op);
  const auto idx = index_values(index, op);
  const int64_t nd = index.dim(), n = big.shape()[size_t(dim)];
  std::vector<int64_t> pos(size_t(nd), 0);
  for (size_t k = 0; k < idx.size(); ++k) {
    if (idx[k] < 0 || idx[k] >= n) throw index_error(op, index, dim, n);
    int64_t off_big = 0;
    for (int64_t d = 0; d < nd; ++d)
      off_big += (d == dim ? idx[k] : pos[size_t(d)]) * big.strides()[size_t(d)];
    f(int64_t(k), off_big, pos);
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++pos[size_t(d)] < index.shape()[size_t(d)]) break;
      pos[size_t(d)] = 0;
    }
  }
}
}  // namespace

Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) {
  dim = wrap_dim(dim, t.dim(), "gather");
  if (t.is_cuda()) {
    check_index_shape(t, dim, index, "gather");
    return cuda_ops::gather(t, dim, index);
  }
  Tensor out = Tensor::empty(index.shape(), t.dtype(), t.device());
  dispatch_numeric(t.dtype(), "gather", [&]<class T>() {
    const T* src = t.data<T>();
    T* o = out.data<T>();
    for_index(t, dim, index, "gather", [&](int64_t k, int64_t off, const std::vector<int64_t>&) { o[k] = src[off]; });
  });
  return out;
}

Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  dim = wrap_dim(dim, t.dim(), "scatter_add");
  ATTNLAB_CHECK(src.shape() == index.shape(), "scatter_add: src ", describe(src), " and index ",
                describe(index), " must have the same shape");
  ATTNLAB_CHECK(src.dtype() == t.dtype(), "scatter_add: src ", describe(src), " vs self ", describe(t));
  check_same_device("scatter_add", t, src);
  if (t.is_cuda()) {
    check_index_shape(t, dim, index, "scatter_add");
    return cuda_ops::scatter_add(t, dim, index, src);
  }
  Tensor out = clone(t);
  const Tensor s = contiguous(src);
  dispatch_numeric(t.dtype(), "scatter_add", [&]<class T>() {
    const T* ps = s.data<T>();
    T* o = out.data<T>();
    for_index(out, dim, index, "scatter_add", [&](int64_t k, int64_t off, const std::vector<int64_t>&) { o[off] += ps[k]; });
  });
  return out;
}

Tensor cumsum(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim(), "cumsum");
  Tensor out = clone(t);
  const int64_t n = t.dim() == 0 ? 1 : t.shape()[size_t(dim)];
  for (int64_t i = 1; i < n; ++i) add_(select(out, dim, i), select(out, dim, i - 1));
  return out;
}

}  // namespace attnlab::ops
