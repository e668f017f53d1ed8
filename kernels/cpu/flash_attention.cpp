#include "kernels/cpu/flash_attention.h"

#include <omp.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "kernels/cpu/flash_tiles.h"
#include "kernels/error.h"

namespace attnlab::kernels {
namespace {

using detail::Blocking;
using detail::exp_shift;
using detail::exp_shift_sum;
using detail::tile_gemm;

// Tile sizes: BR query rows x BC keys. 96 is a multiple of MR (6) and of lcm(MR, NR) (48 for
// float, 24 for double), so full tiles need no padding. Swept {96, 192} x {96, 192} at D = 64:
// all within measurement noise; 96 x 96 keeps the per-thread working set (~6 tiles of 96 x 64
// floats, ~150 KiB; ~600 KiB at D = 256) inside this machine's 1 MiB L2.
constexpr int64_t BR = 96;
constexpr int64_t BC = 96;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Keys [0, key_end) are visible to at least one of the queries [0, q_end): causal hides keys
// j > i + (Sk - Sq) (bottom-right alignment). May be 0 when Sq > Sk.
template <class T>
int64_t key_end(const AttentionParams<T>& p, int64_t q_end) {
  if (!p.causal) return p.Sk;
  return std::clamp<int64_t>(q_end + (p.Sk - p.Sq), 0, p.Sk);
}

// The first key block (as its first key, a multiple of BC) a query block starting at q0 can see:
// a sliding window hides every key before visible_begin(q0), the earliest of the block's rows.
template <class T>
int64_t key_block_begin(const AttentionParams<T>& p, int64_t q0) {
  return visible_begin(p, q0) / BC * BC;
}

// Tiny problems run on the calling thread: waking a team costs more than the work.
template <class T>
bool worth_threads(const AttentionParams<T>& p) {
  return p.B * p.H * p.Sq * p.Sk * p.D > (int64_t(1) << 18);
}

// Per-thread scratch: a few tiles, nothing of size Sq x Sk.
template <class T>
struct Workspace {
  std::vector<T> q, dout;     // [BR, Dp]  packed Q / dO rows of the query block, zero padded
  std::vector<T> kt, vt;      // [D, BC]   K / V of the key block, transposed, zero padded
  std::vector<T> kv;          // [BC, Dp]  K (backward dQ) or V (forward) rows, zero padded
  std::vector<T> s, z, ds;    // [BR, BC]  scores -> P, dropout factors (-> P z), dP -> dS
  std::vector<T> acc;         // [BR, Dp]  O / dQ accumulator
  std::vector<T> m, l;        // [BR] running max and sum of the online softmax
  std::vector<T> colmask;     // [BC] 0 for a usable key, -inf for a padded or padding-masked one
  explicit Workspace(int64_t Dp)
      : q(BR * Dp), dout(BR * Dp), kt(Dp * BC), vt(Dp * BC), kv(BC * Dp), s(BR * BC),
        z(BR * BC), ds(BR * BC), acc(BR * Dp), m(BR), l(BR), colmask(BC) {}
  int64_t bytes() const {
    size_t n = 0;
    for (const auto* v : {&q, &dout, &kt, &vt, &kv, &s, &z, &ds, &acc, &m, &l, &colmask})
      n += v->size();
    return int64_t(n * sizeof(T));
  }
};

// Backward: the packed K/V tiles and dK/dV accumulators of up to KC consecutive key blocks, so
// that each Q/dO tile packed for a query block serves KC key blocks. Packing Q and dO again for
// every (key block, query block) pair was ~10% of the backward at S = 2048 (perf, 1 thread): the
// strided rows stream from L3 each time. KC = 4 cuts that to ~2.5% with 4 slots of 5 tiles per
// thread (~0.5 MiB at D = 64), independent of the sequence length.
constexpr int64_t KC = 4;

template <class T>
struct KeyChunk {
  std::vector<T> kt, vt;     // [slots][D, BC]   K / V transposed, zero padded
  std::vector<T> kv;         // [slots][BC, Dp]  K rows (for dS K)
  std::vector<T> dk, dv;     // [slots][BC, Dp]  accumulators
  std::vector<T> colmask;    // [slots][BC]
  KeyChunk(int64_t Dp, int64_t slots)
      : kt(slots * Dp * BC), vt(slots * Dp * BC), kv(slots * BC * Dp), dk(slots * BC * Dp),
        dv(slots * BC * Dp), colmask(slots * BC) {}
  int64_t bytes() const {
    size_t n = 0;
    for (const auto* v : {&kt, &vt, &kv, &dk, &dv, &colmask}) n += v->size();
    return int64_t(n * sizeof(T));
  }
};

// dst[r, 0:D] = src + r * stride_s for r < n; zeros elsewhere in [n_pad, ld].
template <class T>
void pack_rows(T* dst, int64_t ld, int64_t n_pad, const T* src, int64_t stride_s, int64_t n,
               int64_t D) {
  for (int64_t r = 0; r < n_pad; ++r) {
    T* out = dst + r * ld;
    if (r < n) {
      std::copy(src + r * stride_s, src + r * stride_s + D, out);
      std::fill(out + D, out + ld, T(0));
    } else {
      std::fill(out, out + ld, T(0));
    }
  }
}

// dst[d, c] = src[c * stride_s + d] for c < n; zero columns [n, n_pad). dst is [D, n_pad].
// Blocks of 8 keys x 8 dims: each source row segment is read once and each destination row
// segment written contiguously (a plain column-by-column copy made strided scalar stores that
// cost ~10% of the forward).
template <class T>
void pack_transposed(T* dst, int64_t n_pad, const T* src, int64_t stride_s, int64_t n,
                     int64_t D) {
  constexpr int64_t TB = 8;
  for (int64_t c0 = 0; c0 < n; c0 += TB) {
    const int64_t c1 = std::min(n, c0 + TB);
    for (int64_t d0 = 0; d0 < D; d0 += TB) {
      const int64_t d1 = std::min(D, d0 + TB);
      for (int64_t d = d0; d < d1; ++d)
        for (int64_t c = c0; c < c1; ++c) dst[d * n_pad + c] = src[c * stride_s + d];
    }
  }
  for (int64_t d = 0; d < D; ++d) std::fill(dst + d * n_pad + n, dst + (d + 1) * n_pad, T(0));
}

// colmask[c] for keys k0 + c, c < n_pad: -inf past the block (c >= nk) or padding-masked.
template <class T>
void fill_colmask(const AttentionParams<T>& p, int64_t b, int64_t k0, int64_t nk, int64_t n_pad,
                  T* colmask) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const uint8_t* pad = p.key_padding_mask ? p.key_padding_mask + b * p.Sk + k0 : nullptr;
  for (int64_t c = 0; c < n_pad; ++c)
    colmask[c] = (c < nk && !(pad && pad[c])) ? T(0) : neg_inf;
}

// Raw S = Q K^T tile (rows r < nq, ld = n_pad) -> scores s = scale S + bias, -inf where masked.
template <class T>
void mask_scores(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t q0, int64_t nq,
                 int64_t k0, int64_t nk, int64_t n_pad, const T* colmask, T* S) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const T scale = p.scale;
  for (int64_t r = 0; r < nq; ++r) {
    const int64_t i = q0 + r;
    T* row = S + r * n_pad;
#pragma omp simd
    for (int64_t c = 0; c < n_pad; ++c) row[c] = row[c] * scale + colmask[c];
    add_bias_row(p, b, h, i, k0, nk, row);
    if (p.causal) {  // keys j > i + (Sk - Sq), i.e. columns c > cut, are hidden
      const int64_t cut = i + (p.Sk - p.Sq) - k0;
      for (int64_t c = std::max<int64_t>(cut + 1, 0); c < n_pad; ++c) row[c] = neg_inf;
    }
    // a sliding window hides the keys before visible_begin(i)
    for (int64_t c = 0, c1 = std::min(visible_begin(p, i) - k0, n_pad); c < c1; ++c) row[c] = neg_inf;
  }
}

