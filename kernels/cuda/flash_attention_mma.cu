// FlashAttention-2 forward on tensor cores: bf16/f16 inputs, f32 accumulation, head dim 64 or 128.
//
// Grid (ceil(Sq / 64), H, B), 128 threads = 4 warps; warp w owns query rows q0 + 16w .. q0 + 16w + 15.
// Per block: K and V tiles of 64 keys in shared memory (16-bit, row pitch D + 8 elements so the
// fragment loads below hit 32 distinct banks); Q stays in registers as mma A fragments for the whole
// key loop; S, P and the O accumulator never leave registers.
//
// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}: D[16x8] += A[16x16] B[16x8]. With lane = 4 gr + tg
// (PTX ISA "Matrix Fragments for mma.m16n8k16 with floating point type"):
//   A: reg0 = (row gr,   cols 2tg, 2tg+1)   reg1 = (row gr+8, cols 2tg, 2tg+1)
//      reg2 = (row gr,   cols 2tg+8, +9)    reg3 = (row gr+8, cols 2tg+8, +9)
//   B: reg0 = (rows 2tg, 2tg+1; col gr)     reg1 = (rows 2tg+8, 2tg+9; col gr)
//   C: c0, c1 = (row gr, cols 2tg, 2tg+1)   c2, c3 = (row gr+8, cols 2tg, 2tg+1)
// the lower-indexed element of a pair in the low 16 bits. Hence:
//   S = Q K^T: A = Q rows (k = head dim), B[k][n] = K[key n][dim k], i.e. two consecutive dims of one
//     key row: one 32-bit shared load per register.
//   O += P V: the C fragments of S for keys 16kk..16kk+7 and 16kk+8..+15 are exactly the A fragment of
//     P for k-step kk (FlashAttention-2's register reuse): reg0 = S[2kk].c0c1, reg1 = S[2kk].c2c3,
//     reg2 = S[2kk+1].c0c1, reg3 = S[2kk+1].c2c3, rounded to 16 bits. B[k][n] = V[key k][dim n]: two
//     keys of one column, read as two 16-bit shared loads (ldmatrix.trans would do it in one; kept
//     simple until it can be measured).
// Each thread owns rows gr and gr + 8 of its warp's 16: the row max and sum reduce over the 4 lanes of
// a quad (shuffle xor 1, 2). Scores are kept in log2 units (scale * log2 e), exponentials by exp2f.
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/flash_attention_common.cuh"
#include "kernels/cuda/flash_attention_mma.cuh"

namespace attnlab::kernels::cuda::detail {

namespace {

constexpr int kBr = 64, kBc = 64, kThreads = 128;

template <class T, int D>
__global__ void __launch_bounds__(kThreads) flash_mma_forward_kernel(Attn<T> a, T* o, float* lse) {
  constexpr int P = D + 8;  // shared row pitch in elements (16-byte multiple: rows stay uint4-aligned)
  __shared__ __align__(16) uint16_t Ks[kBc * P];
  __shared__ __align__(16) uint16_t Vs[kBc * P];
  const int h = blockIdx.y, b = blockIdx.z, g = h / a.G;
  const int q0 = int(a.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x) * kBr;  // heavy blocks first
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, gr = lane >> 2, tg = lane & 3;
  const int row[2] = {q0 + warp * 16 + gr, q0 + warp * 16 + gr + 8};  // this thread's two query rows
  const uint64_t drop_key[2] = {a.drop_key(b, h, row[0]), a.drop_key(b, h, row[1])};

  // Q as A fragments, loaded once from global memory (rows past Sq are zero).
  uint32_t qa[D / 16][4];
  {
    const uint16_t* qr0 = row[0] < a.Sq ? reinterpret_cast<const uint16_t*>(a.q_row(b, row[0], h)) : nullptr;
    const uint16_t* qr1 = row[1] < a.Sq ? reinterpret_cast<const uint16_t*>(a.q_row(b, row[1], h)) : nullptr;
#pragma unroll
    for (int kt = 0; kt < D / 16; ++kt) {
      const int c = 16 * kt + 2 * tg;
      qa[kt][0] = load_pair(qr0, c), qa[kt][1] = load_pair(qr1, c);
      qa[kt][2] = load_pair(qr0, c + 8), qa[kt][3] = load_pair(qr1, c + 8);
    }
  }

  float oacc[D / 8][4];
  zero_frags(oacc);
  float m[2] = {kNegInf, kNegInf}, l[2] = {0.f, 0.f};  // l: this thread's partial row sums
  const float scale_log2 = a.scale * kLog2e;
  const int key_end = a.key_end(min(q0 + kBr, a.Sq) - 1);

  for (int k0 = 0; k0 < key_end; k0 += kBc) {
    __syncthreads();  // every warp is done with the previous tile
    copy_rows<D>(Ks, kBc, [&](int c) { return k0 + c < a.Sk ? a.k_row(b, k0 + c, g) : nullptr; });
    copy_rows<D>(Vs, kBc, [&](int c) { return k0 + c < a.Sk ? a.v_row(b, k0 + c, g) : nullptr; });
    __syncthreads();

    // S = Q K^T for the warp's 16 rows x 64 keys: 8 n-tiles of 8 keys.
    float s[kBc / 8][4];
#pragma unroll
    for (int nt = 0; nt < kBc / 8; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
      const uint16_t* krow = &Ks[(8 * nt + gr) * P + 2 * tg];
#pragma unroll
      for (int kt = 0; kt < D / 16; ++kt)
        Mma<T>::run(s[nt], qa[kt], load_u32(krow + 16 * kt), load_u32(krow + 16 * kt + 8));
    }

    // Scale to log2 units; mask keys past Sk and, causal, past each row's diagonal.
    const bool edge = k0 + kBc > a.Sk || (a.causal && k0 + kBc - 1 > q0 + (a.Sk - a.Sq));
#pragma unroll
    for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nt][e] * scale_log2;
        if (edge) {
          const int j = k0 + 8 * nt + 2 * tg + (e & 1), i = row[e >> 1];
          if (j >= a.Sk || !a.visible(i, j)) x = kNegInf;
        }
        s[nt][e] = x;
      }

