// Row-wise softmax / log-softmax over the last dim of a contiguous [N, C] array.
// Forward saves nothing extra: the output itself is what backward needs.
#pragma once
#include <cstdint>

namespace attnlab::kernels {

// out[n, :] = softmax(inp[n, :]); rows that are all -inf give all-NaN, as PyTorch.
template <class T> void softmax_forward(T* out, const T* inp, int64_t N, int64_t C);
// dinp = out * (dout - sum(dout * out))       (overwrites dinp)
template <class T> void softmax_backward(T* dinp, const T* dout, const T* out, int64_t N, int64_t C);
template <class T> void log_softmax_forward(T* out, const T* inp, int64_t N, int64_t C);
// dinp = dout - exp(out) * sum(dout)          (overwrites dinp)
template <class T> void log_softmax_backward(T* dinp, const T* dout, const T* out, int64_t N, int64_t C);
// lse[n] = log(sum(exp(inp[n, :])))
template <class T> void logsumexp_forward(T* lse, const T* inp, int64_t N, int64_t C);

}  // namespace attnlab::kernels
