// FlashAttention-2 on the GPU: the public entry points of attention.h (argument checks, dispatch
// between the reference, fast and readable tensor-core and SIMT kernels) and the SIMT tiled kernels,
// which serve f32, head dims other than 64/128 (any D <= 256), unaligned strides, key padding masks
// and additive biases, plus the readable tier's Delta preprocess and deterministic dQ pass for every
// type (the tensor-core dK/dV kernel is in flash_attention_mma_bwd.cu, the fast tier in
// flash_attention_fast*.cu).
//
// SIMT forward (flash_simt_forward_kernel), grid (ceil(Sq / 16), H, B), 128 threads = 4 warps:
//   the block holds Q rows q0..q0+15 (warp w owns rows 4w..4w+3) and streams K/V tiles of 32 keys
//   through shared memory (f32). Lane l scores key l of the tile against its warp's 4 rows; the online
//   softmax (running max m, sum l, rescaled accumulator) is kept per row; lane l accumulates output
//   dims l, l+32, ..., so P V reads V rows contiguously. Causal: tiles past the last visible key of
//   the block's last row are never loaded.
//
// Backward, after the preprocess Delta_i = <dO_i, O_i> (one warp per row):
//   flash_simt_dkdv_kernel, grid (ceil(Sk / 16), Hkv, B): K/V rows j0..j0+15 stay in shared memory;
//     for each query head of the group and each 16-query tile that can see them, P = exp(s - LSE) and
//     dS = P (dP - Delta) are recomputed into a 16x16 tile, and dV += P^T dO, dK += scale dS^T Q are
//     accumulated in shared memory (one owner thread per element, fixed order). GQA needs no atomics
//     and no repeated K/V: the group's heads are summed inside the block.
//     Unless deterministic, the same tile also adds dQ += scale dS K into an f32 buffer (atomicAdd).
//   flash_simt_dq_kernel (deterministic), grid (ceil(Sq / 16), H, B): owns dQ rows q0..q0+15 and
//     walks the key tiles, recomputing the same dS tile; one owner thread per element.
#include <algorithm>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/flash_attention_common.cuh"
#include "kernels/cuda/runtime.h"
#include "kernels/error.h"

namespace attnlab::kernels::cuda {

namespace detail {

namespace {

constexpr int kThreads = 128;
constexpr int kMaxD = 256;

// ---- forward -------------------------------------------------------------------------------------
constexpr int kFwdRows = 16;     // query rows per block (4 per warp)
constexpr int kFwdKeys = 32;     // keys per tile (one per lane)
constexpr int kRowsPerWarp = 4;
constexpr int kDimsPerLane = kMaxD / 32;

size_t simt_forward_smem(int D) {
  // Qs [16][D+1], Ks [32][D+1], Vs [32][D], Ps [16][32]; the odd row pitch D+1 keeps lane l's reads of
  // key row l on distinct banks.
  return (size_t(kFwdRows) * (D + 1) + size_t(kFwdKeys) * (D + 1) + size_t(kFwdKeys) * D +
          kFwdRows * kFwdKeys) * sizeof(float);
}

template <class T>
__global__ void __launch_bounds__(kThreads) flash_simt_forward_kernel(Attn<T> a, T* o, float* lse) {
  extern __shared__ float sm[];
  const int D = a.D, Dp = D + 1;
  float* Qs = sm;
  float* Ks = Qs + kFwdRows * Dp;
  float* Vs = Ks + kFwdKeys * Dp;
  float* Ps = Vs + kFwdKeys * D;
  const int h = blockIdx.y, b = blockIdx.z, g = h / a.G;
  // Under causal masking the last query blocks see the most keys: start them first.
  const int q0 = (a.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x) * kFwdRows;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  for (int e = tid; e < kFwdRows * D; e += kThreads) {
    const int r = e / D, d = e % D, i = q0 + r;
    Qs[r * Dp + d] = i < a.Sq ? to_f32(a.q_row(b, i, h)[d]) : 0.f;
  }

  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kDimsPerLane];
  reset_softmax_rows(m, l, acc);
  const int row0 = warp * kRowsPerWarp;  // this warp's first row in the tile
  uint64_t drop_key[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) drop_key[r] = a.drop_key(b, h, q0 + row0 + r);
  const int key_end = a.key_end(min(q0 + kFwdRows, a.Sq) - 1);

