// LayerNorm over the last dim: x [..., C] -> (x - mean) / sqrt(var + eps) * weight + bias, with the
// biased variance, as torch.nn.LayerNorm(C). Uses the fused attnlab::layer_norm op (which saves mean
// and rstd for backward). weight [C] starts at ones, bias [C] at zeros.
#pragma once
#include "nn/module.h"

namespace attnlab::nn {

class LayerNorm : public UnaryModule {
 public:
  explicit LayerNorm(int64_t normalized_shape, double eps = 1e-5, bool elementwise_affine = true,
                     DType dtype = DType::f32);
  Tensor forward(const Tensor& x) override;
  // One contiguous f32 row x[C] -> y[C] without tensors (the fused decode path); f32 CPU parameters.
  void forward_row(const float* x, float* y) const;

  int64_t normalized_shape;
  double eps;
  Tensor weight;  // [C], undefined without elementwise_affine
  Tensor bias;    // [C]
};

}  // namespace attnlab::nn