// Dropout factors z[r, c] in {0, 1/(1-p)} for rows r < nq (rows up to nq_pad and columns past
// nk are zero, so they never turn a padded zero into NaN).
template <class T>
void fill_dropout(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t q0, int64_t nq,
                  int64_t nq_pad, int64_t k0, int64_t nk, int64_t n_pad, T* z) {
  const uint64_t threshold = dropout_threshold(p.dropout_p);
  const T inv_keep = T(1 / (1 - p.dropout_p));
  for (int64_t r = 0; r < nq_pad; ++r) {
    T* row = z + r * n_pad;
    std::fill(row, row + n_pad, T(0));
    if (r >= nq) continue;
    const uint64_t key = dropout_row_key(p.dropout_seed, b, h, q0 + r);
    for (int64_t c = 0; c < nk; ++c)
      if (dropout_keep_in_row(key, k0 + c, threshold)) row[c] = inv_keep;
  }
}

// ---- forward --------------------------------------------------------------------------------
// One task: query block [q0, q0 + nq) of head h in batch b against every visible key block.
template <class T>
void forward_block(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t q0, int64_t Dp,
                   Workspace<T>& w, T* o, T* lse) {
  constexpr int64_t MR = Blocking<T>::MR, LC = Blocking<T>::LC;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const int64_t D = p.D, kvh = h / (p.H / p.Hkv);
  const int64_t nq = std::min(BR, p.Sq - q0), nq_pad = round_up(nq, MR);
  const T* k = p.k + b * p.k_stride_b + kvh * p.k_stride_h;
  const T* v = p.v + b * p.v_stride_b + kvh * p.v_stride_h;

  pack_rows(w.q.data(), Dp, nq_pad, p.q + b * p.q_stride_b + q0 * p.q_stride_s + h * p.q_stride_h,
            p.q_stride_s, nq, D);
  std::fill(w.acc.begin(), w.acc.begin() + nq_pad * Dp, T(0));
  std::fill(w.m.begin(), w.m.end(), neg_inf);
  std::fill(w.l.begin(), w.l.end(), T(0));

  const int64_t kend = key_end(p, q0 + nq);
  for (int64_t k0 = key_block_begin(p, q0); k0 < kend; k0 += BC) {
    const int64_t nk = std::min(BC, kend - k0), n_pad = round_up(nk, LC);
    pack_transposed(w.kt.data(), n_pad, k + k0 * p.k_stride_s, p.k_stride_s, nk, D);
    pack_rows(w.kv.data(), Dp, n_pad, v + k0 * p.v_stride_s, p.v_stride_s, nk, D);
    fill_colmask(p, b, k0, nk, n_pad, w.colmask.data());

    // S = Q K^T, then scores with scale, bias and masks.
    T* S = w.s.data();
    tile_gemm<T, false>(nq_pad, n_pad, D, w.q.data(), Dp, 1, w.kt.data(), n_pad, S, n_pad);
    mask_scores(p, b, h, q0, nq, k0, nk, n_pad, w.colmask.data(), S);

    // Online softmax: m' = max(m, max_j s_j); l' = l e^{m - m'} + sum_j e^{s_j - m'};
    // acc' = acc e^{m - m'} + e^{s - m'} V. Rows still fully masked keep m = -inf, l = 0.
    for (int64_t r = 0; r < nq; ++r) {
      T* row = S + r * n_pad;
      const T m_new = std::max(w.m[r], detail::row_max(row, n_pad));
      if (m_new == neg_inf) {
        std::fill(row, row + n_pad, T(0));
        continue;
      }
      const T alpha = std::exp(w.m[r] - m_new);  // 0 on the first visible block (m = -inf)
      const T sum = exp_shift_sum(row, n_pad, m_new);
      w.l[r] = w.l[r] * alpha + sum;  // normalizer uses the probabilities before dropout
      w.m[r] = m_new;
      if (alpha != T(1)) {
        T* a = w.acc.data() + r * Dp;
        for (int64_t d = 0; d < Dp; ++d) a[d] *= alpha;
      }
      if (p.dropout_p > 0) {
        const uint64_t key = dropout_row_key(p.dropout_seed, b, h, q0 + r);
        const uint64_t threshold = dropout_threshold(p.dropout_p);
        const T inv_keep = T(1 / (1 - p.dropout_p));
        for (int64_t c = 0; c < nk; ++c)
          row[c] = dropout_keep_in_row(key, k0 + c, threshold) ? row[c] * inv_keep : T(0);
      }
    }
    std::fill(S + nq * n_pad, S + nq_pad * n_pad, T(0));  // padded query rows add nothing

    // acc += P V
    tile_gemm<T, true>(nq_pad, Dp, n_pad, S, n_pad, 1, w.kv.data(), Dp, w.acc.data(), Dp);
  }

  for (int64_t r = 0; r < nq; ++r) {
    const int64_t i = q0 + r;
    const T l = w.l[r];
    const T inv = l > 0 ? T(1) / l : T(0);  // fully masked row: O = 0
    T* out = o + ((b * p.Sq + i) * p.H + h) * D;
    for (int64_t d = 0; d < D; ++d) out[d] = w.acc[r * Dp + d] * inv;
    lse[(b * p.H + h) * p.Sq + i] = l > 0 ? w.m[r] + std::log(l) : neg_inf;
  }
}

