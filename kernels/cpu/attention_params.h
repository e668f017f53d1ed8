// Scaled dot-product attention: the argument block shared by the math reference
// (attention_reference.h) and the FlashAttention kernels (flash_attention.h), plus the
// counter-based dropout mask both of them use.
//
// Dimension letters:  B batch, Sq query length, Sk key length, H query heads,
//                     Hkv key/value heads (H % Hkv == 0), D head dim.
//
//   Q    [B, Sq, H,   D]   element strides (q_stride_b, q_stride_s, q_stride_h), D contiguous
//   K, V [B, Sk, Hkv, D]   element strides (k_stride_*, v_stride_*), D contiguous
//   O    [B, Sq, H,   D]   contiguous (written by the kernels)
//   LSE  [B, H,  Sq]       contiguous, LSE = log sum_j exp(s_ij) per query row
//
// The strided inputs are what a Linear projection gives when viewed as [B, S, H, D]:
// a packed QKV buffer [B, S, 3, H, D] is passed as three pointers with q_stride_s = 3*H*D.
//
// Query head h reads KV head h / (H / Hkv) (grouped-query attention); nothing is repeated.
//
// The score of query i and key j is
//     s_ij = scale * <q_i, k_j> + bias(b, h, i, j)     (bias optional)
// and it is -inf (masked) when
//     causal and j > i + (Sk - Sq)      (bottom-right alignment, as flash-attention: the last
//                                        query sees every key; with Sq > Sk the first Sq - Sk
//                                        queries see nothing)
//     window > 0 and j <= i + (Sk - Sq) - window
//                                       (causal sliding window, Mistral's: query i sees the
//                                        `window` keys ending at its own position; needs causal)
//     key_padding_mask[b, j] != 0       (PyTorch key_padding_mask convention: nonzero = ignore)
// A query row whose every score is -inf gets O = 0, LSE = -inf and zero gradients
// (flash-attention's convention; PyTorch's math path returns NaN there).
//
// The additive bias is an input, not a parameter: no gradient flows to it. Its strides may be 0
// to broadcast, e.g. a [Sq, Sk] 0/-inf mask has (0, 0, Sk, 1), a [B, 1, 1, Sk] bias (Sk, 0, 0, 1).
//
// Dropout on the attention probabilities: P_ij is kept with probability 1 - p and then scaled by
// 1 / (1 - p). Whether (b, h, i, j) is kept is a pure function of (seed, b, h, i, j)
// (dropout_keep, kernels/cpu/dropout_mask.h), so backward regenerates the mask instead of storing it.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/cpu/dropout_mask.h"

namespace attnlab::kernels {

template <class T>
struct AttentionParams {
  int64_t B = 0, Sq = 0, Sk = 0, H = 0, Hkv = 0, D = 0;
  const T* q = nullptr;  // [B, Sq, H, D]
  int64_t q_stride_b = 0, q_stride_s = 0, q_stride_h = 0;
  const T* k = nullptr;  // [B, Sk, Hkv, D]
  int64_t k_stride_b = 0, k_stride_s = 0, k_stride_h = 0;
  const T* v = nullptr;  // [B, Sk, Hkv, D]
  int64_t v_stride_b = 0, v_stride_s = 0, v_stride_h = 0;
  T scale = 0;                                // usually 1 / sqrt(D)
  bool causal = false;                        // bottom-right aligned, see above
  int64_t window = 0;                         // > 0: causal sliding window of that many keys
  const uint8_t* key_padding_mask = nullptr;  // [B, Sk], nonzero = masked out; may be null
  const T* bias = nullptr;                    // additive, logical [B, H, Sq, Sk]; may be null
  int64_t bias_stride_b = 0, bias_stride_h = 0, bias_stride_q = 0, bias_stride_k = 0;
  double dropout_p = 0;       // in [0, 1)
  uint64_t dropout_seed = 0;  // the same seed must be given to forward and backward
};

// Params for contiguous Q [B, Sq, H, D], K/V [B, Sk, Hkv, D], scale = 1/sqrt(D), no masks.
template <class T>
AttentionParams<T> attention_params(int64_t B, int64_t Sq, int64_t Sk, int64_t H, int64_t Hkv,
                                    int64_t D, const T* q, const T* k, const T* v) {
  AttentionParams<T> p;
  p.B = B, p.Sq = Sq, p.Sk = Sk, p.H = H, p.Hkv = Hkv, p.D = D;
  p.q = q, p.q_stride_b = Sq * H * D, p.q_stride_s = H * D, p.q_stride_h = D;
  p.k = k, p.k_stride_b = Sk * Hkv * D, p.k_stride_s = Hkv * D, p.k_stride_h = D;
  p.v = v, p.v_stride_b = Sk * Hkv * D, p.v_stride_s = Hkv * D, p.v_stride_h = D;
  p.scale = D > 0 ? T(1) / std::sqrt(T(D)) : T(0);
  return p;
}

// Throws attnlab::Error (message prefixed by `op`) on bad shapes, null pointers, H % Hkv != 0,
// dropout_p outside [0, 1), a non-finite scale, a negative window or a window without causal.
template <class T>
void check_attention_params(const AttentionParams<T>& p, const char* op);

// row[c] += bias(b, h, i, j0 + c) for c < n, through the bias strides; nothing without a bias.
// Shared by the math and flash kernels' score rows.
template <class T>
void add_bias_row(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t i, int64_t j0,
                  int64_t n, T* row) {
  if (!p.bias) return;
  const T* brow = p.bias + b * p.bias_stride_b + h * p.bias_stride_h + i * p.bias_stride_q +
                  j0 * p.bias_stride_k;
  const int64_t sk = p.bias_stride_k;
  if (sk == 1) {
#pragma omp simd
    for (int64_t c = 0; c < n; ++c) row[c] += brow[c];
  } else {
    for (int64_t c = 0; c < n; ++c) row[c] += brow[c * sk];
  }
}

// The key range [begin, end) query i may see under the causal and window masks (padding and bias
// aside): end = i + (Sk - Sq) + 1 under causal, begin = end - window with a window; clamped to
// [0, Sk], and begin <= end. Shared by every kernel of the family so the masks agree exactly.
template <class T>
int64_t visible_begin(const AttentionParams<T>& p, int64_t i) {
  if (p.window <= 0) return 0;
  const int64_t b = i + (p.Sk - p.Sq) + 1 - p.window;
  return b < 0 ? 0 : (b > p.Sk ? p.Sk : b);
}
template <class T>
int64_t visible_end(const AttentionParams<T>& p, int64_t i) {
  if (!p.causal) return p.Sk;
  const int64_t e = i + (p.Sk - p.Sq) + 1;
  return e < 0 ? 0 : (e > p.Sk ? p.Sk : e);
}

}  // namespace attnlab::kernels
