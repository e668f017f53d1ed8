// View ops: new shape/strides/offset over the same storage. No data is copied (except reshape when the
// strides make a view impossible, as torch.reshape).
#include <algorithm>
#include <numeric>

#include "tensor/ops.h"

namespace attnlab::ops {

Shape infer_shape(Shape shape, int64_t n, const char* op) {
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      ATTNLAB_CHECK(infer < 0, op, ": only one dimension can be -1 in ", shape_str(shape));
      infer = int64_t(i);
    } else {
      ATTNLAB_CHECK(shape[i] >= 0, op, ": invalid dimension ", shape[i], " in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    ATTNLAB_CHECK(known != 0 && n % known == 0, op, ": shape ", shape_str(shape),
                  " is invalid for input of size ", n);
    shape[size_t(infer)] = n / known;
  }
  ATTNLAB_CHECK(numel(shape) == n, op, ": shape ", shape_str(shape), " is invalid for input of size ", n);
  return shape;
}

// Strides for viewing (old_shape, old_strides) as new_shape without copying, or empty if impossible.
// Same algorithm as PyTorch's computeStride: walk groups of old dims that are contiguous among
// themselves and split each group into the new dims it covers.
static bool view_strides(const Shape& old_shape, const Strides& old_strides, const Shape& new_shape,
                         Strides& out) {
  out.assign(new_shape.size(), 0);
  if (numel(old_shape) <= 1) {  // zero or one element: any strides describe it
    out = contiguous_strides(new_shape);
    return true;
  }
  int64_t view_d = int64_t(new_shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = int64_t(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    if (d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Tensor view(const Tensor& t, Shape shape) {
  shape = infer_shape(std::move(shape), t.numel(), "view");
  Strides st;
  ATTNLAB_CHECK(view_strides(t.shape(), t.strides(), shape, st), "view: cannot view ", describe(t),
                " with strides ", shape_str(t.strides()), " as ", shape_str(shape),
                " without a copy (use reshape)");
  return t.as_strided(shape, st, t.offset());
}

Tensor reshape(const Tensor& t, Shape shape) {
  shape = infer_shape(std::move(shape), t.numel(), "reshape");
  Strides st;
  if (view_strides(t.shape(), t.strides(), shape, st)) return t.as_strided(shape, st, t.offset());
  return view(clone(t), shape);
}

Tensor permute(const Tensor& t, const std::vector<int64_t>& dims) {
  ATTNLAB_CHECK(int64_t(dims.size()) == t.dim(), "permute: got ", dims.size(), " dims for ", describe(t));
  Shape sh(dims.size());
  Strides st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim(dims[i], t.dim(), "permute");
    ATTNLAB_CHECK(!seen[size_t(d)], "permute: dim ", d, " repeated in the permutation");
    seen[size_t(d)] = true;
    sh[i] = t.shape()[size_t(d)];
    st[i] = t.strides()[size_t(d)];
  }
  return t.as_strided(sh, st, t.offset());
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  std::vector<int64_t> p(size_t(t.dim()));
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[size_t(wrap_dim(d0, t.dim(), "transpose"))], p[size_t(wrap_dim(d1, t.dim(), "transpose"))]);
  return permute(t, p);
}

Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  dim = wrap_dim(dim, t.dim(), "slice");
  ATTNLAB_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = t.shape()[size_t(dim)];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sh = t.shape();
  Strides st = t.strides();
  sh[size_t(dim)] = (end - start + step - 1) / step;
  st[size_t(dim)] *= step;
  return t.as_strided(sh, st, t.offset() + start * t.strides()[size_t(dim)]);
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  dim = wrap_dim(dim, t.dim(), "narrow");
  const int64_t n = t.shape()[size_t(dim)];
  ATTNLAB_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: range [", start, ", ",
                start + length, ") out of bounds for dim ", dim, " of size ", n, " in ", describe(t));
  return slice(t, dim, start, start + length);
}

Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  dim = wrap_dim(dim, t.dim(), "select");
  const int64_t n = t.shape()[size_t(dim)];
  ATTNLAB_CHECK(index >= -n && index < n, "select: index ", index, " out of range for dim ", dim,
                " of size ", n);
  if (index < 0) index += n;
  Shape sh = t.shape();
  Strides st = t.strides();
  const int64_t off = t.offset() + index * st[size_t(dim)];
  sh.erase(sh.begin() + dim);
  st.erase(st.begin() + dim);
  return t.as_strided(sh, st, off);
}

Tensor expand(const Tensor& t, const Shape& shape) {
  ATTNLAB_CHECK(int64_t(shape.size()) >= t.dim(), "expand: target ", shape_str(shape),
                " has fewer dims than ", describe(t));
  const size_t off = shape.size() - size_t(t.dim());
  Shape sh(shape.size());
  Strides st(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < off) {
      ATTNLAB_CHECK(shape[i] >= 0, "expand: -1 not allowed in new leading dim ", i);
      sh[i] = shape[i];
      continue;
    }
    const int64_t cur = t.shape()[i - off];
    const int64_t want = shape[i] == -1 ? cur : shape[i];
    ATTNLAB_CHECK(cur == want || cur == 1, "expand: cannot expand ", describe(t), " to ",
                  shape_str(shape), " (dim ", i, ": ", cur, " -> ", want, ")");
    sh[i] = want;
    st[i] = cur == want ? t.strides()[i - off] : 0;
  }
  return t.as_strided(sh, st, t.offset());
}

Tensor squeeze(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim(), "squeeze");
  if (t.shape()[size_t(dim)] != 1) return t.as_strided(t.shape(), t.strides(), t.offset());
  Shape sh = t.shape();
  Strides st = t.strides();
  sh.erase(sh.begin() + dim);
  st.erase(st.begin() + dim);
  return t.as_strided(sh, st, t.offset());
}

Tensor squeeze(const Tensor& t) {
  Shape sh;
  Strides st;
  for (int64_t i = 0; i < t.dim(); ++i)
    if (t.shape()[size_t(i)] != 1) {
      sh.push_back(t.shape()[size_t(i)]);
      st.push_back(t.strides()[size_t(i)]);
    }
  return t.as_strided(sh, st, t.offset());
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim() + 1, "unsqueeze");
  Shape sh = t.shape();
  Strides st = t.strides();
  const int64_t s = dim < t.dim() ? st[size_t(dim)] * sh[size_t(dim)] : 1;
  sh.insert(sh.begin() + dim, 1);
  st.insert(st.begin() + dim, s);
  return t.as_strided(sh, st, t.offset());
}

Tensor flatten(const Tensor& t, int64_t start, int64_t end) {
  if (t.dim() == 0) return reshape(t, {1});
  start = wrap_dim(start, t.dim(), "flatten");
  end = wrap_dim(end, t.dim(), "flatten");
  ATTNLAB_CHECK(start <= end, "flatten: start dim ", start, " after end dim ", end);
  Shape sh(t.shape().begin(), t.shape().begin() + start);
  int64_t n = 1;
  for (int64_t i = start; i <= end; ++i) n *= t.shape()[size_t(i)];
  sh.push_back(n);
  sh.insert(sh.end(), t.shape().begin() + end + 1, t.shape().end());
  return reshape(t, sh);
}

}  // namespace attnlab::ops

namespace attnlab::ops {
// A view with the new shape, or an undefined Tensor when strides forbid one (no throw, no copy).
Tensor try_view(const Tensor& t, const Shape& shape) {
  Strides st;
  if (!view_strides(t.shape(), t.strides(), shape, st)) return Tensor();
  return t.as_strided(shape, st, t.offset());
}
}  // namespace attnlab::ops