// ---- backward -------------------------------------------------------------------------------
// Recomputes one (query block, key block) tile from the packed tiles qt, dt ([nq_pad, Dp]: Q, dO)
// and kt, vt ([D, n_pad]: K, V transposed) with the key block's colmask:
//   w.s  = P = exp(s - LSE)                 (before dropout)
//   w.z  = z, the dropout factors           (only when dropout_p > 0)
//   w.ds = dS = P * (z * dO V^T - Delta)
// Rows >= nq and columns >= nk come out as exact zeros.
template <class T>
void recompute_tile(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t q0, int64_t nq,
                    int64_t nq_pad, int64_t k0, int64_t nk, int64_t n_pad, int64_t Dp,
                    const T* lse_row, const T* delta_row, const T* qt, const T* dt, const T* kt,
                    const T* vt, const T* colmask, Workspace<T>& w) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const int64_t D = p.D;
  T* P = w.s.data();
  T* dS = w.ds.data();
  tile_gemm<T, false>(nq_pad, n_pad, D, qt, Dp, 1, kt, n_pad, P, n_pad);
  mask_scores(p, b, h, q0, nq, k0, nk, n_pad, colmask, P);
  for (int64_t r = 0; r < nq; ++r) {
    T* row = P + r * n_pad;
    if (lse_row[r] == neg_inf)
      std::fill(row, row + n_pad, T(0));  // fully masked row: no gradient
    else
      exp_shift(row, n_pad, lse_row[r]);
  }
  std::fill(P + nq * n_pad, P + nq_pad * n_pad, T(0));

  // dP = dO V^T (the gradient w.r.t. the dropped-out probabilities), then through dropout.
  tile_gemm<T, false>(nq_pad, n_pad, D, dt, Dp, 1, vt, n_pad, dS, n_pad);
  const bool dropout = p.dropout_p > 0;
  if (dropout) fill_dropout(p, b, h, q0, nq, nq_pad, k0, nk, n_pad, w.z.data());
  for (int64_t r = 0; r < nq; ++r) {
    const T* prow = P + r * n_pad;
    const T* zrow = w.z.data() + r * n_pad;
    T* row = dS + r * n_pad;
    const T delta = delta_row[r];
    if (dropout) {
#pragma omp simd
      for (int64_t c = 0; c < n_pad; ++c) row[c] = prow[c] * (row[c] * zrow[c] - delta);
    } else {
#pragma omp simd
      for (int64_t c = 0; c < n_pad; ++c) row[c] = prow[c] * (row[c] - delta);
    }
  }
  std::fill(dS + nq * n_pad, dS + nq_pad * n_pad, T(0));
}

