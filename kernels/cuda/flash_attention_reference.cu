// The reference attention kernels: the GPU oracle (Variant::reference in attention.h). Deliberately
// plain — one thread block per query row (forward, dQ) or per key row (dK/dV), f32 maths, scores
// recomputed rather than stored — so that each line can be checked against the formulas:
//
//   s_ij = scale <q_i, k_j> + bias_ij  (-inf where masked: causal, key padding),
//   LSE_i = log sum_j exp(s_ij),  P_ij = exp(s_ij - LSE_i)
//   O_i  = sum_j P_ij v_j
//   Delta_i = <dO_i, O_i>,  dP_ij = <dO_i, v_j>,  dS_ij = P_ij (dP_ij - Delta_i)
//   dQ_i = scale sum_j dS_ij k_j,   dK_j = scale sum_{h in group, i} dS_ij q_i,   dV_j = sum_{h, i} P_ij dO_i
//
// Every output element is summed by one thread in a fixed order: deterministic. The weights kernel
// (return_weights on the GPU) writes P itself.
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/flash_attention_common.cuh"

namespace attnlab::kernels::cuda::detail {

namespace {

constexpr int kThreads = 128;        // per block; also the chunk of keys (or queries) per step
constexpr int kMaxDPerThread = 2;    // D <= 256 = kMaxDPerThread * kThreads

template <class T>
__device__ float dot_row(const float* x, const T* row, int D) {
  float s = 0.f;
  for (int d = 0; d < D; ++d) s += x[d] * to_f32(row[d]);
  return s;
}

// acc[m] += sum_{c < n} w[c] * row(c)[tid + m * kThreads] (the thread's dims d = tid, tid + 128), w in
// shared memory; rows with weight 0 are skipped (w[c] is the same for every thread: no divergence).
template <class RowFn>
__device__ void add_weighted_rows(const float* w, int n, RowFn row, int D, float (&acc)[kMaxDPerThread]) {
  for (int c = 0; c < n; ++c) {
    const float wc = w[c];
    if (wc == 0.f) continue;
    const auto* r = row(c);
#pragma unroll
    for (int m = 0; m < kMaxDPerThread; ++m) {
      const int d = threadIdx.x + m * kThreads;
      if (d < D) acc[m] += wc * to_f32(r[d]);
    }
  }
}

// grid (Sq, H, B). Shared: q row [D], probabilities of one key chunk [kThreads], reduction [32].
template <class T>
__global__ void __launch_bounds__(kThreads) reference_forward_kernel(Attn<T> a, T* o, float* lse) {
  extern __shared__ float sm[];
  float* qs = sm;
  float* ps = qs + a.D;
  float* red = ps + kThreads;
  const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / a.G, tid = threadIdx.x;
  const T* qrow = a.q_row(b, i, h);
  for (int d = tid; d < a.D; d += kThreads) qs[d] = to_f32(qrow[d]);
  __syncthreads();

  // pass 1: row max; pass 2: sum of exponentials -> LSE
  auto score = [&](int j) { return a.score(dot_row(qs, a.k_row(b, j, g), a.D), b, h, i, j); };
  float mx = kNegInf;
  for (int j = tid; j < a.Sk; j += kThreads) mx = fmaxf(mx, score(j));
  mx = block_max(mx, red);
  float sum = 0.f;
  if (mx != kNegInf)
    for (int j = tid; j < a.Sk; j += kThreads) sum += expf(score(j) - mx);
  sum = block_sum(sum, red);
  const float row_lse = sum > 0.f ? mx + logf(sum) : kNegInf;

  // pass 3: O = sum_j P_ij z_ij v_j (z: the dropout factors), a chunk of kThreads keys at a time;
  // thread tid owns d = tid, tid + 128
  float acc[kMaxDPerThread] = {};
  const uint64_t drop_key = a.drop_key(b, h, i);
  for (int j0 = 0; j0 < a.Sk; j0 += kThreads) {
    const int j = j0 + tid;
    float p = 0.f;
    if (j < a.Sk && row_lse != kNegInf) p = expf(score(j) - row_lse) * a.drop_factor(drop_key, j);
    ps[tid] = p;
    __syncthreads();
    add_weighted_rows(ps, min(kThreads, a.Sk - j0), [&](int c) { return a.v_row(b, j0 + c, g); }, a.D, acc);
    __syncthreads();
  }
  T* orow = o + a.o_off(b, i, h);
#pragma unroll
  for (int m = 0; m < kMaxDPerThread; ++m) {
    const int d = tid + m * kThreads;
    if (d < a.D) orow[d] = from_f32<T>(acc[m]);
  }
  if (tid == 0) lse[a.lse_off(b, h, i)] = row_lse;
}

// dQ. grid (Sq, H, B). Shared: q row, dO row [D each], dS of one key chunk [kThreads], reduction [32].
template <class T>
__global__ void __launch_bounds__(kThreads)
    reference_dq_kernel(Attn<T> a, const T* o, const T* dout, const float* lse, T* dq) {
  extern __shared__ float sm[];
  float* qs = sm;
  float* dos = qs + a.D;
  float* dss = dos + a.D;
  float* red = dss + kThreads;
  const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / a.G, tid = threadIdx.x;
  const T* qrow = a.q_row(b, i, h);
  const T* orow = o + a.o_off(b, i, h);
  const T* dorow = dout + a.o_off(b, i, h);
  float delta = 0.f;
  for (int d = tid; d < a.D; d += kThreads) {
    qs[d] = to_f32(qrow[d]);
    dos[d] = to_f32(dorow[d]);
    delta += dos[d] * to_f32(orow[d]);
  }
  delta = block_sum(delta, red);  // also publishes qs / dos (it synchronizes)
  const float row_lse = lse[a.lse_off(b, h, i)];

  float acc[kMaxDPerThread] = {};
  const uint64_t drop_key = a.drop_key(b, h, i);
  for (int j0 = 0; j0 < a.Sk; j0 += kThreads) {
    const int j = j0 + tid;
    float ds = 0.f;
    if (j < a.Sk && row_lse != kNegInf) {
      // dS = P (z dP - Delta): the dropout factor z scales the gradient reaching P (Delta = <dO, O>)
      const float p = expf(a.score(dot_row(qs, a.k_row(b, j, g), a.D), b, h, i, j) - row_lse);
      const float dp = dot_row(dos, a.v_row(b, j, g), a.D);
      ds = p * (a.drop_factor(drop_key, j) * dp - delta);
    }
    dss[tid] = ds;
    __syncthreads();
    add_weighted_rows(dss, min(kThreads, a.Sk - j0), [&](int c) { return a.k_row(b, j0 + c, g); }, a.D, acc);
    __syncthreads();
  }
  T* dqrow = dq + a.o_off(b, i, h);
#pragma unroll
  for (int m = 0; m < kMaxDPerThread; ++m) {
    const int d = tid + m * kThreads;
    if (d < a.D) dqrow[d] = from_f32<T>(a.scale * acc[m]);
  }
}

// dK and dV of one key row, summed over the G query heads of its group. grid (Sk, Hkv, B).
// Thread tid handles query i0 + tid of a chunk: its P_ij and dS_ij go to shared memory, then the
// block sums them into the row's D outputs. Shared: k row, v row [D each], P and dS chunks [kThreads].
template <class T>
__global__ void __launch_bounds__(kThreads)
    reference_dkdv_kernel(Attn<T> a, const T* o, const T* dout, const float* lse, T* dk, T* dv) {
  extern __shared__ float sm[];
  float* ks = sm;
  float* vs = ks + a.D;
  float* ps = vs + a.D;
  float* dss = ps + kThreads;
  const int j = blockIdx.x, g = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
  const T* krow = a.k_row(b, j, g);
  const T* vrow = a.v_row(b, j, g);
  for (int d = tid; d < a.D; d += kThreads) ks[d] = to_f32(krow[d]), vs[d] = to_f32(vrow[d]);
  __syncthreads();

  float acc_k[kMaxDPerThread] = {}, acc_v[kMaxDPerThread] = {};
  for (int h = g * a.G; h < (g + 1) * a.G; ++h)
    for (int i0 = 0; i0 < a.Sq; i0 += kThreads) {
      const int i = i0 + tid;
      float p = 0.f, ds = 0.f;
      if (i < a.Sq) {
        const float row_lse = lse[a.lse_off(b, h, i)];
        if (row_lse != kNegInf) {
          const T* qrow = a.q_row(b, i, h);
          const T* orow = o + a.o_off(b, i, h);
          const T* dorow = dout + a.o_off(b, i, h);
          float s = 0.f, dp = 0.f, delta = 0.f;
          for (int d = 0; d < a.D; ++d) {
            const float dod = to_f32(dorow[d]);
            s += to_f32(qrow[d]) * ks[d];
            dp += dod * vs[d];
            delta += dod * to_f32(orow[d]);
          }
          const float z = a.drop_factor(a.drop_key(b, h, i), j);
          p = expf(a.score(s, b, h, i, j) - row_lse);
          ds = p * (z * dp - delta);
          p *= z;  // dV takes P z, what multiplied V
        }
      }
      ps[tid] = p;
      dss[tid] = ds;
      __syncthreads();
      const int n = min(kThreads, a.Sq - i0);
      add_weighted_rows(ps, n, [&](int c) { return dout + a.o_off(b, i0 + c, h); }, a.D, acc_v);
      add_weighted_rows(dss, n, [&](int c) { return a.q_row(b, i0 + c, h); }, a.D, acc_k);
      __syncthreads();
    }
  const int64_t off = a.kv_off(b, j, g);
#pragma unroll
  for (int m = 0; m < kMaxDPerThread; ++m) {
    const int d = tid + m * kThreads;
    if (d < a.D) {
      dk[off + d] = from_f32<T>(a.scale * acc_k[m]);
      dv[off + d] = from_f32<T>(acc_v[m]);
    }
  }
}

// The weights P_ij = exp(s_ij - LSE_i), masked, before dropout (what the CPU's return_weights gives).
// grid (Sq, H, B); thread tid writes keys tid, tid + 128, ... of row i. Shared: the q row [D].
template <class T>
__global__ void __launch_bounds__(kThreads) reference_weights_kernel(Attn<T> a, const float* lse, T* weights) {
  extern __shared__ float sm[];
  float* qs = sm;
  const int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / a.G, tid = threadIdx.x;
  const T* qrow = a.q_row(b, i, h);
  for (int d = tid; d < a.D; d += kThreads) qs[d] = to_f32(qrow[d]);
  __syncthreads();
  const float row_lse = lse[a.lse_off(b, h, i)];
  T* wrow = weights + ((int64_t(b) * a.H + h) * a.Sq + i) * a.Sk;
  for (int j = tid; j < a.Sk; j += kThreads) {
    const float p = row_lse == kNegInf ? 0.f : expf(a.score(dot_row(qs, a.k_row(b, j, g), a.D), b, h, i, j) - row_lse);
    wrow[j] = from_f32<T>(p);
  }
}

}  // namespace

template <class T>
void reference_weights(const Attn<T>& a, const float* lse, T* weights, cudaStream_t s) {
  reference_weights_kernel<T><<<dim3(a.Sq, a.H, a.B), kThreads, size_t(a.D) * sizeof(float), s>>>(a, lse, weights);
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

template <class T>
void reference_forward(const Attn<T>& a, T* o, float* lse, cudaStream_t s) {
  const size_t smem = (size_t(a.D) + kThreads + 32) * sizeof(float);
  reference_forward_kernel<T><<<dim3(a.Sq, a.H, a.B), kThreads, smem, s>>>(a, o, lse);
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

template <class T>
void reference_backward(const Attn<T>& a, const T* o, const T* dout, const float* lse, T* dq, T* dk, T* dv,
                        cudaStream_t s) {
  const size_t smem = (2 * size_t(a.D) + 2 * kThreads + 32) * sizeof(float);
  reference_dq_kernel<T><<<dim3(a.Sq, a.H, a.B), kThreads, smem, s>>>(a, o, dout, lse, dq);
  ATTNLAB_CUDA_CHECK_LAUNCH();
  reference_dkdv_kernel<T><<<dim3(a.Sk, a.Hkv, a.B), kThreads, smem, s>>>(a, o, dout, lse, dk, dv);
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

#define ATTNLAB_INSTANTIATE(T)                                                                       \
  template void reference_forward<T>(const Attn<T>&, T*, float*, cudaStream_t);                      \
  template void reference_backward<T>(const Attn<T>&, const T*, const T*, const float*, T*, T*, T*, \
                                      cudaStream_t);                                                \
  template void reference_weights<T>(const Attn<T>&, const float*, T*, cudaStream_t);
ATTNLAB_INSTANTIATE(float)
ATTNLAB_INSTANTIATE(__nv_bfloat16)
ATTNLAB_INSTANTIATE(__half)
#undef ATTNLAB_INSTANTIATE

}  // namespace attnlab::kernels::cuda::detail
