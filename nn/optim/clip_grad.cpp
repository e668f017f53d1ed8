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

// sum |g|^p (max |g| for p = inf) of a gradient off the CPU, as a 0-dim f32 tensor on its device.
Tensor device_norm_term(const Tensor& g_in, double p) {
  using ops::UnaryOp;
  const Tensor g = ops::to_dtype(g_in, DType::f32);
  if (p == 2.0) return ops::sum(ops::unary(UnaryOp::square, g));  // x² = |x|²: no abs pass (the usual case)
  const Tensor a = ops::unary(UnaryOp::abs, g);
  if (std::isinf(p)) return ops::amax(a);
  if (p == 1.0) return ops::sum(a);
  return ops::sum(ops::binary_scalar(ops::BinaryOp::pow, a, p));
}

// The total norm of gradients off the CPU: per-tensor terms stay on the device and are combined there,
// so the whole norm costs one copy to the host (not one per parameter).
double device_grad_norm(const std::vector<Tensor>& grads, double p) {
  std::vector<Tensor> terms;
  bool any_nan = false;
  for (const Tensor& g : grads)
    if (g.defined()) terms.push_back(device_norm_term(g, p));
  if (terms.empty()) return 0.0;
  const Tensor all = ops::stack(terms, 0);
  const double total = std::isinf(p) ? ops::amax(all).item<double>() : ops::sum(all).item<double>();
  // max() may drop a NaN; the sum of g * 0 is NaN exactly when some element is inf or NaN.
  if (std::isinf(p)) {
    std::vector<Tensor> z;
    for (const Tensor& g : grads)
      if (g.defined()) z.push_back(ops::sum(ops::binary_scalar(ops::BinaryOp::mul, ops::to_dtype(g, DType::f32), 0.0)));
    any_nan = std::isnan(ops::sum(ops::stack(z, 0)).item<double>());
  }
  if (any_nan || std::isnan(total)) return std::nan("");
  if (std::isinf(p)) return total;
  return p == 2.0 ? std::sqrt(total) : p == 1.0 ? total : std::pow(total, 1.0 / p);
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
  const std::vector<Tensor> grads = grads_of(params);
  for (const Tensor& g : grads)
    if (g.defined() && g.device() != kCPU) {
      ATTNLAB_CHECK(std::all_of(grads.begin(), grads.end(),
                                [&](const Tensor& o) { return !o.defined() || o.device() == g.device(); }),
                    "clip_grad_norm_: gradients on different devices (", g.device().str(), " and others)");
      return device_grad_norm(grads, norm_type);
    }
  double total = 0;
  for (const Tensor& g : grads) {
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
  // Off the CPU: sum(t * 0) is NaN exactly when t holds an inf or NaN; one host copy for them all.
  std::vector<Tensor> device_terms;
  for (const Tensor& t : tensors)
    if (t.defined() && is_floating(t.dtype()) && t.device() != kCPU)
      device_terms.push_back(ops::sum(ops::binary_scalar(ops::BinaryOp::mul, ops::to_dtype(t, DType::f32), 0.0)));
  if (!device_terms.empty() && !std::isfinite(ops::sum(ops::stack(device_terms, 0)).item<double>())) return false;
  for (const Tensor& t_in : tensors) {
    if (!t_in.defined() || !is_floating(t_in.dtype()) || t_in.device() != kCPU) continue;
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
