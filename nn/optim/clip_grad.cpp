#include "nn/optim/clip_grad.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/graph.h"
#include "tensor/ops.h"

namespace attnlab::optim {

namespace {

// Sum of |x|^p, or max |x| when p is inf, over a contiguous buffer, accumulated in double.
template <class T>
double accumulate(const T* x, int64_t n, double p) {
  double acc = 0;
  if (std::isinf(p)) {
    for (int64_t i = 0; i < n; ++i) {
      const double a = std::abs(double(x[i]));
      if (std::isnan(a)) return a;  // max must not swallow a NaN
      acc = std::max(acc, a);
    }
  } else if (p == 2.0) {
    for (int64_t i = 0; i < n; ++i) acc += double(x[i]) * double(x[i]);
  } else if (p == 1.0) {
    for (int64_t i = 0; i < n; ++i) acc += std::abs(double(x[i]));
  } else {
    for (int64_t i = 0; i < n; ++i) acc += std::pow(std::abs(double(x[i])), p);
  }
  return acc;
}

// The p-norm of one gradient.
double tensor_norm(const Tensor& g_in, double p) {
  ATTNLAB_CHECK(g_in.dtype() == DType::f32 || g_in.dtype() == DType::f64,
                "clip_grad_norm_: gradients must be f32 or f64, got ", describe(g_in));
  const Tensor g = ops::contiguous(g_in);
  const double acc = g.dtype() == DType::f64 ? accumulate(g.data<double>(), g.numel(), p)
                                             : accumulate(g.data<float>(), g.numel(), p);
  if (std::isinf(p) || std::isnan(acc)) return acc;
  return p == 2.0 ? std::sqrt(acc) : p == 1.0 ? acc : std::pow(acc, 1.0 / p);
}

}  // namespace

std::vector<Tensor> grads_of(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  out.reserve(params.size());
  for (const auto& p : params) out.push_back(p.defined() ? p.grad() : Tensor());
  return out;
}

double grad_norm(const std::vector<Tensor>& params, double norm_type) {
  ATTNLAB_CHECK(norm_type > 0, "clip_grad_norm_: norm_type must be > 0 or inf, got ", norm_type);
  const bool inf = std::isinf(norm_type);
  double total = 0;
  for (const Tensor& g : grads_of(params)) {
    if (!g.defined()) continue;
    const double n = tensor_norm(g, norm_type);
    if (std::isnan(n)) return n;
    if (inf) total = std::max(total, n);
    else if (norm_type == 2.0) total += n * n;
    else total += std::pow(n, norm_type);
  }
  if (inf) return total;
  return norm_type == 2.0 ? std::sqrt(total) : std::pow(total, 1.0 / norm_type);
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  ATTNLAB_CHECK(max_norm >= 0, "clip_grad_norm_: max_norm must be >= 0, got ", max_norm);
  const double total = grad_norm(params, norm_type);
  if (!std::isfinite(total)) {
    ATTNLAB_CHECK(!error_if_nonfinite, "clip_grad_norm_: the total norm of order ", norm_type,
                  " of the gradients is non-finite (", total,
                  "): a gradient holds NaN/inf or overflowed; skip this optimizer step");
    return total;
  }
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0) {
    NoGradGuard no_grad;
    for (const Tensor& g : grads_of(params))
      if (g.defined()) ops::mul_(g, coef);
  }
  return total;
}

bool all_finite(const std::vector<Tensor>& tensors) {
  for (const Tensor& t_in : tensors) {
    if (!t_in.defined() || !is_floating(t_in.dtype())) continue;
    // bf16/f16 are checked through a f32 copy; f32/f64 in place.
    Tensor t = t_in.dtype() == DType::f32 || t_in.dtype() == DType::f64
                   ? ops::contiguous(t_in)
                   : ops::to_dtype(t_in, DType::f32);
    const int64_t n = t.numel();
    if (t.dtype() == DType::f64) {
      const double* x = t.data<double>();
      for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(x[i])) return false;
    } else {
      const float* x = t.data<float>();
      for (int64_t i = 0; i < n; ++i)
        if (!std::isfinite(x[i])) return false;
    }
  }
  return true;
}

}  // namespace attnlab::optim