// Pass 1 task: dK and dV of key blocks [kb0, kb1) (at most kc's slots) of KV head kvh, each summed over
// the G query heads of the group and every query block that can see it, in a fixed order (heads,
// then query blocks, ascending). Nothing else writes there. With dq_group (fused schedule, see
// flash_attention_backward) it also adds dS K into the dQ accumulator of the group, laid out
// [G, nqb * BR, Dp], over the key blocks in ascending order, as dq_block does.
template <class T>
void dkdv_blocks(const AttentionParams<T>& p, int64_t b, int64_t kvh, int64_t kb0, int64_t kb1,
                 int64_t Dp, const T* dout, const T* lse, const T* delta, Workspace<T>& w,
                 KeyChunk<T>& kc, T* dk, T* dv, T* dq_group = nullptr) {
  constexpr int64_t MR = Blocking<T>::MR, LC = Blocking<T>::LC;
  const int64_t D = p.D, G = p.H / p.Hkv, nkc = kb1 - kb0;
  int64_t nk[KC], n_pad[KC], q_start[KC], q_stop[KC];
  for (int64_t s = 0; s < nkc; ++s) {
    const int64_t k0 = (kb0 + s) * BC;
    nk[s] = std::min(BC, p.Sk - k0), n_pad[s] = round_up(nk[s], LC);
    const T* k = p.k + b * p.k_stride_b + k0 * p.k_stride_s + kvh * p.k_stride_h;
    const T* v = p.v + b * p.v_stride_b + k0 * p.v_stride_s + kvh * p.v_stride_h;
    pack_transposed(kc.kt.data() + s * Dp * BC, n_pad[s], k, p.k_stride_s, nk[s], D);
    pack_transposed(kc.vt.data() + s * Dp * BC, n_pad[s], v, p.v_stride_s, nk[s], D);
    fill_colmask(p, b, k0, nk[s], n_pad[s], kc.colmask.data() + s * BC);
    if (dq_group) pack_rows(kc.kv.data() + s * BC * Dp, Dp, n_pad[s], k, p.k_stride_s, nk[s], D);
    std::fill(kc.dk.begin() + s * BC * Dp, kc.dk.begin() + (s * BC + n_pad[s]) * Dp, T(0));
    std::fill(kc.dv.begin() + s * BC * Dp, kc.dv.begin() + (s * BC + n_pad[s]) * Dp, T(0));
    // Causal: only queries i >= k0 - (Sk - Sq) see any key of this block; its first query block:
    q_start[s] = p.causal ? std::max<int64_t>(0, k0 - (p.Sk - p.Sq)) / BR * BR : 0;
    // Window: query i sees key j only when j >= i + (Sk - Sq) + 1 - window, so queries past
    // q_stop see nothing of this block.
    q_stop[s] = p.window > 0 ? std::clamp<int64_t>(k0 + nk[s] - 1 - (p.Sk - p.Sq) + p.window, 0, p.Sq) : p.Sq;
  }
  const int64_t Sq_r = ceil_div(p.Sq, BR) * BR;
  for (int64_t h = kvh * G; h < (kvh + 1) * G; ++h) {
    for (int64_t q0 = q_start[0]; q0 < q_stop[nkc - 1]; q0 += BR) {
      const int64_t nq = std::min(BR, p.Sq - q0), nq_pad = round_up(nq, MR);
      pack_rows(w.q.data(), Dp, nq_pad,
                p.q + b * p.q_stride_b + q0 * p.q_stride_s + h * p.q_stride_h, p.q_stride_s, nq, D);
      pack_rows(w.dout.data(), Dp, nq_pad, dout + ((b * p.Sq + q0) * p.H + h) * D, p.H * D, nq, D);
      const int64_t row0 = (b * p.H + h) * p.Sq + q0;
      for (int64_t s = 0; s < nkc; ++s) {
        if (q0 < q_start[s] || q0 >= q_stop[s]) continue;  // this query block sees nothing of key block s
        const T* kt = kc.kt.data() + s * Dp * BC;
        const T* vt = kc.vt.data() + s * Dp * BC;
        recompute_tile(p, b, h, q0, nq, nq_pad, (kb0 + s) * BC, nk[s], n_pad[s], Dp, lse + row0,
                       delta + row0, w.q.data(), w.dout.data(), kt, vt,
                       kc.colmask.data() + s * BC, w);
        // dV += (P z)^T dO: the dropped-out probabilities are what multiplied V in forward.
        const T* Pz = w.s.data();
        if (p.dropout_p > 0) {
          T* z = w.z.data();
          for (int64_t e = 0; e < nq_pad * n_pad[s]; ++e) z[e] *= w.s[e];
          Pz = z;
        }
        T* dK = kc.dk.data() + s * BC * Dp;
        T* dV = kc.dv.data() + s * BC * Dp;
        tile_gemm<T, true>(n_pad[s], Dp, nq_pad, Pz, 1, n_pad[s], w.dout.data(), Dp, dV, Dp);
        // dK += dS^T Q (times scale below)
        tile_gemm<T, true>(n_pad[s], Dp, nq_pad, w.ds.data(), 1, n_pad[s], w.q.data(), Dp, dK, Dp);
        if (dq_group) {  // dQ += dS K (times scale when written)
          T* dQ = dq_group + ((h - kvh * G) * Sq_r + q0) * Dp;
          tile_gemm<T, true>(nq_pad, Dp, n_pad[s], w.ds.data(), n_pad[s], 1,
                             kc.kv.data() + s * BC * Dp, Dp, dQ, Dp);
        }
      }
    }
  }
  for (int64_t s = 0; s < nkc; ++s) {
    const int64_t k0 = (kb0 + s) * BC;
    const T* dK = kc.dk.data() + s * BC * Dp;
    const T* dV = kc.dv.data() + s * BC * Dp;
    for (int64_t c = 0; c < nk[s]; ++c) {
      T* gk = dk + ((b * p.Sk + k0 + c) * p.Hkv + kvh) * D;
      T* gv = dv + ((b * p.Sk + k0 + c) * p.Hkv + kvh) * D;
      for (int64_t d = 0; d < D; ++d) {
        gk[d] = dK[c * Dp + d] * p.scale;
        gv[d] = dV[c * Dp + d];
      }
    }
  }
}

