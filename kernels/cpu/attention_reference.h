// Math-path attention: the readable oracle the FlashAttention kernels are tested against.
// It materializes the probabilities P [B, H, Sq, Sk] and loops plainly over them; see
// attention_params.h for shapes, masks, dropout and the fully-masked-row convention.
//
//   s_ij = scale * <q_i, k_j> + bias_ij   (-inf where masked)
//   P_ij = softmax_j(s_ij)                 (row of zeros when the whole row is masked)
//   O_i  = sum_j P_ij * z_ij * v_j         z_ij = dropout_keep(...) / (1 - p)
#pragma once
#include "kernels/cpu/attention_params.h"

namespace attnlab::kernels {

// o:     [B, Sq, H, D] contiguous, overwritten
// lse:   [B, H, Sq]    contiguous, overwritten (log of the softmax denominator; -inf if masked row)
// probs: [B, H, Sq, Sk] contiguous, overwritten with P after masking and before dropout; may be
//        null (the probabilities are then kept in a temporary of the same size).
template <class T>
void attention_reference_forward(const AttentionParams<T>& p, T* o, T* lse, T* probs = nullptr);

// Standard softmax backward; P is recomputed row by row (O and LSE are not used):
//   dP_ij = z_ij * <dO_i, v_j>
//   dS_ij = P_ij * (dP_ij - sum_k P_ik dP_ik)
//   dQ_i = scale * sum_j dS_ij k_j,  dK_j = scale * sum_i dS_ij q_i,  dV_j = sum_i P_ij z_ij dO_i
// dK and dV are summed over the H / Hkv query heads that share a KV head.
// dout: [B, Sq, H, D] contiguous.
// dq:   [B, Sq, H, D], dk, dv: [B, Sk, Hkv, D], contiguous, overwritten. No gradient for the bias.
template <class T>
void attention_reference_backward(const AttentionParams<T>& p, const T* dout, T* dq, T* dk, T* dv);

}  // namespace attnlab::kernels
