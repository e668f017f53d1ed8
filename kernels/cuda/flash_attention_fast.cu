// The fast tier's forward (Variant::fast): FlashAttention-2 on tensor cores with the techniques the
// readable tier (flash_attention_mma.cu) leaves out. bf16/f16, head dim 64 or 128, f32 accumulation.
//
// Grid (ceil(Sq / 128), H, B), 256 threads = 8 warps; warp w owns query rows q0 + 16w .. q0 + 16w + 15.
//   * K/V tiles of 64 keys go through a kStages-deep cp.async ring of swizzled shared-memory stages:
//     while tile t is multiplied, tiles t + 1 .. t + kStages - 1 are in flight. One __syncthreads
//     per tile: after it, every copy of tile t has landed and every warp is done with tile t - 1,
//     whose stage the next copy refills.
//   * Q is copied once (into the last stage, which the ring reaches only after Q has moved to
//     registers) and kept as ldmatrix'd A fragments for the whole key loop.
//   * S = Q K^T: K tile rows are B's columns, one ldmatrix.x4 per 16 keys x 16 dims. O += P V: the
//     accumulators of S are P's A fragments (register reuse), V by ldmatrix.x4.trans.
//   * Online softmax on raw scores with the scale folded into the exponent:
//     p = exp2(s * scale * log2 e - m * scale * log2 e), one FFMA + ex2 per element (scale > 0).
//   * Causal: key tiles past the block's last visible key are never loaded; masks are applied only on
//     the tiles that cross the diagonal or the end of K; the blocks with the most keys start first.
//   * Epilogue: O / l through a free stage (swizzled) to 16-byte coalesced stores; LSE in f32.
// Shared memory: kStages x (K + V) tile = 64 KiB at D = 128 (kStages = 2), 32 KiB at D = 64.
// The helpers (ldmatrix, cp.async, swizzle, the warp products) are in flash_attention_fast.cuh;
// tests/kernels/cuda/fast_kernels_sim.py runs this kernel lane by lane (hazards, banks, fragments).
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/flash_attention_common.cuh"
#include "kernels/cuda/flash_attention_fast.cuh"

namespace attnlab::kernels::cuda::detail {

namespace {

using namespace fast;

constexpr int kWarps = 8, kThreads = 32 * kWarps;
constexpr int kBr = 16 * kWarps;  // query rows per block
constexpr int kBc = 64;           // keys per tile
constexpr int kStages = 2;        // K/V tiles resident at once (tile t computed, t + 1 .. in flight)

template <int D>
constexpr size_t fwd_smem_bytes() {
  return size_t(kStages) * 2 * kBc * D * sizeof(uint16_t);
}

template <class T, int D>
__global__ void __launch_bounds__(kThreads, 1) flash_fast_forward_kernel(Attn<T> a, T* o, float* lse) {
  constexpr int kTile = kBc * D, kStage = 2 * kTile;  // a stage: K tile, then V tile
  static_assert(kBr * D <= kStage, "the Q tile must fit into one stage");
  extern __shared__ __align__(128) uint16_t smem[];
  const int h = blockIdx.y, b = blockIdx.z, g = h / a.G;
  const int q0 = int(a.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x) * kBr;  // heavy blocks first
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gr = lane >> 2, tg = lane & 3;
  const int m0 = 16 * warp;                                    // the warp's first row in the tile
  const int row[2] = {q0 + m0 + gr, q0 + m0 + gr + 8};         // this thread's two query rows
  const uint64_t drop_key[2] = {a.drop_key(b, h, row[0]), a.drop_key(b, h, row[1])};
  const int key_end = a.key_end(min(q0 + kBr, a.Sq) - 1);
  const int n_tiles = (key_end + kBc - 1) / kBc;

  auto stage = [&](int t) { return smem + (t % kStages) * kStage; };
  auto load_kv = [&](int t) { load_kv_async<D, kBc, kThreads>(stage(t), stage(t) + kTile, a, b, g, t * kBc); };

  // Prologue: Q into the last stage, tiles 0 .. kStages - 2 into the others (one group each; Q
  // travels with tile 0).
  uint16_t* qs = smem + (kStages - 1) * kStage;
  load_q_async<D, kBr, kThreads>(qs, a, b, h, q0);
  ring_start<kStages>(n_tiles, load_kv);
  cp_async_wait<kStages - 2>();  // group 0: Q and tile 0
  __syncthreads();
  Frag qa[D / 16];
#pragma unroll
  for (int kt = 0; kt < D / 16; ++kt) qa[kt] = a_frag<D>(qs, m0, kt, lane);

  float oacc[D / 8][4];
  zero_frags(oacc);
  float m[2] = {kNegInf, kNegInf}, l[2] = {0.f, 0.f};  // raw-score row max; this thread's partial sums
  const float sl2 = a.scale * kLog2e;

  for (int t = 0; t < n_tiles; ++t) {
    ring_next<kStages>(t, n_tiles, load_kv);  // at t = 0 the barrier also retires Q's stage
    const uint16_t* ks = stage(t);
    const uint16_t* vs = ks + kTile;
    const int k0 = t * kBc;

    // S = Q K^T: the warp's 16 rows x 64 keys.
    float s[kBc / 8][4];
    zero_frags(s);
    mma_abt<T, D, kBc / 8>(s, [&](int kt) { return qa[kt]; }, ks, 0, lane);

    // Mask keys past Sk and, causal, past each row's diagonal (raw scores -> -inf).
    if (k0 + kBc > a.Sk || (a.causal && k0 + kBc - 1 > q0 + (a.Sk - a.Sq))) {
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int j = k0 + 8 * nt + 2 * tg + (e & 1);
          if (j >= a.Sk || !a.visible(row[e >> 1], j)) s[nt][e] = kNegInf;
        }
    }

    // Online softmax, rows gr (c0, c1) and gr + 8 (c2, c3): row max over the quad (shuffles 1, 2).
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float mx = m[rr];
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * rr], s[nt][2 * rr + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mx_scaled = mx == kNegInf ? 0.f : mx * sl2;  // no (-inf) - (-inf) before the first key
      const float alpha = exp2_approx(m[rr] * sl2 - mx_scaled);
      m[rr] = mx;
      l[rr] *= alpha;
#pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) oacc[nd][2 * rr] *= alpha, oacc[nd][2 * rr + 1] *= alpha;
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt) {
        const float p0 = exp2_approx(fmaf(s[nt][2 * rr], sl2, -mx_scaled));
        const float p1 = exp2_approx(fmaf(s[nt][2 * rr + 1], sl2, -mx_scaled));
        l[rr] += p0 + p1;  // the softmax sums the undropped probabilities; V sees them times z
        const int j = k0 + 8 * nt + 2 * tg;
        s[nt][2 * rr] = p0 * a.drop_factor(drop_key[rr], j);
        s[nt][2 * rr + 1] = p1 * a.drop_factor(drop_key[rr], j + 1);
      }
    }