// Pass 2 task: dQ of query block [q0, q0 + nq) of head h, summed over the visible key blocks.
template <class T>
void dq_block(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t q0, int64_t Dp,
              const T* dout, const T* lse, const T* delta, Workspace<T>& w, T* dq) {
  constexpr int64_t MR = Blocking<T>::MR, LC = Blocking<T>::LC;
  const int64_t D = p.D, kvh = h / (p.H / p.Hkv);
  const int64_t nq = std::min(BR, p.Sq - q0), nq_pad = round_up(nq, MR);
  const T* k = p.k + b * p.k_stride_b + kvh * p.k_stride_h;
  const T* v = p.v + b * p.v_stride_b + kvh * p.v_stride_h;
  pack_rows(w.q.data(), Dp, nq_pad, p.q + b * p.q_stride_b + q0 * p.q_stride_s + h * p.q_stride_h,
            p.q_stride_s, nq, D);
  pack_rows(w.dout.data(), Dp, nq_pad, dout + ((b * p.Sq + q0) * p.H + h) * D, p.H * D, nq, D);
  T* dQ = w.acc.data();
  std::fill(dQ, dQ + nq_pad * Dp, T(0));
  const int64_t row0 = (b * p.H + h) * p.Sq + q0;

  const int64_t kend = key_end(p, q0 + nq);
  for (int64_t k0 = key_block_begin(p, q0); k0 < kend; k0 += BC) {
    const int64_t nk = std::min(BC, kend - k0), n_pad = round_up(nk, LC);
    pack_transposed(w.kt.data(), n_pad, k + k0 * p.k_stride_s, p.k_stride_s, nk, D);
    pack_transposed(w.vt.data(), n_pad, v + k0 * p.v_stride_s, p.v_stride_s, nk, D);
    pack_rows(w.kv.data(), Dp, n_pad, k + k0 * p.k_stride_s, p.k_stride_s, nk, D);
    fill_colmask(p, b, k0, nk, n_pad, w.colmask.data());
    recompute_tile(p, b, h, q0, nq, nq_pad, k0, nk, n_pad, Dp, lse + row0, delta + row0,
                   w.q.data(), w.dout.data(), w.kt.data(), w.vt.data(), w.colmask.data(), w);
    // dQ += dS K (times scale below)
    tile_gemm<T, true>(nq_pad, Dp, n_pad, w.ds.data(), n_pad, 1, w.kv.data(), Dp, dQ, Dp);
  }
  for (int64_t r = 0; r < nq; ++r) {
    T* g = dq + ((b * p.Sq + q0 + r) * p.H + h) * D;
    for (int64_t d = 0; d < D; ++d) g[d] = dQ[r * Dp + d] * p.scale;
  }
}

