#include "kernels/cpu/attention_math.h"

#include <omp.h>

#include <cblas.h>

#include <algorithm>
#include <limits>

#include "kernels/cpu/flash_tiles.h"
#include "kernels/cpu/gemm.h"
#include "kernels/error.h"

namespace attnlab::kernels {
namespace {

// Threads: OpenMP over independent tasks (blocks of query rows in forward, KV groups or chunks of
// them in backward), each calling a single-threaded BLAS. Measured on the 2-core AVX2 box at
// B = 1, H = 4, D = 64, f32 (CPU seconds / 2, the least noisy figure on a shared machine):
//   heads in sequence, multithreaded BLAS, OpenMP row loops:  S = 4096 fwd+bwd 0.94-0.95 s
//   OpenMP over heads, single-threaded BLAS:                   0.80-0.81 s
//   same with forward and backward in blocks of 256 rows:      0.67-0.74 s
// and the first scheme in blocks of 128 rows fell to ~3 GFLOP/s: OpenMP's and OpenBLAS's thread
// pools hand the two cores back and forth on every call. Blocks of 256 query rows keep the block of
// P being normalized in cache for the P V GEMM (forward 2048: 50-53 ms against 72-74 unblocked;
// 128 and 512 measured no better) and cap the backward's dP/dS scratch at [256, Sk] per thread.
constexpr int64_t kRowBlock = 256;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Tiny problems run on the calling thread: waking a team costs more than the work.
template <class T>
int threads_for(const AttentionParams<T>& p) {
  return p.B * p.H * p.Sq * p.Sk * p.D > (int64_t(1) << 18) ? omp_get_max_threads() : 1;
}

// OpenBLAS single-threaded for a scope, restored after. Each of our OpenMP threads calls it on its
// own task; a multithreaded OpenBLAS (the pthreads build) called from two threads at once makes them
// queue for its one thread pool (flash_tiles.h measured ~45 against ~170 GFLOP/s). The setting is
// process-wide: a BLAS call made concurrently from another thread during the scope runs serially
// (slower, never wrong). Toggling costs ~30 ns.
class SerialBlas {
 public:
  SerialBlas() : saved_(openblas_get_num_threads()) {
    if (saved_ != 1) openblas_set_num_threads(1);
  }
  ~SerialBlas() {
    if (saved_ != 1) openblas_set_num_threads(saved_);
  }
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;

