#include "kernels/cpu/attention_reference.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "kernels/error.h"

namespace attnlab::kernels {
namespace {

template <class T>
const T* q_row(const AttentionParams<T>& p, int64_t b, int64_t i, int64_t h) {
  return p.q + b * p.q_stride_b + i * p.q_stride_s + h * p.q_stride_h;
}
template <class T>
const T* k_row(const AttentionParams<T>& p, int64_t b, int64_t j, int64_t kvh) {
  return p.k + b * p.k_stride_b + j * p.k_stride_s + kvh * p.k_stride_h;
}
template <class T>
const T* v_row(const AttentionParams<T>& p, int64_t b, int64_t j, int64_t kvh) {
  return p.v + b * p.v_stride_b + j * p.v_stride_s + kvh * p.v_stride_h;
}

// Dropout factor z_ij: 0 when dropped, 1 / (1 - p) when kept (1 without dropout).
template <class T>
T dropout_factor(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (p.dropout_p == 0) return T(1);
  return dropout_keep(p.dropout_seed, b, h, i, j, p.dropout_p) ? T(1 / (1 - p.dropout_p)) : T(0);
}

// Fills row [Sk] with the probabilities of query (b, h, i) and returns the row's logsumexp.
template <class T>
T probability_row(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t i, T* row) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const int64_t kvh = h / (p.H / p.Hkv);
  const T* q = q_row(p, b, i, h);
  for (int64_t j = 0; j < p.Sk; ++j) {
    const bool masked = (p.causal && j > i + (p.Sk - p.Sq)) ||
                        (p.window > 0 && j <= i + (p.Sk - p.Sq) - p.window) ||
                        (p.key_padding_mask && p.key_padding_mask[b * p.Sk + j]);
    if (masked) {
      row[j] = neg_inf;
      continue;
    }
    const T* k = k_row(p, b, j, kvh);
    T dot = 0;
    for (int64_t d = 0; d < p.D; ++d) dot += q[d] * k[d];
    row[j] = p.scale * dot;
    if (p.bias) {
      row[j] += p.bias[b * p.bias_stride_b + h * p.bias_stride_h + i * p.bias_stride_q +
                       j * p.bias_stride_k];
    }
  }
  T m = neg_inf;
  for (int64_t j = 0; j < p.Sk; ++j) m = std::max(m, row[j]);
  if (m == neg_inf) {  // every key masked: P = 0, LSE = -inf (flash-attention convention)
    std::fill(row, row + p.Sk, T(0));
    return neg_inf;
  }
  T sum = 0;
  for (int64_t j = 0; j < p.Sk; ++j) {
    row[j] = std::exp(row[j] - m);
    sum += row[j];
  }
  for (int64_t j = 0; j < p.Sk; ++j) row[j] /= sum;
  return m + std::log(sum);
}

}  // namespace

template <class T>
void attention_reference_forward(const AttentionParams<T>& p, T* o, T* lse, T* probs) {
  check_attention_params(p, "attention_reference_forward");
  ATTNLAB_CHECK(o && lse, "attention_reference_forward: O and LSE pointers must not be null");
  const int64_t B = p.B, Sq = p.Sq, Sk = p.Sk, H = p.H, D = p.D;
  std::vector<T> scratch;
  if (!probs) {
    scratch.resize(size_t(B * H * Sq * Sk));
    probs = scratch.data();
  }
  const bool big = B * H * Sq * Sk * D > (int64_t(1) << 18);  // threads only pay off when large
#pragma omp parallel for schedule(static) if (big)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H, kvh = h / (H / p.Hkv);
    for (int64_t i = 0; i < Sq; ++i) {
      T* row = probs + (bh * Sq + i) * Sk;
      lse[bh * Sq + i] = probability_row(p, b, h, i, row);
      T* out = o + ((b * Sq + i) * H + h) * D;
      std::fill(out, out + D, T(0));
      for (int64_t j = 0; j < Sk; ++j) {
        const T w = row[j] * dropout_factor(p, b, h, i, j);
        if (w == 0) continue;
        const T* v = v_row(p, b, j, kvh);
        for (int64_t d = 0; d < D; ++d) out[d] += w * v[d];
      }
    }
  }
}

template <class T>
void attention_reference_backward(const AttentionParams<T>& p, const T* dout, T* dq, T* dk,
                                  T* dv) {
  check_attention_params(p, "attention_reference_backward");
  ATTNLAB_CHECK(dout && dq && dk && dv,
                "attention_reference_backward: dO, dQ, dK and dV pointers must not be null");
  const int64_t B = p.B, Sq = p.Sq, Sk = p.Sk, H = p.H, Hkv = p.Hkv, D = p.D, G = H / Hkv;
  std::fill(dk, dk + B * Sk * Hkv * D, T(0));
  std::fill(dv, dv + B * Sk * Hkv * D, T(0));
  // One task per (b, KV head): it owns dK/dV of that head and dQ of the G query heads that read
  // it, so the += below never race.
  const bool big = B * H * Sq * Sk * D > (int64_t(1) << 18);
#pragma omp parallel for schedule(static) if (big)
  for (int64_t bg = 0; bg < B * Hkv; ++bg) {
    const int64_t b = bg / Hkv, kvh = bg % Hkv;
    std::vector<T> P(static_cast<size_t>(Sk)), dp(static_cast<size_t>(Sk));  // one row of P, dP
    for (int64_t h = kvh * G; h < (kvh + 1) * G; ++h) {
      for (int64_t i = 0; i < Sq; ++i) {
        probability_row(p, b, h, i, P.data());
        const T* g = dout + ((b * Sq + i) * H + h) * D;
        T rowdot = 0;  // sum_j P_ij dP_ij
        for (int64_t j = 0; j < Sk; ++j) {
          const T* v = v_row(p, b, j, kvh);
          T dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += g[d] * v[d];
          dp[j] = dot * dropout_factor(p, b, h, i, j);
          rowdot += P[j] * dp[j];
        }
        const T* q = q_row(p, b, i, h);
        T* gq = dq + ((b * Sq + i) * H + h) * D;
        std::fill(gq, gq + D, T(0));
        for (int64_t j = 0; j < Sk; ++j) {
          const T ds = P[j] * (dp[j] - rowdot) * p.scale;  // dL/d(q.k) including the scale
          const T pz = P[j] * dropout_factor(p, b, h, i, j);
          const T* k = k_row(p, b, j, kvh);
          T* gk = dk + ((b * Sk + j) * Hkv + kvh) * D;
          T* gv = dv + ((b * Sk + j) * Hkv + kvh) * D;
          for (int64_t d = 0; d < D; ++d) {
            gq[d] += ds * k[d];
            gk[d] += ds * q[d];
            gv[d] += pz * g[d];
          }
        }
      }
    }
  }
}

template void attention_reference_forward<float>(const AttentionParams<float>&, float*, float*,
                                                 float*);
template void attention_reference_forward<double>(const AttentionParams<double>&, double*,
                                                  double*, double*);
template void attention_reference_backward<float>(const AttentionParams<float>&, const float*,
                                                  float*, float*, float*);
template void attention_reference_backward<double>(const AttentionParams<double>&, const double*,
                                                   double*, double*, double*);

}  // namespace attnlab::kernels