// The backward's fused schedule (see flash_attention_backward) needs >= 2 (b, KV head) tasks per
// thread.
template <class T>
bool fused_backward(const AttentionParams<T>& p, int threads) {
  return p.B * p.Hkv >= 2 * int64_t(threads);
}

}  // namespace

template <class T>
void flash_attention_forward(const AttentionParams<T>& p, T* o, T* lse) {
  check_attention_params(p, "flash_attention_forward");
  ATTNLAB_CHECK(o && lse, "flash_attention_forward: O and LSE pointers must not be null");
  const int64_t Dp = round_up(p.D, Blocking<T>::NR), nqb = ceil_div(p.Sq, BR);
  const int64_t tasks = p.B * p.H * nqb;
#pragma omp parallel if (worth_threads(p))
  {
    Workspace<T> w(Dp);
    // Last query blocks first: under causal masking they are the longest tasks.
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t qb = nqb - 1 - t % nqb, bh = t / nqb;
      forward_block(p, bh / p.H, bh % p.H, qb * BR, Dp, w, o, lse);
    }
  }
}

template <class T>
void flash_attention_backward(const AttentionParams<T>& p, const T* o, const T* dout, const T* lse,
                              T* dq, T* dk, T* dv) {
  check_attention_params(p, "flash_attention_backward");
  ATTNLAB_CHECK(o && dout && lse && dq && dk && dv,
                "flash_attention_backward: O, dO, LSE, dQ, dK and dV pointers must not be null");
  const int64_t B = p.B, Sq = p.Sq, H = p.H, D = p.D;
  const int64_t Dp = round_up(D, Blocking<T>::NR), nqb = ceil_div(Sq, BR), nkb = ceil_div(p.Sk, BC);

  // Delta_i = <dO_i, O_i> = sum_j P_ij dP_ij (docs/flash_attention.md), [B, H, Sq]: O(S) memory.
  std::vector<T> delta(size_t(B * H * Sq));
#pragma omp parallel for schedule(static) if (worth_threads(p))
  for (int64_t bi = 0; bi < B * Sq; ++bi) {
    const int64_t b = bi / Sq, i = bi % Sq;
    for (int64_t h = 0; h < H; ++h) {
      const T* x = o + (bi * H + h) * D;
      const T* g = dout + (bi * H + h) * D;
      T s = 0;
      for (int64_t d = 0; d < D; ++d) s += x[d] * g[d];
      delta[(b * H + h) * Sq + i] = s;
    }
  }

  // Every gradient element has exactly one writer, summed in a fixed order: no atomics, no
  // per-thread copies of dK/dV, bitwise identical results for any thread count. Two schedules:
  //
  //  two-pass: pass 1 owns dK/dV per (b, KV head, key block) (dkdv_blocks), pass 2 owns dQ per
  //    (b, head, query block) (dq_block). Parallel even for B * Hkv = 1, but pass 2 recomputes
  //    S and dP: 7 tile GEMMs per tile pair.
  //  fused: one task per (b, KV head) walks its key blocks in order and also adds dS K into a
  //    task-private dQ accumulator of its G heads (O(G Sq D), not Sq x Sk): 5 tile GEMMs, ~25%
  //    less work, but only B * Hkv tasks, so it is used when there are >= 2 per thread.
  // dq_block and the fused dkdv_blocks accumulate each dQ tile over the same key blocks in the
  // same ascending order with the same micro-kernel, so the two schedules agree bitwise (the
  // thread-count test runs one with 1 thread and the other with 2).
  const int64_t Hkv = p.Hkv, G = H / Hkv, Sq_r = nqb * BR;
  const int threads = worth_threads(p) ? omp_get_max_threads() : 1;
  if (fused_backward(p, threads)) {
#pragma omp parallel if (worth_threads(p))
    {
      Workspace<T> w(Dp);
      KeyChunk<T> kc(Dp, KC);
      std::vector<T> dq_group(size_t(G * Sq_r * Dp));
#pragma omp for schedule(dynamic, 1)
      for (int64_t bg = 0; bg < B * Hkv; ++bg) {
        const int64_t b = bg / Hkv, kvh = bg % Hkv;
        std::fill(dq_group.begin(), dq_group.end(), T(0));
        for (int64_t kb = 0; kb < nkb; kb += KC)
          dkdv_blocks(p, b, kvh, kb, std::min(kb + KC, nkb), Dp, dout, lse, delta.data(), w, kc, dk,
                      dv, dq_group.data());
        for (int64_t hg = 0; hg < G; ++hg)
          for (int64_t i = 0; i < Sq; ++i) {
            const T* a = dq_group.data() + (hg * Sq_r + i) * Dp;
            T* g = dq + ((b * Sq + i) * H + kvh * G + hg) * D;
            for (int64_t d = 0; d < D; ++d) g[d] = a[d] * p.scale;
          }
      }
    }
    return;
  }
#pragma omp parallel if (worth_threads(p))
  {
    Workspace<T> w(Dp);
    KeyChunk<T> kc(Dp, 1);
    const int64_t tasks1 = B * Hkv * nkb;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks1; ++t) {
      const int64_t kb = t % nkb, bg = t / nkb;  // causal: first key blocks are the longest
      dkdv_blocks(p, bg / Hkv, bg % Hkv, kb, kb + 1, Dp, dout, lse, delta.data(), w, kc, dk, dv);
    }
    const int64_t tasks2 = B * H * nqb;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks2; ++t) {
      const int64_t qb = nqb - 1 - t % nqb, bh = t / nqb;
      dq_block(p, bh / H, bh % H, qb * BR, Dp, dout, lse, delta.data(), w, dq);
    }
  }
}