 private:
  int saved_;
};

template <class T>
const T* q_head(const AttentionParams<T>& p, int64_t b, int64_t h) {
  return p.q + b * p.q_stride_b + h * p.q_stride_h;
}
template <class T>
const T* k_head(const AttentionParams<T>& p, int64_t b, int64_t kvh) {
  return p.k + b * p.k_stride_b + kvh * p.k_stride_h;
}
template <class T>
const T* v_head(const AttentionParams<T>& p, int64_t b, int64_t kvh) {
  return p.v + b * p.v_stride_b + kvh * p.v_stride_h;
}

// out[j] = x[j] * z_ij for row i of head (b, h), z the dropout factors (out may be x).
template <class T>
void dropout_row(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t i, const T* x, T* out) {
  const uint64_t key = dropout_row_key(p.dropout_seed, b, h, i);
  const uint64_t threshold = dropout_threshold(p.dropout_p);
  const T inv_keep = T(1 / (1 - p.dropout_p));
  for (int64_t j = 0; j < p.Sk; ++j)
    out[j] = dropout_keep_in_row(key, j, threshold) ? x[j] * inv_keep : T(0);
}

// Row i of head (b, h): on entry row = scale * <q_i, k_j>; on exit the softmax probabilities
// (bias added, masks applied). Returns the row's logsumexp (-inf and a zero row when every key is
// masked). With pz, also writes the dropped-out probabilities P * z.
template <class T>
T softmax_row(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t i, T* row, T* pz) {
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const int64_t Sk = p.Sk;
  add_bias_row(p, b, h, i, 0, Sk, row);
  if (p.key_padding_mask) {
    const uint8_t* pad = p.key_padding_mask + b * Sk;
    for (int64_t j = 0; j < Sk; ++j)
      if (pad[j]) row[j] = neg_inf;
  }
  if (p.causal)  // keys j > i + (Sk - Sq) are hidden, and with a window those before visible_begin
    std::fill(row + visible_end(p, i), row + Sk, neg_inf);
  std::fill(row, row + visible_begin(p, i), neg_inf);
  const T m = detail::row_max(row, Sk);
  T lse = neg_inf;
  if (m == neg_inf) {
    std::fill(row, row + Sk, T(0));
  } else {
    const T sum = detail::exp_shift_sum(row, Sk, m);
    const T inv = T(1) / sum;
#pragma omp simd
    for (int64_t j = 0; j < Sk; ++j) row[j] *= inv;
    lse = m + std::log(sum);
  }
  if (pz) dropout_row(p, b, h, i, row, pz);
  return lse;
}

// Row i of head (b, h) in backward: on entry w = dO_i V^T (the gradient w.r.t. P * z); on exit
// dS_i = P_i * (dP_i - <P_i, dP_i>), dP = z * w.
template <class T>
void softmax_backward_row(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t i,
                          const T* prow, T* w) {
  const int64_t Sk = p.Sk;
  if (p.dropout_p > 0) dropout_row(p, b, h, i, w, w);
  T dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t j = 0; j < Sk; ++j) dot += prow[j] * w[j];
#pragma omp simd
  for (int64_t j = 0; j < Sk; ++j) w[j] = prow[j] * (w[j] - dot);
}

// Forward of query rows [i0, i0 + n) of head (b, h); pz: [n, Sk] scratch when dropout is on.
template <class T>
void forward_rows(const AttentionParams<T>& p, int64_t b, int64_t h, int64_t i0, int64_t n, T* o,
                  T* lse, T* probs, T* pz) {
  const int64_t Sq = p.Sq, Sk = p.Sk, H = p.H, D = p.D, kvh = h / (H / p.Hkv);
  T* P = probs + ((b * H + h) * Sq + i0) * Sk;
  gemm(false, true, n, Sk, D, p.scale, q_head(p, b, h) + i0 * p.q_stride_s, p.q_stride_s,
       k_head(p, b, kvh), p.k_stride_s, T(0), P, Sk);
  for (int64_t r = 0; r < n; ++r)
    lse[(b * H + h) * Sq + i0 + r] = softmax_row(p, b, h, i0 + r, P + r * Sk, pz ? pz + r * Sk : nullptr);
  gemm(false, false, n, D, Sk, T(1), pz ? pz : P, Sk, v_head(p, b, kvh), p.v_stride_s, T(0),
       o + (b * Sq + i0) * H * D + h * D, H * D);
}

// How the backward splits its work. A unit is (query head of the group, block of R query rows);
// each KV group's G * nb units are cut into nc chunks of consecutive units, one task each. With
// nc == 1 a task owns its group's dK/dV outright; with nc > 1 (fewer groups than threads: MQA, small
// batches) each chunk sums into its own partial dK/dV, and the partials are added in chunk order
// afterwards. Either way every sum runs in a fixed order: deterministic for a given thread count.
struct BackwardPlan {
  int64_t R = 0, nb = 0, units = 0, nc = 1, threads = 1;
  int64_t scratch_per_thread = 0, partials = 0;  // elements
  int64_t workspace() const { return threads * scratch_per_thread + partials; }
};

template <class T>
BackwardPlan backward_plan(const AttentionParams<T>& p) {
  BackwardPlan plan;
  plan.threads = threads_for(p);
  plan.R = std::min(kRowBlock, p.Sq);
  plan.nb = ceil_div(p.Sq, plan.R);
  plan.units = (p.H / p.Hkv) * plan.nb;
  const int64_t groups = p.B * p.Hkv;
  plan.nc = groups >= plan.threads ? 1 : std::min(plan.units, ceil_div(plan.threads, groups));
  plan.scratch_per_thread = plan.R * p.Sk;  // dP, then dS (P * z first when dropout is on)
  plan.partials = plan.nc > 1 ? 2 * plan.nc * groups * p.Sk * p.D : 0;
  return plan;
}

// Units [u0, u1) of KV group (b, kvh). dK, dV (leading dimension ld) are overwritten by the first
// unit and accumulated by the rest. W: [R, Sk] scratch.
template <class T>
void backward_units(const AttentionParams<T>& p, const BackwardPlan& plan, int64_t b, int64_t kvh,
                    int64_t u0, int64_t u1, const T* probs, const T* dout, T* dq, T* dK, T* dV,
                    int64_t ld, T* W) {
  const int64_t Sq = p.Sq, Sk = p.Sk, H = p.H, D = p.D, G = H / p.Hkv;
  const T* K = k_head(p, b, kvh);
  const T* V = v_head(p, b, kvh);
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t h = kvh * G + u / plan.nb, i0 = u % plan.nb * plan.R;
    const int64_t n = std::min(plan.R, Sq - i0);
    const T beta = u == u0 ? T(0) : T(1);
    const T* P = probs + ((b * H + h) * Sq + i0) * Sk;
    const T* dO = dout + (b * Sq + i0) * H * D + h * D;
    // dV (+)= (P z)^T dO: the dropped-out probabilities are what multiplied V in forward.
    const T* Pz = P;
    if (p.dropout_p > 0) {
      for (int64_t r = 0; r < n; ++r) dropout_row(p, b, h, i0 + r, P + r * Sk, W + r * Sk);
      Pz = W;
    }
    gemm(true, false, Sk, D, n, T(1), Pz, Sk, dO, H * D, beta, dV, ld);
    // W = dO V^T, then dS in place.
    gemm(false, true, n, Sk, D, T(1), dO, H * D, V, p.v_stride_s, T(0), W, Sk);
    for (int64_t r = 0; r < n; ++r) softmax_backward_row(p, b, h, i0 + r, P + r * Sk, W + r * Sk);
    gemm(false, false, n, D, Sk, p.scale, W, Sk, K, p.k_stride_s, T(0),
         dq + (b * Sq + i0) * H * D + h * D, H * D);
    gemm(true, false, Sk, D, n, p.scale, W, Sk, q_head(p, b, h) + i0 * p.q_stride_s,
         p.q_stride_s, beta, dK, ld);
  }
}

}  // namespace