    // Online softmax, rows gr (c0, c1) and gr + 8 (c2, c3).
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float mx = kNegInf;
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * rr], s[nt][2 * rr + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[rr], mx);
      const float m_use = m_new == kNegInf ? 0.f : m_new;  // no (-inf) - (-inf) before the first key
      const float alpha = exp2f(m[rr] - m_use);
      m[rr] = m_new;
      l[rr] *= alpha;
#pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) oacc[nd][2 * rr] *= alpha, oacc[nd][2 * rr + 1] *= alpha;
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt) {
        const float p0 = exp2f(s[nt][2 * rr] - m_use), p1 = exp2f(s[nt][2 * rr + 1] - m_use);
        l[rr] += p0 + p1;  // the softmax sums the undropped probabilities; V sees them times z
        const int j = k0 + 8 * nt + 2 * tg;
        s[nt][2 * rr] = p0 * a.drop_factor(drop_key[rr], j), s[nt][2 * rr + 1] = p1 * a.drop_factor(drop_key[rr], j + 1);
      }
    }

    // O += P V over 4 k-steps of 16 keys.
#pragma unroll
    for (int kk = 0; kk < kBc / 16; ++kk) {
      const uint32_t pa[4] = {Mma<T>::pack(s[2 * kk][0], s[2 * kk][1]), Mma<T>::pack(s[2 * kk][2], s[2 * kk][3]),
                              Mma<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              Mma<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      const uint16_t* v0 = &Vs[(16 * kk + 2 * tg) * P + gr];  // rows 2tg, 2tg+1, 2tg+8, 2tg+9 of the step
#pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) {
        const uint16_t* vc = v0 + 8 * nd;
        Mma<T>::run(oacc[nd], pa, load_column_pair(vc, P), load_column_pair(vc + 8 * P, P));
      }
    }
  }

  // Normalize and write O (pairs of dims 8nd + 2tg, +1) and LSE (natural log).
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    float lr = l[rr];
    lr += __shfl_xor_sync(0xffffffffu, lr, 1);
    lr += __shfl_xor_sync(0xffffffffu, lr, 2);
    const int i = row[rr];
    if (i >= a.Sq) continue;
    const float inv = lr > 0.f ? 1.f / lr : 0.f;
    uint32_t* orow = reinterpret_cast<uint32_t*>(o + a.o_off(b, i, h));
#pragma unroll
    for (int nd = 0; nd < D / 8; ++nd)
      orow[4 * nd + tg] = Mma<T>::pack(oacc[nd][2 * rr] * inv, oacc[nd][2 * rr + 1] * inv);
    if (tg == 0) lse[a.lse_off(b, h, i)] = lr > 0.f ? (m[rr] + log2f(lr)) * kLn2 : kNegInf;
  }
}

template <class T, int D>
void launch(const FlashArgs& args, void* o, float* lse, cudaStream_t s) {
  const Attn<T> a = make_attn<T>(args);
  flash_mma_forward_kernel<T, D><<<dim3(ceil_div(a.Sq, kBr), a.H, a.B), kThreads, 0, s>>>(a, static_cast<T*>(o), lse);
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool mma_forward_supported(const FlashArgs& a, const void* o) {
  if (a.dtype == ElemType::f32 || (a.D != 64 && a.D != 128)) return false;
  if (a.key_padding_mask || a.bias) return false;  // causal masking only: the SIMT kernels take these
  // 16-byte vector loads of K/V rows and 32-bit loads of Q pairs: every row must start 16-byte aligned.
  for (int64_t st : {a.q_stride_b, a.q_stride_s, a.q_stride_h, a.k_stride_b, a.k_stride_s, a.k_stride_h,
                     a.v_stride_b, a.v_stride_s, a.v_stride_h})
    if (st % 8 != 0) return false;
  return aligned16(a.q) && aligned16(a.k) && aligned16(a.v) && aligned16(o);
}

void mma_forward(const FlashArgs& a, void* o, float* lse, cudaStream_t s) {
  with_mma_shape(a, [&](auto t, auto d) { launch<decltype(t), decltype(d)::value>(a, o, lse, s); });
}

}  // namespace attnlab::kernels::cuda::detail
