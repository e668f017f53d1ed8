// Stateless building blocks shared by the layers (torch.nn.functional's role). All differentiable.
#pragma once
#include "tensor/creation.h"
#include "tensor/tensor.h"

namespace attnlab::nn::functional {

// x [..., in], w [out, in], b [out] or undefined -> [..., out] = x wᵀ + b (PyTorch's weight layout).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

// Inverted dropout: each element is kept with probability 1 - p and scaled by 1 / (1 - p), so the
// expectation is unchanged and eval needs no rescaling. Identity when !training or p == 0; zeros when
// p == 1. The mask is drawn from `gen` (uniform < 1 - p), one draw per element in row-major order.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

// weight [N, C], index i64/i32 of any shape [...] -> [..., C]. The gradient reaches weight through
// index_select's backward (rows hit several times accumulate).
Tensor embedding(const Tensor& weight, const Tensor& index);

}  // namespace attnlab::nn::functional
