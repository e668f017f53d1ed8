// The one finite-difference gradient checker (torch.autograd.gradcheck's role), used by every
// differentiable op's test.
//
// For inputs x_i (f64 leaves requiring grad, possibly non-contiguous views) and a function f, it takes
// L = sum(f(x) * w) with a fixed random w (so every output element matters with a different weight),
// computes dL/dx by backward, and compares each element with the central difference
// (L(x + eps) - L(x - eps)) / (2 eps). Inputs with stride-0 (expanded) dims are rejected: one storage
// element would stand for many logical ones.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace attnlab {

struct GradcheckResult {
  bool ok = true;
  double max_abs_err = 0;
  std::string message;  // the first mismatch: input, element, analytic vs numeric
};

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, double eps = 1e-6, double atol = 1e-6,
                          double rtol = 1e-5);

}  // namespace attnlab