template <class T>
int64_t attention_math_forward_workspace(const AttentionParams<T>& p) {
  return p.dropout_p > 0 ? threads_for(p) * std::min(kRowBlock, p.Sq) * p.Sk : 0;
}

template <class T>
int64_t attention_math_backward_workspace(const AttentionParams<T>& p) {
  return backward_plan(p).workspace();
}

template <class T>
void attention_math_forward(const AttentionParams<T>& p, T* o, T* lse, T* probs, T* workspace,
                            int64_t workspace_size) {
  check_attention_params(p, "attention_math_forward");
  ATTNLAB_CHECK(o && lse && probs,
                "attention_math_forward: O, LSE and probability pointers must not be null");
  const int64_t need = attention_math_forward_workspace(p);
  ATTNLAB_CHECK((workspace || need == 0) && workspace_size >= need, "attention_math_forward: needs ",
                need, " elements of workspace (attention_math_forward_workspace), got ",
                workspace ? workspace_size : 0);
  const int threads = threads_for(p);
  const int64_t R = std::min(kRowBlock, p.Sq), nb = ceil_div(p.Sq, R), tasks = p.B * p.H * nb;
  const SerialBlas serial;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    T* pz = need > 0 ? workspace + omp_get_thread_num() * R * p.Sk : nullptr;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t bh = t / nb, i0 = t % nb * R;
      forward_rows(p, bh / p.H, bh % p.H, i0, std::min(R, p.Sq - i0), o, lse, probs, pz);
    }
  }
}