    // O += P V over 4 k-steps of 16 keys.
    Frag pa[kBc / 16];
    c_to_a<T, kBc / 16>(pa, s);
    mma_ab<T, D, kBc / 16, D / 8>(oacc, [&](int kk) { return pa[kk]; }, vs, 0, 0, lane);
  }

  // Epilogue. Row sums over the quad; O / l through stage(n_tiles) — it held tile n_tiles - kStages,
  // which every warp finished before the last __syncthreads, and no copy targets it — then
  // 16-byte stores of the warp's own rows (a __syncwarp suffices).
  float inv[2];
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    float lr = l[rr];
    lr += __shfl_xor_sync(0xffffffffu, lr, 1);
    lr += __shfl_xor_sync(0xffffffffu, lr, 2);
    inv[rr] = lr > 0.f ? 1.f / lr : 0.f;
    const int i = row[rr];
    if (tg == 0 && i < a.Sq) lse[a.lse_off(b, h, i)] = lr > 0.f ? (m[rr] * sl2 + log2f(lr)) * kLn2 : kNegInf;
  }
  uint16_t* os = stage(n_tiles);
  store_c_to_tile<T, D, D / 8>(os, oacc, m0, inv[0], inv[1], lane);
  __syncwarp();
  store_q_rows<D>(os, m0, a, o, b, h, q0, lane);
}

template <class T, int D>
void launch(const FlashArgs& args, void* o, float* lse, cudaStream_t s) {
  const Attn<T> a = make_attn<T>(args);
  constexpr size_t smem = fwd_smem_bytes<D>();
  ATTNLAB_CUDA_CHECK(
      cudaFuncSetAttribute(flash_fast_forward_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  flash_fast_forward_kernel<T, D>
      <<<dim3(ceil_div(a.Sq, kBr), a.H, a.B), kThreads, smem, s>>>(a, static_cast<T*>(o), lse);
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool fast_supported(const FlashArgs& a, const void* o) {
  // The folded exponent needs scale > 0 (the row max of raw scores is then the max of scaled ones).
  return a.scale > 0 && !a.key_padding_mask && !a.bias && mma_forward_supported(a, o);
}

void fast_forward(const FlashArgs& a, void* o, float* lse, cudaStream_t s) {
  with_mma_shape(a, [&](auto t, auto d) { launch<decltype(t), decltype(d)::value>(a, o, lse, s); });
}

}  // namespace attnlab::kernels::cuda::detail
