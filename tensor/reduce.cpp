// Reductions. Strategy (simple and always correct): permute the reduced dims to the end, make that
// contiguous, and reduce rows of a [outer, inner] matrix. f32 sums accumulate in double.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/cpu/softmax.h"
#include "tensor/creation.h"
#include "tensor/cuda_ops.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace attnlab::ops {

namespace {

struct Reduction {
  Tensor rows;       // contiguous [outer, inner]
  int64_t outer = 1, inner = 1;
  Shape out_shape;   // with or without keepdim
};

Reduction prepare(const Tensor& t, std::vector<int64_t> dims, bool keepdim, const char* op) {
  const int64_t nd = t.dim();
  if (dims.empty()) {
    dims.resize(size_t(nd));
    std::iota(dims.begin(), dims.end(), 0);
  }
  std::vector<bool> red(size_t(nd), false);
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, nd, op);
    ATTNLAB_CHECK(nd == 0 || !red[size_t(w)], op, ": dim ", w, " repeated");
    if (nd > 0) red[size_t(w)] = true;
  }
  std::vector<int64_t> perm;
  Reduction r;
  for (int64_t i = 0; i < nd; ++i)
    if (!red[size_t(i)]) {
      perm.push_back(i);
      r.outer *= t.shape()[size_t(i)];
      r.out_shape.push_back(t.shape()[size_t(i)]);
    } else if (keepdim) {
      r.out_shape.push_back(1);
    }
  if (keepdim) {  // keep original order of dims
    r.out_shape.clear();
    for (int64_t i = 0; i < nd; ++i) r.out_shape.push_back(red[size_t(i)] ? 1 : t.shape()[size_t(i)]);
  }
  for (int64_t i = 0; i < nd; ++i)
    if (red[size_t(i)]) {
      perm.push_back(i);
      r.inner *= t.shape()[size_t(i)];
    }
  r.rows = contiguous(permute(t, perm));
  return r;
}

// out[o] = f(row o, inner) for each row; Out is the output C++ type.
template <class T, class Out, class F>
Tensor reduce_rows(const Reduction& r, DType out_dtype, F f) {
  Tensor out = Tensor::empty(r.out_shape, out_dtype, r.rows.device());
  const T* in = r.rows.data<T>();
  Out* o = out.data<Out>();
#pragma omp parallel for if (r.outer * r.inner > kernels::kParallelGrain && r.outer > 1)
  for (int64_t i = 0; i < r.outer; ++i) o[i] = f(in + i * r.inner, r.inner);
  return out;
}

// The CUDA branch of a row reduction: same preparation, then one kernel (kernels/cuda/ops.h).
Tensor cuda_reduce(kernels::cuda::Reduction k, const Tensor& t, std::vector<int64_t> dims, bool keepdim,
                   const char* op, int64_t correction = 0) {
  ATTNLAB_CHECK(k == kernels::cuda::Reduction::sum || k == kernels::cuda::Reduction::amax || is_floating(t.dtype()),
                op, ": needs a floating dtype, got ", describe(t));
  const Reduction r = prepare(t, std::move(dims), keepdim, op);
  ATTNLAB_CHECK(r.inner > 0 || k != kernels::cuda::Reduction::amax, op, ": reduction over an empty dimension of ",
                describe(t));
  return cuda_ops::reduce_rows(k, r.rows, r.outer, r.inner, r.out_shape, correction);
}

template <class T> using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;

Tensor half_to_f32(const Tensor& t) {
  return (t.dtype() == DType::bf16 || t.dtype() == DType::f16) ? to_dtype(t, DType::f32) : t;
}

}  // namespace

Tensor sum(const Tensor& t0, std::vector<int64_t> dims, bool keepdim) {
  if (t0.is_cuda()) return cuda_reduce(kernels::cuda::Reduction::sum, t0, std::move(dims), keepdim, "sum");
  const Tensor t = half_to_f32(t0);
  Reduction r = prepare(t, std::move(dims), keepdim, "sum");
  Tensor out;
  dispatch_numeric(t.dtype(), "sum", [&]<class T>() {
    out = reduce_rows<T, T>(r, t.dtype(), [](const T* x, int64_t n) {
      Acc<T> s = 0;
      for (int64_t i = 0; i < n; ++i) s += x[i];
      return T(s);
    });
  });
  return to_dtype(out, t0.dtype());
}

