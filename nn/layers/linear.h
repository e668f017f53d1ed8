// Linear: y = x Wᵀ + b, x [..., in] -> [..., out], weight [out, in] and bias [out] as in PyTorch.
// Init as torch.nn.Linear: weight kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), bias the
// same bound.
#pragma once
#include "nn/module.h"
#include "tensor/creation.h"

namespace attnlab::nn {

class Linear : public UnaryModule {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) override;
  // Draws fresh weights as the constructor does (from `gen`, or the default generator).
  void reset_parameters(Generator* gen = nullptr);

  int64_t in_features, out_features;
  Tensor weight;  // [out, in]
  Tensor bias;    // [out], undefined without bias
};

}  // namespace attnlab::nn
