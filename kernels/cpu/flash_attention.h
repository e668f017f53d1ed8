// FlashAttention-2 on the CPU: exact attention without ever storing the Sq x Sk score matrix.
// Shapes, strides, masks, bias and dropout are described in attention_params.h; the maths is
// derived step by step in docs/flash_attention.md. attention_reference.h is the oracle.
//
// Forward (flash_attention_forward): for each (b, h, block of BR queries), stream over blocks of
// BC keys with the online softmax (running max m, running sum l, rescaled O accumulator), then
// write O = acc / l and LSE = m + log l. Only O and LSE are stored.
//
// Backward (flash_attention_backward): recomputes each P tile from Q, K and the saved LSE,
//   P = exp(s - LSE),  dP = z * (dO V^T),  dS = P * (dP - Delta),  Delta_i = <dO_i, O_i>,
// and accumulates dV += (P z)^T dO, dK += scale dS^T Q, dQ += scale dS K.
//
// Threads: OpenMP over independent tiles; every output element is produced by one task in a
// fixed order, so results are bitwise identical for any thread count. T is float (float
// accumulators) or double (double accumulators).
#pragma once
#include "kernels/cpu/attention_params.h"

namespace attnlab::kernels {

// o:   [B, Sq, H, D] contiguous, overwritten
// lse: [B, H, Sq]    contiguous, overwritten (-inf for a fully masked row, whose O row is 0)
template <class T>
void flash_attention_forward(const AttentionParams<T>& p, T* o, T* lse);

// o, dout: [B, Sq, H, D] contiguous (O from the forward call, dL/dO)
// lse:     [B, H, Sq] from the forward call with the same params (masks, dropout seed)
// dq:      [B, Sq, H, D] contiguous, overwritten
// dk, dv:  [B, Sk, Hkv, D] contiguous, overwritten; summed over the H / Hkv query heads of a group
// No gradient is produced for the additive bias.
template <class T>
void flash_attention_backward(const AttentionParams<T>& p, const T* o, const T* dout, const T* lse,
                              T* dq, T* dk, T* dv);

// Bytes these kernels allocate internally (std::vector scratch, which the tensor memory tracker
// does not see) for params p at the current OpenMP thread count: per-thread tiles, plus in
// backward the Delta rows and, in the fused schedule, the per-thread dQ accumulators. O(S D), never
// Sq x Sk. For benchmarks, so flash's memory is reported whole.
template <class T>
int64_t flash_attention_scratch_bytes(const AttentionParams<T>& p, bool backward);

}  // namespace attnlab::kernels