  for (int k0 = 0; k0 < key_end; k0 += kFwdKeys) {
    __syncthreads();  // previous tile fully consumed (and Qs written, the first time)
    for (int e = tid; e < kFwdKeys * D; e += kThreads) {
      const int c = e / D, d = e % D, j = k0 + c;
      const bool in = j < a.Sk;
      Ks[c * Dp + d] = in ? to_f32(a.k_row(b, j, g)[d]) : 0.f;
      Vs[c * D + d] = in ? to_f32(a.v_row(b, j, g)[d]) : 0.f;
    }
    __syncthreads();

    // scores of key k0 + lane against the warp's rows
    float s[kRowsPerWarp] = {};
    for (int d = 0; d < D; ++d) {
      const float kd = Ks[lane * Dp + d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) s[r] += Qs[(row0 + r) * Dp + d] * kd;
    }
    const int j = k0 + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int i = q0 + row0 + r;
      const float x = (j < a.Sk && i < a.Sq) ? a.score(s[r], b, h, i, j) : kNegInf;
      const float m_new = fmaxf(m[r], warp_max(x));
      // m_use avoids (-inf) - (-inf) while the row has seen no key: p and alpha are then 0.
      const float m_use = m_new == kNegInf ? 0.f : m_new;
      const float p = expf(x - m_use);
      const float alpha = expf(m[r] - m_use);
      l[r] = l[r] * alpha + warp_sum(p);
      m[r] = m_new;
#pragma unroll
      for (int u = 0; u < kDimsPerLane; ++u) acc[r][u] *= alpha;
      Ps[(row0 + r) * kFwdKeys + lane] = p * a.drop_factor(drop_key[r], j);  // l sums the undropped p
    }
    __syncwarp();
    const int n = min(kFwdKeys, a.Sk - k0);
    for (int c = 0; c < n; ++c) {
      float vc[kDimsPerLane];
#pragma unroll
      for (int u = 0; u < kDimsPerLane; ++u) {
        const int d = lane + 32 * u;
        vc[u] = d < D ? Vs[c * D + d] : 0.f;
      }
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const float p = Ps[(row0 + r) * kFwdKeys + c];
#pragma unroll
        for (int u = 0; u < kDimsPerLane; ++u) acc[r][u] += p * vc[u];
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int i = q0 + row0 + r;
    if (i >= a.Sq) continue;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
    T* orow = o + a.o_off(b, i, h);
#pragma unroll
    for (int u = 0; u < kDimsPerLane; ++u) {
      const int d = lane + 32 * u;
      if (d < D) orow[d] = from_f32<T>(acc[r][u] * inv);
    }
    if (lane == 0) lse[a.lse_off(b, h, i)] = l[r] > 0.f ? m[r] + logf(l[r]) : kNegInf;
  }
}

// ---- backward ------------------------------------------------------------------------------------
constexpr int kBwdTile = 16;  // queries and keys per tile

// Delta_i = <dO_i, O_i> in f32, one warp per (b, i, h) row of the contiguous [B, Sq, H, D] tensors.
template <class T>
__global__ void __launch_bounds__(kThreads)
    flash_delta_kernel(Attn<T> a, const T* o, const T* dout, float* delta) {
  const int64_t row = int64_t(blockIdx.x) * (kThreads / 32) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= int64_t(a.B) * a.Sq * a.H) return;
  const int h = int(row % a.H), i = int((row / a.H) % a.Sq), b = int(row / (int64_t(a.H) * a.Sq));
  const T* orow = o + row * a.D;
  const T* dorow = dout + row * a.D;
  float s = 0.f;
  for (int d = lane; d < a.D; d += 32) s += to_f32(orow[d]) * to_f32(dorow[d]);
  s = warp_sum(s);
  if (lane == 0) delta[a.lse_off(b, h, i)] = s;
}

// f32 -> T, n elements (convert_from_f32).
template <class T>
__global__ void convert_kernel(const float* in, T* out, int64_t n) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    out[e] = from_f32<T>(in[e]);
}

