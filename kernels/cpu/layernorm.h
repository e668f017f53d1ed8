// LayerNorm over the last dim of a contiguous [N, C] array (llm.c's layout and naming).
//   out = (inp - mean) * rstd * weight + bias,   rstd = 1 / sqrt(var + eps), var biased (÷C).
// Forward saves exactly what backward needs: mean[N] and rstd[N]. weight/bias may be null
// (no elementwise affine). Backward ACCUMULATES (+=) into dinp, dweight, dbias (each may be null).
#pragma once
#include <cstdint>

namespace attnlab::kernels {

// Optimized: one pass per row for the moments (Welford-free: sum and sum of squares in a wider type
// for f32 inputs, double), OpenMP over rows.
template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                       int64_t N, int64_t C, double eps);
template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const T* mean, const T* rstd, int64_t N, int64_t C);

// Plain references: two-pass moments, serial loops, written to be read. Tested against the above.
template <class T>
void layernorm_forward_reference(T* out, T* mean, T* rstd, const T* inp, const T* weight,
                                 const T* bias, int64_t N, int64_t C, double eps);
template <class T>
void layernorm_backward_reference(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp,
                                  const T* weight, const T* mean, const T* rstd, int64_t N, int64_t C);

}  // namespace attnlab::kernels
