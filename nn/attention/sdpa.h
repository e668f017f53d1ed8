// Scaled dot-product attention as one autograd op, with two backends behind one call.
//
//   q: [B, Sq, H, D]    k, v: [B, Sk, Hkv, D]    (H % Hkv == 0; query head h reads KV head h / (H/Hkv))
//   out: [B, Sq, H, D]
//
// The [B, S, H, D] layout is what a Linear projection gives viewed per head, so no transposes are
// needed; inputs may be strided views as long as D is contiguous.
//
// Backends:
//   math      — the materialized path of PyTorch's math SDPA, on BLAS (kernels/cpu/attention_math.h):
//               scores by GEMM, a row softmax into P [B, H, Sq, Sk] (a tracked tensor), GEMMs with V.
//               P is saved for the backward (softmax backward by GEMMs, no recomputation). The
//               honest materialized baseline flash is benchmarked against; can return the weights.
//   flash     — tiled with the online softmax: stores only out and the row logsumexp [B, H, Sq]; the
//               backward recomputes P tile by tile (kernels/cpu/flash_attention.h, docs/flash_attention.md).
//   reference — the readable scalar loops (kernels/cpu/attention_reference.h), the oracle the other
//               two are tested against; materializes P too (can return the weights), its backward
//               recomputes P row by row. Slow: for tests and small benchmarks.
// All share masks and the counter-based dropout (kernels/cpu/attention_params.h), so with the same
// seed they compute the same function.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace attnlab::nn {

enum class AttentionBackend { math, flash, reference };

struct AttentionOptions {
  bool causal = false;     // bottom-right aligned when Sq != Sk (query i sees keys j <= i + Sk - Sq)
  int64_t window = 0;      // > 0 (needs causal): sliding window, query i also sees only keys (CUDA: as a banded bias)
                           // j > i + Sk - Sq - window (Mistral); flash skips the key tiles outside it
  Tensor key_padding_mask; // u8 [B, Sk], nonzero = ignore that key (PyTorch convention); optional
  Tensor attn_bias;        // additive float bias broadcastable to [B, H, Sq, Sk] (0/-inf for boolean
                           // masks); not differentiated; optional
  double dropout_p = 0.0;  // on the probabilities; pass 0 in eval
  uint64_t dropout_seed = 0;
  double scale = 0.0;      // 0 means 1/sqrt(D)
  AttentionBackend backend = AttentionBackend::flash;
  bool return_weights = false;  // math or reference backend
};

struct AttentionResult {
  Tensor out;      // [B, Sq, H, D]
  Tensor weights;  // [B, H, Sq, Sk] (masked, before dropout) when return_weights, else undefined.
                   // The math backward reads this same tensor: modifying it in place before
                   // backward makes backward throw (clone it first).
  Tensor lse;      // [B, H, Sq] row logsumexp (-inf for a fully masked row), every backend
};

AttentionResult scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionOptions& opt = {});

// A boolean mask (u8, nonzero = may attend) broadcastable to [B, H, Sq, Sk] -> additive 0/-inf bias.
Tensor mask_to_bias(const Tensor& allowed, DType dtype);

}  // namespace attnlab::nn