// Shared-memory tiles of the backward kernels (f32; pitch D+1 for rows read across lanes).
struct BwdSmem {
  float *Qs, *dOs, *Ks, *Vs;  // [16][D+1]
  float *acc0, *acc1;         // [16][D]: dK/dV accumulators, or dQ (acc0) in the dQ kernel
  float *Ps, *dSs;            // [16][17]
  float *lse, *delta;         // [16]
  __device__ BwdSmem(float* sm, int D) {
    const int tile = kBwdTile * (D + 1);
    Qs = sm, dOs = Qs + tile, Ks = dOs + tile, Vs = Ks + tile;
    acc0 = Vs + tile, acc1 = acc0 + kBwdTile * D;
    Ps = acc1 + kBwdTile * D, dSs = Ps + kBwdTile * (kBwdTile + 1);
    lse = dSs + kBwdTile * (kBwdTile + 1), delta = lse + kBwdTile;
  }
};

size_t simt_backward_smem(int D) {
  return (4 * size_t(kBwdTile) * (D + 1) + 2 * size_t(kBwdTile) * D + 2 * kBwdTile * (kBwdTile + 1) +
          2 * kBwdTile) * sizeof(float);
}

// Rows i0.. of Q and dO for head h, with their LSE and Delta (LSE = -inf past Sq: P = 0 there).
template <class T>
__device__ void load_query_tile(const Attn<T>& a, const BwdSmem& t, const T* dout, const float* lse,
                                const float* delta, int b, int h, int i0) {
  const int D = a.D, Dp = D + 1;
  for (int e = threadIdx.x; e < kBwdTile * D; e += kThreads) {
    const int r = e / D, d = e % D, i = i0 + r;
    const bool in = i < a.Sq;
    t.Qs[r * Dp + d] = in ? to_f32(a.q_row(b, i, h)[d]) : 0.f;
    t.dOs[r * Dp + d] = in ? to_f32(dout[a.o_off(b, i, h) + d]) : 0.f;
  }
  if (threadIdx.x < kBwdTile) {
    const int i = i0 + threadIdx.x;
    t.lse[threadIdx.x] = i < a.Sq ? lse[a.lse_off(b, h, i)] : kNegInf;
    t.delta[threadIdx.x] = i < a.Sq ? delta[a.lse_off(b, h, i)] : 0.f;
  }
}

// Rows j0.. of K and V of KV head g (zeros past Sk).
template <class T>
__device__ void load_key_tile(const Attn<T>& a, const BwdSmem& t, int b, int g, int j0) {
  const int D = a.D, Dp = D + 1;
  for (int e = threadIdx.x; e < kBwdTile * D; e += kThreads) {
    const int c = e / D, d = e % D, j = j0 + c;
    const bool in = j < a.Sk;
    t.Ks[c * Dp + d] = in ? to_f32(a.k_row(b, j, g)[d]) : 0.f;
    t.Vs[c * Dp + d] = in ? to_f32(a.v_row(b, j, g)[d]) : 0.f;
  }
}

