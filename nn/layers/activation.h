// Parameter-free activations as modules, so they can sit in a Sequential (their positions keep the
// PyTorch child indices, e.g. ff.0 Linear, ff.1 GELU, ff.3 Linear).
#pragma once
#include "nn/module.h"

namespace attnlab::nn {

// GELU: exact x * Phi(x), or the tanh approximation (PyTorch's approximate='tanh').
class GELU : public UnaryModule {
 public:
  explicit GELU(bool tanh_approx = false) : tanh_approx(tanh_approx) {}
  Tensor forward(const Tensor& x) override;
  bool tanh_approx;
};

class ReLU : public UnaryModule {
 public:
  Tensor forward(const Tensor& x) override;
};

class Tanh : public UnaryModule {
 public:
  Tensor forward(const Tensor& x) override;
};

class Sigmoid : public UnaryModule {
 public:
  Tensor forward(const Tensor& x) override;
};

}  // namespace attnlab::nn
