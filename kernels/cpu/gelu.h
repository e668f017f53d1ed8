// GELU, elementwise over a contiguous array of n values.
//   exact: gelu(x) = x * Φ(x) = 0.5 x (1 + erf(x / √2))
//   tanh : gelu(x) ≈ 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))   (PyTorch approximate='tanh')
// Backward ACCUMULATES: dinp += dout * gelu'(inp).
#pragma once
#include <cstdint>

namespace attnlab::kernels {

enum class GeluApprox { none, tanh };

template <class T> void gelu_forward(T* out, const T* inp, int64_t n, GeluApprox approx);
template <class T>
void gelu_backward(T* dinp, const T* inp, const T* dout, int64_t n, GeluApprox approx);

}  // namespace attnlab::kernels
