// FlashAttention-2 backward on tensor cores (bf16/f16, D = 64 or 128): the dK/dV kernel, parallel over
// KV blocks, with the dQ contribution of each tile added into an f32 buffer (atomicAdd). Delta and the
// deterministic dQ pass are the SIMT kernels of flash_attention.cu.
//
// Grid (ceil(Sk / 64), Hkv, B), 128 threads = 4 warps; warp w owns keys j0 + 16w .. j0 + 16w + 15.
// K and V of the block stay in shared memory; for each query head of the GQA group and each tile of 32
// queries that can see the block (Q, dO, LSE, Delta loaded to shared memory):
//   S^T  = K Q^T         A = K rows (16 keys x D), B[k][n] = Q[query n][dim k]: 32-bit loads
//   dP^T = V dO^T        A = V rows,               B[k][n] = dO[query n][dim k]
//   P^T  = exp2(S^T scale log2e - LSE log2e),  dS^T = P^T (dP^T - Delta)   (registers, f32)
//   dV  += P^T dO        A = P^T (the C fragments of S^T reused, as P in the forward),
//                        B[k][n] = dO[query k][dim n]: two 16-bit loads of one column
//   dK  += dS^T Q        A = dS^T, B[k][n] = Q[query k][dim n]
//   dQ  += dS K          dS^T goes to shared memory query-major (16-bit); warp w then takes queries
//                        16 (w & 1) .. + 15 and dims (w >> 1) D/2 .. + D/2 - 1: A = dS rows (32-bit
//                        loads), B[k][n] = K[key k][dim n]; the products are atomicAdd-ed into dQ (f32).
// dK/dV accumulate in registers over the whole group (no atomics, no repeated K/V) and are written
// once, dK scaled by `scale`. Fragment layouts and the packing order: flash_attention_mma.cu.
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/flash_attention_common.cuh"
#include "kernels/cuda/flash_attention_mma.cuh"

