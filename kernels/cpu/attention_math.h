// Math-path attention on BLAS: the materialized baseline FlashAttention is measured against.
// It computes exactly what attention_reference.h computes (same masks, bias, dropout mask and
// fully-masked-row convention; see attention_params.h), but as PyTorch's math SDPA does: per
// (batch, head) the full score matrix through kernels::gemm, a row softmax over it, and GEMMs
// with V. Q, K and V are read in place through their row strides (packed QKV needs no copy);
// query head h reads KV head h / (H / Hkv).
//
// Forward, per (b, h), with P = probs[b, h] ([Sq, Sk], the materialized matrix):
//   P  = scale * Q_h K^T                  one GEMM, written straight into probs
//   P += bias; -inf where masked; P = row softmax (fully masked row: zeros, LSE = -inf)
//   O_h = (P * z) V                       z: dropout factors (dropout_keep), 1 without dropout
// Backward, per (b, KV head), its G = H / Hkv query heads in order (so dK/dV have one writer):
//   dV   += (P * z)^T dO_h
//   dP    = z * (dO_h V^T)
//   dS    = P * (dP - rowsum(P * dP))     (rowsum(P * dP)_i = <dO_i, O_i> = Delta_i)
//   dQ_h  = scale * dS K,   dK += scale * dS^T Q_h
// The backward reads the saved P instead of recomputing it: storing P is the point of this path.
//
// Threads: OpenMP over blocks of query rows (forward) and over KV groups, or chunks of a group when
// there are fewer groups than threads (backward); BLAS runs single-threaded inside each task (see
// attention_math.cpp for the measurements behind that choice). Every output element is summed in
// a fixed order: deterministic, with no races on dK/dV. The backward's chunking follows the thread
// count, so results may differ in the last bits between thread counts (flash's do not).
#pragma once
#include <cstdint>

#include "kernels/cpu/attention_params.h"

namespace attnlab::kernels {

// Scratch the forward needs, in elements of T: a block of the dropped-out probabilities P * z
// ([min(256, Sq), Sk] per thread) when dropout_p > 0, else 0. The caller allocates it (sdpa.cpp
// as a tracked tensor). Depends on the OpenMP thread count: query it right before the call.
template <class T>
int64_t attention_math_forward_workspace(const AttentionParams<T>& p);

// o:         [B, Sq, H, D]  contiguous, overwritten
// lse:       [B, H, Sq]     contiguous, overwritten (-inf for a fully masked row)
// probs:     [B, H, Sq, Sk] contiguous, overwritten with P (masked, before dropout); required
// workspace: workspace_size >= attention_math_forward_workspace(p) elements (null when that is 0)
template <class T>
void attention_math_forward(const AttentionParams<T>& p, T* o, T* lse, T* probs, T* workspace,
                            int64_t workspace_size);

// Scratch the backward needs, in elements of T: a block of dP / dS ([min(256, Sq), Sk]) per thread,
// plus partial dK/dV (2 Sk D per chunk) when a KV group is split over threads. Never Sq x Sk.
template <class T>
int64_t attention_math_backward_workspace(const AttentionParams<T>& p);

// probs: [B, H, Sq, Sk] P from attention_math_forward (or attention_reference_forward) with the
//        same params; read only
// dout:  [B, Sq, H, D] contiguous
// dq:    [B, Sq, H, D], dk, dv: [B, Sk, Hkv, D], contiguous, overwritten. No gradient for the bias.
// workspace: workspace_size >= attention_math_backward_workspace(p) elements
template <class T>
void attention_math_backward(const AttentionParams<T>& p, const T* probs, const T* dout, T* dq,
                             T* dk, T* dv, T* workspace, int64_t workspace_size);

}  // namespace attnlab::kernels