template <class T>
void attention_math_backward(const AttentionParams<T>& p, const T* probs, const T* dout, T* dq,
                             T* dk, T* dv, T* workspace, int64_t workspace_size) {
  check_attention_params(p, "attention_math_backward");
  ATTNLAB_CHECK(probs && dout && dq && dk && dv,
                "attention_math_backward: P, dO, dQ, dK and dV pointers must not be null");
  const BackwardPlan plan = backward_plan(p);
  ATTNLAB_CHECK(workspace && workspace_size >= plan.workspace(), "attention_math_backward: needs ",
                plan.workspace(), " elements of workspace (attention_math_backward_workspace), got ",
                workspace ? workspace_size : 0);
  const int64_t Sk = p.Sk, Hkv = p.Hkv, D = p.D, groups = p.B * Hkv, nc = plan.nc;
  T* partials = workspace + plan.threads * plan.scratch_per_thread;
  const SerialBlas serial;
#pragma omp parallel num_threads(int(plan.threads)) if (plan.threads > 1)
  {
    T* W = workspace + omp_get_thread_num() * plan.scratch_per_thread;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < groups * nc; ++t) {
      const int64_t bg = t / nc, c = t % nc, b = bg / Hkv, kvh = bg % Hkv;
      const int64_t u0 = c * plan.units / nc, u1 = (c + 1) * plan.units / nc;
      if (nc == 1) {
        const int64_t off = b * Sk * Hkv * D + kvh * D;
        backward_units(p, plan, b, kvh, u0, u1, probs, dout, dq, dk + off, dv + off, Hkv * D, W);
      } else {
        T* part = partials + t * 2 * Sk * D;  // [2, Sk, D]: dK then dV of this chunk
        backward_units(p, plan, b, kvh, u0, u1, probs, dout, dq, part, part + Sk * D, D, W);
      }
    }
    if (nc > 1) {  // dK, dV = the chunks' partials summed in chunk order
#pragma omp for schedule(static)
      for (int64_t row = 0; row < groups * Sk; ++row) {
        const int64_t bg = row / Sk, j = row % Sk, b = bg / Hkv, kvh = bg % Hkv;
        T* gk = dk + ((b * Sk + j) * Hkv + kvh) * D;
        T* gv = dv + ((b * Sk + j) * Hkv + kvh) * D;
        for (int64_t c = 0; c < nc; ++c) {
          const T* part = partials + (bg * nc + c) * 2 * Sk * D + j * D;
          for (int64_t d = 0; d < D; ++d) {
            gk[d] = c == 0 ? part[d] : gk[d] + part[d];
            gv[d] = c == 0 ? part[Sk * D + d] : gv[d] + part[Sk * D + d];
          }
        }
      }
    }
  }
}

template int64_t attention_math_forward_workspace<float>(const AttentionParams<float>&);
template int64_t attention_math_forward_workspace<double>(const AttentionParams<double>&);
template int64_t attention_math_backward_workspace<float>(const AttentionParams<float>&);
template int64_t attention_math_backward_workspace<double>(const AttentionParams<double>&);
template void attention_math_forward<float>(const AttentionParams<float>&, float*, float*, float*,
                                            float*, int64_t);
template void attention_math_forward<double>(const AttentionParams<double>&, double*, double*,
                                             double*, double*, int64_t);
template void attention_math_backward<float>(const AttentionParams<float>&, const float*,
                                             const float*, float*, float*, float*, float*, int64_t);
template void attention_math_backward<double>(const AttentionParams<double>&, const double*,
                                              const double*, double*, double*, double*, double*,
                                              int64_t);

}  // namespace attnlab::kernels
