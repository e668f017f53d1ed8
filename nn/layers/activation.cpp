#include "nn/layers/activation.h"

#include "autograd/functions.h"

namespace attnlab::nn {

Tensor GELU::forward(const Tensor& x) { return gelu(x, tanh_approx); }
Tensor ReLU::forward(const Tensor& x) { return relu(x); }
Tensor Tanh::forward(const Tensor& x) { return tanh(x); }
Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }

}  // namespace attnlab::nn
