// Internal to nn/attention: the CUDA branch of scaled_dot_product_attention (sdpa.h), taken when q is a
// CUDA tensor. FlashAttention-2 forward/backward (kernels/cuda/attention.h) for f32, bf16 and f16 (f32
// accumulation; bf16/f16 with D 64 or 128 on tensor cores), causal masking, key padding masks and
// additive biases (on q's device; served by the SIMT kernels), attention dropout (the CPU's
// counter-based mask, regenerated in the backward), return_weights with the math or reference
// backend (a separate kernel writes P from the LSE). The backend option picks the kernels' variant:
// reference -> the plain kernels, math/flash -> the tiled ones. lse comes back f32 whatever the dtype.
#pragma once
#include "nn/attention/sdpa.h"

namespace attnlab::nn {

AttentionResult scaled_dot_product_attention_cuda(const Tensor& q, const Tensor& k, const Tensor& v,
                                                  const AttentionOptions& opt);

}  // namespace attnlab::nn