namespace attnlab::kernels::cuda::detail {

namespace {

constexpr int kBc = 64, kBr = 32, kThreads = 128;
constexpr int kPS = kBc + 8;  // pitch of the query-major dS tile (16-bit elements)

// Dynamic shared memory: Ks, Vs [64][D+8], Qs, dOs [32][D+8], dSs [32][72] (16-bit), then LSE (log2
// units) and Delta [32] (f32). Every tile starts 16-byte aligned.
template <int D>
constexpr size_t bwd_smem_bytes() {
  return (size_t(2 * kBc) * (D + 8) + size_t(2 * kBr) * (D + 8) + size_t(kBr) * kPS) * 2 + 2 * kBr * sizeof(float);
}

template <class T>
__device__ __forceinline__ uint16_t to_bits(float x) {
  return uint16_t(Mma<T>::pack(x, 0.f) & 0xFFFFu);
}

template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    flash_mma_dkdv_kernel(Attn<T> a, const T* dout, const float* lse, const float* delta, T* dk, T* dv,
                          float* dq_acc) {
  constexpr int P = D + 8;
  extern __shared__ __align__(16) uint8_t smem[];
  uint16_t* Ks = reinterpret_cast<uint16_t*>(smem);
  uint16_t* Vs = Ks + kBc * P;
  uint16_t* Qs = Vs + kBc * P;
  uint16_t* dOs = Qs + kBr * P;
  uint16_t* dSs = dOs + kBr * P;
  float* lse_s = reinterpret_cast<float*>(dSs + kBr * kPS);
  float* delta_s = lse_s + kBr;

  const int g = blockIdx.y, b = blockIdx.z, j0 = blockIdx.x * kBc;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, gr = lane >> 2, tg = lane & 3;
  const int key[2] = {j0 + 16 * warp + gr, j0 + 16 * warp + gr + 8};  // rows of this thread's C fragments
  const uint16_t* kw = Ks + 16 * warp * P;  // the warp's 16 key rows
  const uint16_t* vw = Vs + 16 * warp * P;

  copy_rows<D>(Ks, kBc, [&](int c) { return j0 + c < a.Sk ? a.k_row(b, j0 + c, g) : nullptr; });
  copy_rows<D>(Vs, kBc, [&](int c) { return j0 + c < a.Sk ? a.v_row(b, j0 + c, g) : nullptr; });

  float dk_acc[D / 8][4], dv_acc[D / 8][4];
  zero_frags(dk_acc);
  zero_frags(dv_acc);
  const float scale_log2 = a.scale * kLog2e;
  const int i_start = (a.first_query(j0) / kBr) * kBr;  // causal: earlier queries see none of these keys

  for (int h = g * a.G; h < (g + 1) * a.G; ++h)
    for (int i0 = i_start; i0 < a.Sq; i0 += kBr) {
      __syncthreads();  // K/V loaded; the previous tile's readers are done
      copy_rows<D>(Qs, kBr, [&](int r) { return i0 + r < a.Sq ? a.q_row(b, i0 + r, h) : nullptr; });
      copy_rows<D>(dOs, kBr, [&](int r) { return i0 + r < a.Sq ? dout + a.o_off(b, i0 + r, h) : nullptr; });
      if (tid < kBr) {
        const int i = i0 + tid;
        lse_s[tid] = i < a.Sq ? lse[a.lse_off(b, h, i)] * kLog2e : kNegInf;
        delta_s[tid] = i < a.Sq ? delta[a.lse_off(b, h, i)] : 0.f;
      }
      __syncthreads();

      // S^T and dP^T for the warp's 16 keys x 32 queries (4 n-tiles of 8 queries).
      float st[kBr / 8][4], dpt[kBr / 8][4];
#pragma unroll
      for (int nt = 0; nt < kBr / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) st[nt][e] = dpt[nt][e] = 0.f;
        const uint16_t* qrow = Qs + (8 * nt + gr) * P + 2 * tg;
        const uint16_t* dorow = dOs + (8 * nt + gr) * P + 2 * tg;
#pragma unroll
        for (int kt = 0; kt < D / 16; ++kt) {
          const int c = 16 * kt + 2 * tg;
          const uint32_t ka[4] = {load_u32(kw + gr * P + c), load_u32(kw + (gr + 8) * P + c),
                                  load_u32(kw + gr * P + c + 8), load_u32(kw + (gr + 8) * P + c + 8)};
          const uint32_t va[4] = {load_u32(vw + gr * P + c), load_u32(vw + (gr + 8) * P + c),
                                  load_u32(vw + gr * P + c + 8), load_u32(vw + (gr + 8) * P + c + 8)};
          Mma<T>::run(st[nt], ka, load_u32(qrow + 16 * kt), load_u32(qrow + 16 * kt + 8));
          Mma<T>::run(dpt[nt], va, load_u32(dorow + 16 * kt), load_u32(dorow + 16 * kt + 8));
        }
      }

      // P^T = exp(s - LSE) where visible; with the dropout factors z: (P z)^T for dV and
      // dS^T = P^T (z dP^T - Delta).
#pragma unroll
      for (int nt = 0; nt < kBr / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = 8 * nt + 2 * tg + (e & 1), i = i0 + r, j = key[e >> 1];
          float p = 0.f;
          if (i < a.Sq && j < a.Sk && a.visible(i, j) && lse_s[r] != kNegInf)
            p = exp2f(st[nt][e] * scale_log2 - lse_s[r]);
          const float z = a.drop_factor(a.drop_key(b, h, i), j);
          st[nt][e] = p * z;
          dpt[nt][e] = p * (z * dpt[nt][e] - delta_s[r]);
        }

      // dV += P^T dO, dK += dS^T Q over 2 k-steps of 16 queries.
#pragma unroll
      for (int kk = 0; kk < kBr / 16; ++kk) {
        const uint32_t pa[4] = {Mma<T>::pack(st[2 * kk][0], st[2 * kk][1]), Mma<T>::pack(st[2 * kk][2], st[2 * kk][3]),
                                Mma<T>::pack(st[2 * kk + 1][0], st[2 * kk + 1][1]),
                                Mma<T>::pack(st[2 * kk + 1][2], st[2 * kk + 1][3])};
        const uint32_t sa[4] = {Mma<T>::pack(dpt[2 * kk][0], dpt[2 * kk][1]),
                                Mma<T>::pack(dpt[2 * kk][2], dpt[2 * kk][3]),
                                Mma<T>::pack(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]),
                                Mma<T>::pack(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3])};
        const uint16_t* dcol = dOs + (16 * kk + 2 * tg) * P + gr;  // queries 2tg, 2tg+1 (+8, +9) of the step
        const uint16_t* qcol = Qs + (16 * kk + 2 * tg) * P + gr;
#pragma unroll
        for (int nd = 0; nd < D / 8; ++nd) {
          Mma<T>::run(dv_acc[nd], pa, load_column_pair(dcol + 8 * nd, P), load_column_pair(dcol + 8 * nd + 8 * P, P));
          Mma<T>::run(dk_acc[nd], sa, load_column_pair(qcol + 8 * nd, P), load_column_pair(qcol + 8 * nd + 8 * P, P));
        }
      }