// The 16x16 tile of P_ij z_ij (P_ij = exp(s_ij - LSE_i), z_ij the dropout factor: what multiplied V)
// and dS_ij = P_ij (z_ij <dO_i, v_j> - Delta_i) for queries i0 + r of head h, keys j0 + c, from the
// tiles in shared memory; 0 where masked or out of range.
template <class T>
__device__ void p_ds_tile(const Attn<T>& a, const BwdSmem& t, int b, int h, int i0, int j0) {
  const int D = a.D, Dp = D + 1;
  for (int e = threadIdx.x; e < kBwdTile * kBwdTile; e += kThreads) {
    const int r = e / kBwdTile, c = e % kBwdTile, i = i0 + r, j = j0 + c;
    float pz = 0.f, ds = 0.f;
    if (i < a.Sq && j < a.Sk && t.lse[r] != kNegInf && !a.masked(b, i, j)) {
      float s = 0.f, dp = 0.f;
      const float offset = a.bias_at(b, h, i, j) - t.lse[r];  // before the loop: no bias address live in it
      for (int d = 0; d < D; ++d) {
        s += t.Qs[r * Dp + d] * t.Ks[c * Dp + d];
        dp += t.dOs[r * Dp + d] * t.Vs[c * Dp + d];
      }
      const float p = expf(a.scale * s + offset);
      const float z = a.drop_factor(a.drop_key(b, h, i), j);
      pz = p * z;
      ds = p * (z * dp - t.delta[r]);
    }
    t.Ps[r * (kBwdTile + 1) + c] = pz;
    t.dSs[r * (kBwdTile + 1) + c] = ds;
  }
}