template <class T>
int64_t flash_attention_scratch_bytes(const AttentionParams<T>& p, bool backward) {
  const int64_t Dp = round_up(p.D, Blocking<T>::NR);
  const int64_t threads = worth_threads(p) ? omp_get_max_threads() : 1;
  int64_t bytes = threads * Workspace<T>(Dp).bytes();
  if (backward) {
    bytes += p.B * p.H * p.Sq * int64_t(sizeof(T));  // Delta
    if (fused_backward(p, int(threads)))              // key chunk and dq_group per thread
      bytes += threads * (KeyChunk<T>(Dp, KC).bytes() +
                          (p.H / p.Hkv) * ceil_div(p.Sq, BR) * BR * Dp * int64_t(sizeof(T)));
    else
      bytes += threads * KeyChunk<T>(Dp, 1).bytes();
  }
  return bytes;
}

template void flash_attention_forward<float>(const AttentionParams<float>&, float*, float*);
template void flash_attention_forward<double>(const AttentionParams<double>&, double*, double*);
template void flash_attention_backward<float>(const AttentionParams<float>&, const float*,
                                              const float*, const float*, float*, float*, float*);
template void flash_attention_backward<double>(const AttentionParams<double>&, const double*,
                                               const double*, const double*, double*, double*,
                                               double*);

template int64_t flash_attention_scratch_bytes<float>(const AttentionParams<float>&, bool);
template int64_t flash_attention_scratch_bytes<double>(const AttentionParams<double>&, bool);

}  // namespace attnlab::kernels