      if (dq_acc) {
        // dS to shared memory, query-major: element (key 16w + gr + 8(e>>1), query 8nt + 2tg + (e&1)).
#pragma unroll
        for (int nt = 0; nt < kBr / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            dSs[(8 * nt + 2 * tg + (e & 1)) * kPS + 16 * warp + gr + 8 * (e >> 1)] = to_bits<T>(dpt[nt][e]);
        __syncthreads();
        // dQ[32 x D] = dS[32 x 64] K[64 x D]: this warp's 16 queries x D/2 dims, 4 k-steps of 16 keys.
        const int qr0 = 16 * (warp & 1), d0 = (warp >> 1) * (D / 2);
        float dq[D / 16][4];
#pragma unroll
        for (int nd = 0; nd < D / 16; ++nd) dq[nd][0] = dq[nd][1] = dq[nd][2] = dq[nd][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < kBc / 16; ++kk) {
          const uint16_t* srow = dSs + (qr0 + gr) * kPS + 16 * kk + 2 * tg;
          const uint32_t da[4] = {load_u32(srow), load_u32(srow + 8 * kPS), load_u32(srow + 8),
                                  load_u32(srow + 8 * kPS + 8)};
          const uint16_t* kcol = Ks + (16 * kk + 2 * tg) * P + d0 + gr;
#pragma unroll
          for (int nd = 0; nd < D / 16; ++nd)
            Mma<T>::run(dq[nd], da, load_column_pair(kcol + 8 * nd, P), load_column_pair(kcol + 8 * nd + 8 * P, P));
        }
#pragma unroll
        for (int nd = 0; nd < D / 16; ++nd)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int i = i0 + qr0 + gr + 8 * (e >> 1), d = d0 + 8 * nd + 2 * tg + (e & 1);
            if (i < a.Sq && dq[nd][e] != 0.f) atomicAdd(dq_acc + a.o_off(b, i, h) + d, a.scale * dq[nd][e]);
          }
      }
    }

  // dK = scale dS^T Q, dV = P^T dO for this thread's two key rows, dims 8nd + 2tg, +1.
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const int j = key[rr];
    if (j >= a.Sk) continue;
    uint32_t* dkrow = reinterpret_cast<uint32_t*>(dk + a.kv_off(b, j, g));
    uint32_t* dvrow = reinterpret_cast<uint32_t*>(dv + a.kv_off(b, j, g));
#pragma unroll
    for (int nd = 0; nd < D / 8; ++nd) {
      dkrow[4 * nd + tg] = Mma<T>::pack(a.scale * dk_acc[nd][2 * rr], a.scale * dk_acc[nd][2 * rr + 1]);
      dvrow[4 * nd + tg] = Mma<T>::pack(dv_acc[nd][2 * rr], dv_acc[nd][2 * rr + 1]);
    }
  }
}

template <class T, int D>
void launch(const FlashArgs& args, const void* dout, const float* lse, const float* delta, void* dk, void* dv,
            float* dq_acc, cudaStream_t s) {
  const Attn<T> a = make_attn<T>(args);
  constexpr size_t smem = bwd_smem_bytes<D>();
  ATTNLAB_CUDA_CHECK(cudaFuncSetAttribute(flash_mma_dkdv_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          int(smem)));
  flash_mma_dkdv_kernel<T, D><<<dim3(ceil_div(a.Sk, kBc), a.Hkv, a.B), kThreads, smem, s>>>(
      a, static_cast<const T*>(dout), lse, delta, static_cast<T*>(dk), static_cast<T*>(dv), dq_acc);
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool mma_backward_supported(const FlashArgs& a, const void* dout, const void* dk, const void* dv) {
  return mma_forward_supported(a, dout) && aligned16(dk) && aligned16(dv);
}

void mma_dkdv(const FlashArgs& a, const void* dout, const float* lse, const float* delta, void* dk, void* dv,
              float* dq_acc, cudaStream_t s) {
  with_mma_shape(a, [&](auto t, auto d) { launch<decltype(t), decltype(d)::value>(a, dout, lse, delta, dk, dv, dq_acc, s); });
}

}  // namespace attnlab::kernels::cuda::detail
