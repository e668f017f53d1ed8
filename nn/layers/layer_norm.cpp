#include "nn/layers/layer_norm.h"

#include "autograd/functions.h"
#include "kernels/cpu/layernorm.h"

namespace attnlab::nn {

LayerNorm::LayerNorm(int64_t c, double eps_, bool affine, DType dtype) : normalized_shape(c), eps(eps_) {
  ATTNLAB_CHECK(c > 0, "LayerNorm: normalized_shape must be positive, got ", c);
  if (affine) {
    weight = register_parameter("weight", ones({c}, dtype));
    bias = register_parameter("bias", zeros({c}, dtype));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  ATTNLAB_CHECK(x.dim() >= 1 && x.size(-1) == normalized_shape, "LayerNorm(", normalized_shape,
                "): input ", describe(x), " must end in ", normalized_shape);
  return layer_norm(x, weight, bias, eps);
}

void LayerNorm::forward_row(const float* x, float* y) const {
  for (const Tensor* p : {&weight, &bias})
    ATTNLAB_CHECK(!p->defined() || (p->dtype() == DType::f32 && p->device() == kCPU),
                  "LayerNorm::forward_row needs f32 CPU parameters, got ", describe(*p));
  float mean, rstd;
  kernels::layernorm_forward<float>(y, &mean, &rstd, x, weight.defined() ? weight.data<float>() : nullptr,
                                    bias.defined() ? bias.data<float>() : nullptr, 1, normalized_shape, eps);
}

}  // namespace attnlab::nn