Tensor mean(const Tensor& t0, std::vector<int64_t> dims, bool keepdim) {
  if (t0.is_cuda()) return cuda_reduce(kernels::cuda::Reduction::mean, t0, std::move(dims), keepdim, "mean");
  const Tensor t = half_to_f32(t0);
  ATTNLAB_CHECK(is_floating(t.dtype()), "mean: needs a floating dtype, got ", describe(t));
  Reduction r = prepare(t, std::move(dims), keepdim, "mean");
  Tensor out;
  dispatch_float(t.dtype(), "mean", [&]<class T>() {
    out = reduce_rows<T, T>(r, t.dtype(), [](const T* x, int64_t n) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += x[i];
      return n ? T(s / double(n)) : std::numeric_limits<T>::quiet_NaN();
    });
  });
  return to_dtype(out, t0.dtype());
}

Tensor var(const Tensor& t0, std::vector<int64_t> dims, int64_t correction, bool keepdim) {
  if (t0.is_cuda())
    return cuda_reduce(kernels::cuda::Reduction::var, t0, std::move(dims), keepdim, "var", correction);
  const Tensor t = half_to_f32(t0);
  Reduction r = prepare(t, std::move(dims), keepdim, "var");
  Tensor out;
  dispatch_float(t.dtype(), "var", [&]<class T>() {
    out = reduce_rows<T, T>(r, t.dtype(), [correction](const T* x, int64_t n) {
      double m = 0;
      for (int64_t i = 0; i < n; ++i) m += x[i];
      m /= double(n);
      double ss = 0;
      for (int64_t i = 0; i < n; ++i) ss += (x[i] - m) * (x[i] - m);
      const double denom = double(n - correction);
      return denom > 0 ? T(ss / denom) : std::numeric_limits<T>::quiet_NaN();
    });
  });
  return to_dtype(out, t0.dtype());
}

Tensor std(const Tensor& t, std::vector<int64_t> dims, int64_t correction, bool keepdim) {
  return unary(UnaryOp::sqrt, var(t, std::move(dims), correction, keepdim));
}

Tensor amax(const Tensor& t0, std::vector<int64_t> dims, bool keepdim) {
  if (t0.is_cuda()) return cuda_reduce(kernels::cuda::Reduction::amax, t0, std::move(dims), keepdim, "amax");
  const Tensor t = half_to_f32(t0);
  Reduction r = prepare(t, std::move(dims), keepdim, "amax");
  ATTNLAB_CHECK(r.inner > 0, "amax: reduction over an empty dimension of ", describe(t0));
  Tensor out;
  dispatch_numeric(t.dtype(), "amax", [&]<class T>() {
    out = reduce_rows<T, T>(r, t.dtype(), [](const T* x, int64_t n) {
      T m = x[0];
      for (int64_t i = 1; i < n; ++i) m = (x[i] > m || x[i] != x[i]) ? x[i] : m;
      return m;
    });
  });
  return to_dtype(out, t0.dtype());
}

Tensor amin(const Tensor& t, std::vector<int64_t> dims, bool keepdim) {
  return unary(UnaryOp::neg, amax(unary(UnaryOp::neg, t), std::move(dims), keepdim));
}

Tensor logsumexp(const Tensor& t0, std::vector<int64_t> dims, bool keepdim) {
  if (t0.is_cuda())
    return cuda_reduce(kernels::cuda::Reduction::logsumexp, t0, std::move(dims), keepdim, "logsumexp");
  const Tensor t = half_to_f32(t0);
  Reduction r = prepare(t, std::move(dims), keepdim, "logsumexp");
  Tensor out = Tensor::empty(r.out_shape, t.dtype(), t.device());
  dispatch_float(t.dtype(), "logsumexp", [&]<class T>() {
    kernels::logsumexp_forward<T>(out.data<T>(), r.rows.data<T>(), r.outer, r.inner);
  });
  return to_dtype(out, t0.dtype());
}

