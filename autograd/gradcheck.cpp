#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/functions.h"

namespace attnlab {

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, double eps, double atol, double rtol) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    ATTNLAB_CHECK(x.dtype() == DType::f64, "gradcheck: input ", i, " is ", describe(x), "; use f64");
    for (int64_t d = 0; d < x.dim(); ++d)
      ATTNLAB_CHECK(x.strides()[size_t(d)] != 0 || x.shape()[size_t(d)] <= 1, "gradcheck: input ", i,
                    " has an expanded (stride 0) dim; pass a materialized tensor");
  }
  for (const auto& x : inputs) x.set_grad(Tensor());

  // Analytic: L = sum(f(x) * w)
  const Tensor out0 = f(inputs);
  Generator gen(1234);
  const Tensor w = uniform(out0.shape(), 0.5, 1.5, DType::f64, &gen);
  backward(sum(mul(out0, w)));

  auto loss = [&]() {
    NoGradGuard ng;
    return sum(mul(f(inputs), w)).item<double>();
  };

  GradcheckResult r;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    const Tensor g = x.grad();
    const std::vector<double> analytic = g.defined() ? g.to_vector<double>() : std::vector<double>(size_t(x.numel()), 0.0);
    // Walk the logical elements of x and perturb each through its storage offset.
    double* base = static_cast<double*>(x.storage()->data());
    std::vector<int64_t> idx(size_t(x.dim()), 0);
    for (int64_t k = 0; k < x.numel(); ++k) {
      int64_t off = x.offset();
      for (int64_t d = 0; d < x.dim(); ++d) off += idx[size_t(d)] * x.strides()[size_t(d)];
      const double orig = base[off];
      base[off] = orig + eps;
      const double lp = loss();
      base[off] = orig - eps;
      const double lm = loss();
      base[off] = orig;
      const double numeric = (lp - lm) / (2 * eps);
      const double a = analytic[size_t(k)];
      const double err = std::abs(a - numeric);
      r.max_abs_err = std::max(r.max_abs_err, err);
      if (r.ok && !(err <= atol + rtol * std::abs(numeric))) {
        r.ok = false;
        r.message = cat("input ", i, " ", describe(x), " element ", k, ": analytic ", a, " vs numeric ", numeric);
      }
      for (int64_t d = x.dim() - 1; d >= 0; --d) {
        if (++idx[size_t(d)] < x.shape()[size_t(d)]) break;
        idx[size_t(d)] = 0;
      }
    }
  }
  return r;
}

}  // namespace attnlab