// minBlocks = 1: without it ptxas aims at a low register count here and spills (ptxas -v).
template <class T>
__global__ void __launch_bounds__(kThreads, 1)
    flash_simt_dkdv_kernel(Attn<T> a, const T* dout, const float* lse, const float* delta, T* dk, T* dv,
                           float* dq_acc) {
  extern __shared__ float sm[];
  const BwdSmem t(sm, a.D);
  const int D = a.D, Dp = D + 1, g = blockIdx.y, b = blockIdx.z, j0 = blockIdx.x * kBwdTile;
  load_key_tile(a, t, b, g, j0);
  for (int e = threadIdx.x; e < kBwdTile * D; e += kThreads) t.acc0[e] = 0.f, t.acc1[e] = 0.f;
  // Queries before first_query(j0) see none of these keys (causal); start at their tile.
  const int i_start = (a.first_query(j0) / kBwdTile) * kBwdTile;

  for (int h = g * a.G; h < (g + 1) * a.G; ++h)
    for (int i0 = i_start; i0 < a.Sq; i0 += kBwdTile) {
      __syncthreads();  // the previous tile's readers are done (and the K/V tile is loaded)
      load_query_tile(a, t, dout, lse, delta, b, h, i0);
      __syncthreads();
      p_ds_tile(a, t, b, h, i0, j0);
      __syncthreads();
      // dV[c][d] += sum_r P[r][c] dO[r][d],  dK[c][d] += scale sum_r dS[r][c] Q[r][d]
      for (int e = threadIdx.x; e < kBwdTile * D; e += kThreads) {
        const int c = e / D, d = e % D;
        float sk = 0.f, sv = 0.f;
#pragma unroll
        for (int r = 0; r < kBwdTile; ++r) {
          sv += t.Ps[r * (kBwdTile + 1) + c] * t.dOs[r * Dp + d];
          sk += t.dSs[r * (kBwdTile + 1) + c] * t.Qs[r * Dp + d];
        }
        t.acc0[e] += a.scale * sk;
        t.acc1[e] += sv;
      }
      if (dq_acc) {  // dQ[r][d] += scale sum_c dS[r][c] K[c][d], other KV blocks add concurrently
        for (int e = threadIdx.x; e < kBwdTile * D; e += kThreads) {
          const int r = e / D, d = e % D, i = i0 + r;
          if (i >= a.Sq) continue;
          float s = 0.f;
#pragma unroll
          for (int c = 0; c < kBwdTile; ++c) s += t.dSs[r * (kBwdTile + 1) + c] * t.Ks[c * Dp + d];
          if (s != 0.f) atomicAdd(dq_acc + a.o_off(b, i, h) + d, a.scale * s);
        }
      }
    }
  __syncthreads();
  for (int e = threadIdx.x; e < kBwdTile * D; e += kThreads) {
    const int c = e / D, d = e % D, j = j0 + c;
    if (j >= a.Sk) continue;
    dk[a.kv_off(b, j, g) + d] = from_f32<T>(t.acc0[e]);
    dv[a.kv_off(b, j, g) + d] = from_f32<T>(t.acc1[e]);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    flash_simt_dq_kernel(Attn<T> a, const T* dout, const float* lse, const float* delta, T* dq) {
  extern __shared__ float sm[];
  const BwdSmem t(sm, a.D);
  const int D = a.D, Dp = D + 1, h = blockIdx.y, b = blockIdx.z, g = h / a.G, i0 = blockIdx.x * kBwdTile;
  load_query_tile(a, t, dout, lse, delta, b, h, i0);
  for (int e = threadIdx.x; e < kBwdTile * D; e += kThreads) t.acc0[e] = 0.f;
  const int key_end = a.key_end(min(i0 + kBwdTile, a.Sq) - 1);
  for (int j0 = 0; j0 < key_end; j0 += kBwdTile) {
    __syncthreads();
    load_key_tile(a, t, b, g, j0);
    __syncthreads();
    p_ds_tile(a, t, b, h, i0, j0);
    __syncthreads();
    for (int e = threadIdx.x; e < kBwdTile * D; e += kThreads) {
      const int r = e / D, d = e % D;
      float s = 0.f;
#pragma unroll
      for (int c = 0; c < kBwdTile; ++c) s += t.dSs[r * (kBwdTile + 1) + c] * t.Ks[c * Dp + d];
      t.acc0[e] += s;
    }
  }
  __syncthreads();
  for (int e = threadIdx.x; e < kBwdTile * D; e += kThreads) {
    const int r = e / D, d = e % D, i = i0 + r;
    if (i < a.Sq) dq[a.o_off(b, i, h) + d] = from_f32<T>(a.scale * t.acc0[e]);
  }
}

// Kernels whose dynamic shared memory may exceed the default 48 KiB need the opt-in attribute.
template <class Kernel>
void set_smem(Kernel kernel, size_t bytes) {
  ATTNLAB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

}  // namespace

// Kernel scratch of n floats from the caching allocator, returned when it goes out of scope. The
// return is stream-ordered: the allocator hands the block out again only to later work on the same
// stream, which runs after the kernels that use it.
struct Scratch {
  float* p = nullptr;
  size_t bytes;
  int device;
  Scratch(int64_t n, int dev) : bytes(size_t(n) * sizeof(float)), device(dev) {
    if (bytes) p = static_cast<float*>(device_alloc(bytes, dev));
  }
  ~Scratch() {
    if (p) device_free(p, bytes, device);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

template <class T>
void convert_from_f32(const float* in, T* out, int64_t n, cudaStream_t s) {
  convert_kernel<T><<<unsigned(std::min<int64_t>((n + 255) / 256, 65535)), 256, 0, s>>>(in, out, n);
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

template <class T>
void simt_forward(const Attn<T>& a, T* o, float* lse, cudaStream_t s) {
  const size_t smem = simt_forward_smem(a.D);
  set_smem(flash_simt_forward_kernel<T>, smem);
  flash_simt_forward_kernel<T><<<dim3(ceil_div(a.Sq, kFwdRows), a.H, a.B), kThreads, smem, s>>>(a, o, lse);
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

// The fast tier's backward (flash_attention_fast_bwd.cu) when it takes the arguments: its row
// statistics, the zeroed f32 dQ buffer unless deterministic, then dQ converted. False otherwise.
template <class T>
bool fast_backward_if_supported(const FlashArgs& args, const T* o, const T* dout, const float* lse, T* dq, T* dk,
                                T* dv, bool deterministic, int device, cudaStream_t s) {
  if (!fast_supported(args, dout) || !aligned16(o) || !aligned16(dq) || !aligned16(dk) || !aligned16(dv))
    return false;
  const int64_t n = args.B * args.Sq * args.H * args.D;
  Scratch stats(fast_stats_floats(args), device), dq_acc(deterministic ? 0 : n, device);
  if (dq_acc.p) ATTNLAB_CUDA_CHECK(cudaMemsetAsync(dq_acc.p, 0, dq_acc.bytes, s));
  fast_backward(args, o, dout, lse, stats.p, dq, dk, dv, dq_acc.p, s);
  if (dq_acc.p) convert_from_f32<T>(dq_acc.p, dq, n, s);
  return true;
}

// Delta, then dK/dV (tensor cores when supported, else SIMT) with the atomic dQ, or the SIMT dQ kernel
// when deterministic.
template <class T>
void optimized_backward(const FlashArgs& args, const Attn<T>& a, const T* o, const T* dout, const float* lse, T* dq,
                        T* dk, T* dv, bool deterministic, int device, cudaStream_t s) {
  const int64_t rows = int64_t(a.B) * a.Sq * a.H;
  Scratch delta(rows, device), dq_acc(deterministic ? 0 : rows * a.D, device);
  flash_delta_kernel<T><<<ceil_div(rows, kThreads / 32), kThreads, 0, s>>>(a, o, dout, delta.p);
  ATTNLAB_CUDA_CHECK_LAUNCH();
  if (dq_acc.p) ATTNLAB_CUDA_CHECK(cudaMemsetAsync(dq_acc.p, 0, dq_acc.bytes, s));
  const size_t smem = simt_backward_smem(a.D);
  if (mma_backward_supported(args, dout, dk, dv)) {
    mma_dkdv(args, dout, lse, delta.p, dk, dv, dq_acc.p, s);
  } else {
    set_smem(flash_simt_dkdv_kernel<T>, smem);
    flash_simt_dkdv_kernel<T><<<dim3(ceil_div(a.Sk, kBwdTile), a.Hkv, a.B), kThreads, smem, s>>>(
        a, dout, lse, delta.p, dk, dv, dq_acc.p);
    ATTNLAB_CUDA_CHECK_LAUNCH();
  }
  if (dq_acc.p) {
    convert_from_f32<T>(dq_acc.p, dq, rows * a.D, s);
  } else {
    set_smem(flash_simt_dq_kernel<T>, smem);
    flash_simt_dq_kernel<T><<<dim3(ceil_div(a.Sq, kBwdTile), a.H, a.B), kThreads, smem, s>>>(a, dout, lse,
                                                                                             delta.p, dq);
    ATTNLAB_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace detail

// ---- public API ----------------------------------------------------------------------------------

const char* elem_type_name(ElemType t) {
  switch (t) {
    case ElemType::f32: return "f32";
    case ElemType::bf16: return "bf16";
    case ElemType::f16: return "f16";
  }
  return "?";
}

int elem_size(ElemType t) { return t == ElemType::f32 ? 4 : 2; }

const char* variant_name(Variant v) {
  switch (v) {
    case Variant::reference: return "reference";
    case Variant::optimized: return "optimized";
    case Variant::fast: return "fast";
  }
  return "?";
}

FlashArgs flash_args(ElemType dtype, int64_t B, int64_t Sq, int64_t Sk, int64_t H, int64_t Hkv, int64_t D,
                     const void* q, const void* k, const void* v) {
  FlashArgs a;
  a.dtype = dtype;
  a.B = B, a.Sq = Sq, a.Sk = Sk, a.H = H, a.Hkv = Hkv, a.D = D;
  a.q = q, a.q_stride_b = Sq * H * D, a.q_stride_s = H * D, a.q_stride_h = D;
  a.k = k, a.k_stride_b = Sk * Hkv * D, a.k_stride_s = Hkv * D, a.k_stride_h = D;
  a.v = v, a.v_stride_b = Sk * Hkv * D, a.v_stride_s = Hkv * D, a.v_stride_h = D;
  a.scale = D > 0 ? float(1.0 / std::sqrt(double(D))) : 0.f;
  return a;
}

void check_flash_args(const FlashArgs& a, const char* op) {
  auto fail = [&](const std::string& why) { throw Error(cat(op, ": ", why)); };
  if (a.B < 1 || a.Sq < 1 || a.Sk < 1 || a.H < 1 || a.Hkv < 1 || a.D < 1)
    fail(cat("every dimension must be >= 1, got B=", a.B, " Sq=", a.Sq, " Sk=", a.Sk, " H=", a.H, " Hkv=", a.Hkv,
             " D=", a.D));
  if (a.D > detail::kMaxD) fail(cat("head dim ", a.D, " > ", detail::kMaxD, " is not supported on CUDA"));
  if (a.H % a.Hkv != 0) fail(cat("H=", a.H, " is not a multiple of Hkv=", a.Hkv));
  if (a.B > 65535 || a.H > 65535 || a.Sq > (int64_t(1) << 30) || a.Sk > (int64_t(1) << 30))
    fail("sizes exceed the CUDA grid (B, H <= 65535, Sq, Sk <= 2^30)");
  if (!a.q || !a.k || !a.v) fail("null Q, K or V pointer");
  if (!std::isfinite(a.scale)) fail("scale is not finite");
  if (!(a.dropout_p >= 0 && a.dropout_p < 1)) fail(cat("dropout_p must be in [0, 1), got ", a.dropout_p));
}

void flash_forward(const FlashArgs& a, void* o, float* lse, int device, Variant variant) {
  check_flash_args(a, "flash_forward");
  if (!o || !lse) throw Error("flash_forward: null O or LSE pointer");
  set_device(device);
  cudaStream_t s = current_stream(device);
  if (variant == Variant::fast && detail::fast_supported(a, o)) return detail::fast_forward(a, o, lse, s);
  if (variant != Variant::reference && detail::mma_forward_supported(a, o)) return detail::mma_forward(a, o, lse, s);
  detail::with_elem(a.dtype, [&](auto zero) {
    using T = decltype(zero);
    const auto t = detail::make_attn<T>(a);
    if (variant == Variant::reference)
      detail::reference_forward(t, static_cast<T*>(o), lse, s);
    else
      detail::simt_forward(t, static_cast<T*>(o), lse, s);
  });
}

void flash_backward(const FlashArgs& a, const void* o, const void* dout, const float* lse, void* dq, void* dk,
                    void* dv, int device, Variant variant, bool deterministic) {
  check_flash_args(a, "flash_backward");
  if (!o || !dout || !lse || !dq || !dk || !dv) throw Error("flash_backward: null O, dO, LSE, dQ, dK or dV pointer");
  set_device(device);
  cudaStream_t s = current_stream(device);
  detail::with_elem(a.dtype, [&](auto zero) {
    using T = decltype(zero);
    const auto t = detail::make_attn<T>(a);
    const T *o_t = static_cast<const T*>(o), *do_t = static_cast<const T*>(dout);
    T *dq_t = static_cast<T*>(dq), *dk_t = static_cast<T*>(dk), *dv_t = static_cast<T*>(dv);
    if (variant == Variant::reference)
      detail::reference_backward(t, o_t, do_t, lse, dq_t, dk_t, dv_t, s);
    else if (variant != Variant::fast ||
             !detail::fast_backward_if_supported(a, o_t, do_t, lse, dq_t, dk_t, dv_t, deterministic, device, s))
      detail::optimized_backward(a, t, o_t, do_t, lse, dq_t, dk_t, dv_t, deterministic, device, s);
  });
}

void flash_weights(const FlashArgs& a, const float* lse, void* weights, int device) {
  check_flash_args(a, "flash_weights");
  if (!lse || !weights) throw Error("flash_weights: null LSE or weights pointer");
  set_device(device);
  detail::with_elem(a.dtype, [&](auto zero) {
    using T = decltype(zero);
    detail::reference_weights(detail::make_attn<T>(a), lse, static_cast<T*>(weights), current_stream(device));
  });
}

}  // namespace attnlab::kernels::cuda