namespace {
std::pair<Tensor, Tensor> arg_extreme(const Tensor& t0, int64_t dim, bool keepdim, bool is_max,
                                      const char* op) {
  if (t0.is_cuda()) {
    const Reduction r = prepare(t0, {wrap_dim(dim, t0.dim(), op)}, keepdim, op);
    ATTNLAB_CHECK(r.inner > 0, op, ": reduction over an empty dimension of ", describe(t0));
    return cuda_ops::arg_reduce_rows(is_max, r.rows, r.outer, r.inner, r.out_shape);
  }
  const Tensor t = half_to_f32(t0);
  Reduction r = prepare(t, {wrap_dim(dim, t.dim(), op)}, keepdim, op);
  ATTNLAB_CHECK(r.inner > 0, op, ": reduction over an empty dimension of ", describe(t0));
  Tensor idx = Tensor::empty(r.out_shape, DType::i64, t.device());
  Tensor val = Tensor::empty(r.out_shape, t.dtype(), t.device());
  dispatch_numeric(t.dtype(), op, [&]<class T>() {
    const T* in = r.rows.data<T>();
    int64_t* pi = idx.data<int64_t>();
    T* pv = val.data<T>();
    for (int64_t o = 0; o < r.outer; ++o) {
      const T* x = in + o * r.inner;
      int64_t best = 0;
      for (int64_t i = 1; i < r.inner; ++i) {
        if (x[best] != x[best]) break;  // NaN wins, first one
        if (x[i] != x[i] || (is_max ? x[i] > x[best] : x[i] < x[best])) best = i;
      }
      pi[o] = best;
      pv[o] = x[best];
    }
  });
  return {to_dtype(val, t0.dtype()), idx};
}
}  // namespace

std::pair<Tensor, Tensor> max(const Tensor& t, int64_t dim, bool keepdim) {
  return arg_extreme(t, dim, keepdim, true, "max");
}
std::pair<Tensor, Tensor> min(const Tensor& t, int64_t dim, bool keepdim) {
  return arg_extreme(t, dim, keepdim, false, "min");
}
Tensor argmax(const Tensor& t, int64_t dim, bool keepdim) { return max(t, dim, keepdim).second; }
Tensor argmin(const Tensor& t, int64_t dim, bool keepdim) { return min(t, dim, keepdim).second; }

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  const int64_t lead = t.dim() - int64_t(shape.size());
  ATTNLAB_CHECK(lead >= 0, "sum_to: cannot reduce ", describe(t), " to ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (i < lead) {
      dims.push_back(i);
    } else if (shape[size_t(i - lead)] == 1 && t.shape()[size_t(i)] != 1) {
      dims.push_back(i);
    } else {
      ATTNLAB_CHECK(shape[size_t(i - lead)] == t.shape()[size_t(i)], "sum_to: cannot reduce ",
                    describe(t), " to ", shape_str(shape));
    }
  }
  if (dims.empty()) return reshape(t, shape);
  return reshape(sum(t, dims, /*keepdim=*/true), shape);
}

// ---- softmax -------------------------------------------------------------------------------------
namespace {
// Runs a row kernel over `dim` of each input by moving dim last; returns output in the original layout.
template <class F>
Tensor along_dim(const std::vector<Tensor>& ins, int64_t dim, const char* op, F kernel) {
  const Tensor& t0 = ins[0];
  dim = wrap_dim(dim, t0.dim(), op);
  const bool last = dim == t0.dim() - 1 || t0.dim() == 0;
  std::vector<Tensor> rows;
  for (const auto& t : ins) rows.push_back(contiguous(last ? t : transpose(t, dim, -1)));
  const int64_t C = t0.dim() == 0 ? 1 : t0.shape()[size_t(dim)];
  const int64_t N = C ? t0.numel() / C : 0;
  for (const auto& t : ins) check_same_device(op, t0, t);
  Tensor out = Tensor::empty(rows[0].shape(), t0.dtype(), t0.device());
  kernel(out, rows, N, C);
  return last ? out : contiguous(transpose(out, dim, -1));
}
}  // namespace

Tensor softmax(const Tensor& t, int64_t dim) {
  if (t.is_cuda())
    return along_dim({t}, dim, "softmax", [&](Tensor& out, const std::vector<Tensor>& in, int64_t N, int64_t C) {
      cuda_ops::softmax_forward(false, out, in[0], N, C);
    });
  if (t.dtype() == DType::bf16 || t.dtype() == DType::f16)
    return to_dtype(softmax(to_dtype(t, DType::f32), dim), t.dtype());
  return along_dim({t}, dim, "softmax", [&](Tensor& out, const std::vector<Tensor>& in, int64_t N, int64_t C) {
    dispatch_float(t.dtype(), "softmax", [&]<class T>() {
      kernels::softmax_forward<T>(out.data<T>(), in[0].data<T>(), N, C);
    });
  });
}

Tensor log_softmax(const Tensor& t, int64_t dim) {
  if (t.is_cuda())
    return along_dim({t}, dim, "log_softmax", [&](Tensor& out, const std::vector<Tensor>& in, int64_t N, int64_t C) {
      cuda_ops::softmax_forward(true, out, in[0], N, C);
    });
  if (t.dtype() == DType::bf16 || t.dtype() == DType::f16)
    return to_dtype(log_softmax(to_dtype(t, DType::f32), dim), t.dtype());
  return along_dim({t}, dim, "log_softmax", [&](Tensor& out, const std::vector<Tensor>& in, int64_t N, int64_t C) {
    dispatch_float(t.dtype(), "log_softmax", [&]<class T>() {
      kernels::log_softmax_forward<T>(out.data<T>(), in[0].data<T>(), N, C);
    });
  });
}

Tensor softmax_backward(const Tensor& g, const Tensor& y, int64_t dim) {
  if (y.is_cuda() || g.is_cuda()) {
    ATTNLAB_CHECK(g.shape() == y.shape() && g.dtype() == y.dtype(), "softmax_backward", ": gradient ", describe(g),
                  " does not match output ", describe(y));
    return along_dim({y, g}, dim, "softmax_backward", [&](Tensor& out, const std::vector<Tensor>& in, int64_t N, int64_t C) {
      cuda_ops::softmax_backward(false, out, in[1], in[0], N, C);
    });
  }
  return along_dim({g, y}, dim, "softmax_backward", [&](Tensor& out, const std::vector<Tensor>& in, int64_t N, int64_t C) {
    dispatch_float(y.dtype(), "softmax_backward", [&]<class T>() {
      kernels::softmax_backward<T>(out.data<T>(), in[0].data<T>(), in[1].data<T>(), N, C);
    });
  });
}

Tensor log_softmax_backward(const Tensor& g, const Tensor& y, int64_t dim) {
  if (y.is_cuda() || g.is_cuda()) {
    ATTNLAB_CHECK(g.shape() == y.shape() && g.dtype() == y.dtype(), "log_softmax_backward", ": gradient ", describe(g),
                  " does not match output ", describe(y));
    return along_dim({y, g}, dim, "log_softmax_backward", [&](Tensor& out, const std::vector<Tensor>& in, int64_t N, int64_t C) {
      cuda_ops::softmax_backward(true, out, in[1], in[0], N, C);
    });
  }
  return along_dim({g, y}, dim, "log_softmax_backward", [&](Tensor& out, const std::vector<Tensor>& in, int64_t N, int64_t C) {
    dispatch_float(y.dtype(), "log_softmax_backward", [&]<class T>() {
      kernels::log_softmax_backward<T>(out.data<T>(), in[0].data<T>(), in[1].data<T>(), N, C);
    });
  });
}

}  // namespace attnlab::ops
