// The fast tier's backward (Variant::fast): FlashAttention-2's structure on tensor cores, bf16/f16,
// head dim 64 or 128, built from the same pieces as the forward (flash_attention_fast.cuh).
//
// 1. flash_fast_delta_kernel: Delta_i = <dO_i, O_i> and -LSE_i log2 e (f32) with 16-byte loads, D / 8
//    threads per row.
// 2. flash_fast_dkdv_kernel, grid (ceil(Sk / 128), Hkv, B), 256 threads = 8 warps; warp w owns keys
//    j0 + 16w .. j0 + 16w + 15, whose dK and dV accumulate in its registers over every query of every
//    head of the GQA group (the block walks the group's heads: GQA is summed without copies and
//    without atomics on dK/dV). K and V of the block stay in shared memory; the query tiles (64
//    queries of Q and dO, with their Delta and scaled LSE) stream through a kStages-deep cp.async
//    ring, one __syncthreads per tile as in the forward. Per tile and warp, in two halves of 32
//    queries (the register budget, see the loop):
//      S^T  = K Q^T,  dP^T = V dO^T      A = K / V rows (ldmatrix), B = Q / dO rows (ldmatrix)
//      P^T  = exp2(S^T scale log2 e - LSE log2 e),  dS^T = P^T (z dP^T - Delta)   (registers, f32)
//      dV  += (P z)^T dO,  dK += dS^T Q  A = the C fragments of P^T / dS^T (register reuse),
//                                        B = dO / Q by ldmatrix.trans
//      dQ  += dS K (unless deterministic): dS^T goes to a key-major swizzled tile; after a barrier
//           warp w takes queries 16 (w % 4) .., dims (w / 4) D/2 ..: A = dS by ldmatrix.trans of
//           that tile, B = K by ldmatrix.trans; f32 atomics into dq_acc (vector atomics on sm_90).
//    Causal: the walk starts at the first query tile that sees key j0; one compare per element
//    against the first query of its key masks the diagonal and the end of K; blocks with small j0
//    (the most queries) are launched first.
//    Epilogue: dK scale, dV through the K/V tiles (swizzled) to 16-byte stores.
// 3. flash_fast_dq_kernel (deterministic = true), grid (ceil(Sq / 128), H, B), 8 warps x 16 queries:
//    Q and dO stay in shared memory, K/V tiles of 64 keys stream through the ring; per tile S = Q K^T,
//    dP = dO V^T, dS as above, dQ += dS K with dS's C fragments as A and K by ldmatrix.trans. Every dQ
//    element is summed by one thread in a fixed order: bit-identical across runs.
// Shared memory (D = 128 / 64): dK/dV kernel 145 / 81 KiB, dQ kernel 128 / 64 KiB (opt-in above 48 KiB).
// tests/kernels/cuda/fast_kernels_sim.py runs these kernels lane by lane.
#include <climits>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/flash_attention_common.cuh"
#include "kernels/cuda/flash_attention_fast.cuh"

namespace attnlab::kernels::cuda::detail {

namespace {

using namespace fast;

constexpr int kWarps = 8, kThreads = 32 * kWarps;
constexpr int kStages = 2;

// ---- Delta and the scaled LSE --------------------------------------------------------------------
// Row statistics the backward kernels read, [B, H, sq_pad] f32 with sq_pad = Sq rounded up to the
// dK/dV kernel's query tile, so that a tile's 64 values are one run of 16-byte copies:
//   delta    = <dO_i, O_i>                       (0 past Sq)
//   neg_lse2 = -LSE_i log2 e, or -inf for a row that sees no key and past Sq (P = exp2(-inf) = 0 there)
// kThreads / (D / 8) rows of the contiguous [B, Sq, H, D] tensors per block: each thread takes one
// 16-byte chunk of a row, the row's D / 8 threads (adjacent lanes) reduce by shuffles.
struct RowStats {
  float* delta;
  float* neg_lse2;
  int sq_pad;
  __device__ int64_t off(int b, int h, int i, int H) const { return (int64_t(b) * H + h) * sq_pad + i; }
};

template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    flash_fast_delta_kernel(Attn<T> a, const T* o, const T* dout, const float* lse, RowStats rs) {
  constexpr int kChunks = D / 8, kRows = kThreads / kChunks;
  const int64_t row = int64_t(blockIdx.x) * kRows + threadIdx.x / kChunks;  // over [B, sq_pad, H]
  const int ch = threadIdx.x % kChunks;
  const bool in = row < int64_t(a.B) * rs.sq_pad * a.H;
  const int h = int(row % a.H), i = int((row / a.H) % rs.sq_pad), b = int(row / (int64_t(a.H) * rs.sq_pad));
  const bool real = in && i < a.Sq;
  float s = 0.f;
  if (real) {
    const int64_t off = a.o_off(b, i, h) + 8 * ch;
    const uint4 x = *reinterpret_cast<const uint4*>(o + off);
    const uint4 y = *reinterpret_cast<const uint4*>(dout + off);
    const T* xs = reinterpret_cast<const T*>(&x);
    const T* ys = reinterpret_cast<const T*>(&y);
#pragma unroll
    for (int e = 0; e < 8; ++e) s += to_f32(xs[e]) * to_f32(ys[e]);
  }
#pragma unroll
  for (int off = kChunks / 2; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  if (ch == 0 && in) {
    const float l = real ? lse[a.lse_off(b, h, i)] : kNegInf;
    rs.delta[rs.off(b, h, i, a.H)] = s;
    rs.neg_lse2[rs.off(b, h, i, a.H)] = l == kNegInf ? kNegInf : -l * kLog2e;
  }
}

// ---- dK, dV (and the atomic dQ) ------------------------------------------------------------------
constexpr int kBcKV = 16 * kWarps;  // keys per block
constexpr int kBrKV = 64;           // queries per tile
constexpr int kSub = 32;            // queries per sub-tile of the products (register budget)

// Shared memory of the dK/dV kernel, in 16-bit units: K, V [kBcKV][D]; kStages x (Q, dO [kBrKV][D],
// then -LSE log2 e and Delta [kBrKV] f32); dS^T [kBcKV][kBrKV] (key-major).
template <int D>
struct DkdvSmem {
  static constexpr int kKV = kBcKV * D;
  static constexpr int kQ = kBrKV * D;
  static constexpr int kStage = 2 * kQ + 2 * kBrKV * 2;  // Q, dO, two f32 rows
  static constexpr int kDs = kBcKV * kBrKV;
  static constexpr size_t bytes = (size_t(2) * kKV + size_t(kStages) * kStage + kDs) * sizeof(uint16_t);
};

template <class T, int D>
__global__ void __launch_bounds__(kThreads, 1)
    flash_fast_dkdv_kernel(Attn<T> a, const T* dout, RowStats rs, T* dk, T* dv, float* dq_acc) {
  using L = DkdvSmem<D>;
  extern __shared__ __align__(128) uint16_t smem[];
  uint16_t* ks = smem;
  uint16_t* vs = ks + L::kKV;
  uint16_t* ring = vs + L::kKV;
  uint16_t* dss = ring + kStages * L::kStage;
  const int g = blockIdx.y, b = blockIdx.z, j0 = blockIdx.x * kBcKV;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gr = lane >> 2, tg = lane & 3;
  const int m0 = 16 * warp;                                   // the warp's first key row in the block
  const int key[2] = {j0 + m0 + gr, j0 + m0 + gr + 8};        // rows of this thread's C fragments
  // The first query that sees each of them (causal; INT_MAX past Sk): P = 0 for earlier queries.
  int min_query[2];
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) min_query[rr] = key[rr] < a.Sk ? a.first_query(key[rr]) : INT_MAX;
  const int i_start = (a.first_query(j0) / kBrKV) * kBrKV;    // causal: earlier queries see none of the keys
  const int n_qt = i_start < a.Sq ? (a.Sq - i_start + kBrKV - 1) / kBrKV : 0;
  const int steps = a.G * n_qt;                               // (head, query tile) pairs

  auto qtile = [&](int st) { return ring + (st % kStages) * L::kStage; };
  auto load_step = [&](int st) {
    const int h = g * a.G + st / n_qt, i0 = i_start + (st % n_qt) * kBrKV;
    uint16_t* q = qtile(st);
    load_q_async<D, kBrKV, kThreads>(q, a, b, h, i0);
    load_rows_async<D, kBrKV, kThreads>(q + L::kQ, a, dout, b, h, i0);
    // -LSE log2 e, then Delta, of the tile's 64 rows: 2 x 16 chunks of 16 bytes (the rows are padded
    // to a multiple of 64, so every chunk exists).
    float* rows = reinterpret_cast<float*>(q + 2 * L::kQ);
    if (threadIdx.x < 2 * kBrKV / 4) {
      const int which = threadIdx.x / (kBrKV / 4), c = threadIdx.x % (kBrKV / 4);
      const float* src = (which ? rs.delta : rs.neg_lse2) + rs.off(b, h, i0, a.H) + 4 * c;
      cp_async16(rows + which * kBrKV + 4 * c, src, true);
    }
  };

  load_kv_async<D, kBcKV, kThreads>(ks, vs, a, b, g, j0);
  ring_start<kStages>(steps, load_step);  // group 0 also carries K and V

  float dk_acc[D / 8][4], dv_acc[D / 8][4];
  zero_frags(dk_acc);
  zero_frags(dv_acc);
  const float sl2 = a.scale * kLog2e;

  for (int st = 0; st < steps; ++st) {
    ring_next<kStages>(st, steps, load_step);  // also: the previous step's dS^T tile is read by all
    const int h = g * a.G + st / n_qt, i0 = i_start + (st % n_qt) * kBrKV;
    const uint16_t* qs = qtile(st);
    const uint16_t* dos = qs + L::kQ;
    const float* neg_lse2 = reinterpret_cast<const float*>(qs + 2 * L::kQ);
    const float* delta_s = neg_lse2 + kBrKV;

    // The tile's 64 queries in two halves of 32: S^T, dP^T, P^T and dS^T of one half are 64 f32
    // registers beside the 128 of dK/dV. A whole tile at once, or the two halves unrolled into one
    // schedule, spills at D = 128 (ptxas -v: docs/cuda_attention.md).
#pragma unroll 1
    for (int r0 = 0; r0 < kBrKV; r0 += kSub) {
      // S^T and dP^T for the warp's 16 keys x 32 queries r0.. (A: K / V rows, B: Q / dO rows).
      float sT[kSub / 8][4], dpT[kSub / 8][4];
      zero_frags(sT);
      zero_frags(dpT);
      mma_abt<T, D, kSub / 8>(sT, [&](int kt) { return a_frag<D>(ks, m0, kt, lane); }, qs, r0, lane);
      mma_abt<T, D, kSub / 8>(dpT, [&](int kt) { return a_frag<D>(vs, m0, kt, lane); }, dos, r0, lane);

      // P^T and dS^T: P = 0 before a key's first query and past Sk (one compare per element); rows
      // past Sq and blind rows have -LSE = -inf, hence P = 0 too.
#pragma unroll
      for (int nt = 0; nt < kSub / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = r0 + 8 * nt + 2 * tg + (e & 1), i = i0 + r, j = key[e >> 1];
          const float p = i < min_query[e >> 1] ? 0.f : exp2_approx(fmaf(sT[nt][e], sl2, neg_lse2[r]));
          const float z = a.drop_factor(a.drop_key(b, h, i), j);
          sT[nt][e] = p * z;
          dpT[nt][e] = p * (z * dpT[nt][e] - delta_s[r]);
        }

      // dV += (P z)^T dO, dK += dS^T Q over 2 k-steps of 16 queries; P z and dS packed to 16 bits
      // first (their f32 registers are free before the products start).
      Frag pz_a[kSub / 16], ds_a[kSub / 16];
      c_to_a<T, kSub / 16>(pz_a, sT);
      c_to_a<T, kSub / 16>(ds_a, dpT);
      mma_ab<T, D, kSub / 16, D / 8>(dv_acc, [&](int kk) { return pz_a[kk]; }, dos, r0, 0, lane);
      mma_ab<T, D, kSub / 16, D / 8>(dk_acc, [&](int kk) { return ds_a[kk]; }, qs, r0, 0, lane);
      if (dq_acc) store_a_to_tile<kBrKV, kSub / 16>(dss, ds_a, m0, r0, lane);  // dS^T, key-major
    }

    if (dq_acc) {
      // dQ[64 x D] = dS [64 x 128 keys] K [128 x D]: every warp's dS^T rows are needed by every warp.
      __syncthreads();
      const int qm0 = 16 * (warp % 4), d0 = (warp / 4) * (D / 2);
      float dq[D / 16][4];
      zero_frags(dq);
      mma_ab<T, D, kBcKV / 16, D / 16>(dq, [&](int kk) { return a_frag_trans<kBrKV>(dss, qm0, kk, lane); }, ks, 0,
                                       d0, lane);
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        const int i = i0 + qm0 + gr + 8 * rr;
        if (i >= a.Sq) continue;
        float* dst = dq_acc + a.o_off(b, i, h) + d0 + 2 * tg;
#pragma unroll
        for (int nd = 0; nd < D / 16; ++nd)
          atomic_add2(dst + 8 * nd, a.scale * dq[nd][2 * rr], a.scale * dq[nd][2 * rr + 1]);
      }
    }
  }

  // dK = scale dS^T Q, dV = (P z)^T dO: through the K / V tiles (every warp is done reading them
  // after this barrier; the wait covers the K/V copies should no step have run), each warp its own
  // 16 rows.
  cp_async_wait<0>();
  __syncthreads();
  store_c_to_tile<T, D, D / 8>(ks, dk_acc, m0, a.scale, a.scale, lane);
  store_c_to_tile<T, D, D / 8>(vs, dv_acc, m0, 1.f, 1.f, lane);
  __syncwarp();
  auto dst_row = [&](T* base) {
    return [&, base](int r) {
      const int j = j0 + m0 + r;
      return j < a.Sk ? reinterpret_cast<uint16_t*>(base + a.kv_off(b, j, g)) : nullptr;
    };
  };
  store_rows_from_tile<D>(ks, m0, dst_row(dk), lane);
  store_rows_from_tile<D>(vs, m0, dst_row(dv), lane);
}

// ---- deterministic dQ ----------------------------------------------------------------------------
constexpr int kBrQ = 16 * kWarps;  // queries per block
constexpr int kBcQ = 64;           // keys per tile

template <int D>
constexpr size_t dq_smem_bytes() {
  return (size_t(2) * kBrQ * D + size_t(kStages) * 2 * kBcQ * D) * sizeof(uint16_t);
}

template <class T, int D>
__global__ void __launch_bounds__(kThreads, 1)
    flash_fast_dq_kernel(Attn<T> a, const T* dout, RowStats rs, T* dq) {
  constexpr int kTile = kBcQ * D, kStage = 2 * kTile;
  extern __shared__ __align__(128) uint16_t smem[];
  uint16_t* qs = smem;
  uint16_t* dos = qs + kBrQ * D;
  uint16_t* ring = dos + kBrQ * D;
  const int h = blockIdx.y, b = blockIdx.z, g = h / a.G;
  const int q0 = int(a.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x) * kBrQ;  // heavy blocks first
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gr = lane >> 2, tg = lane & 3;
  const int m0 = 16 * warp;
  const int row[2] = {q0 + m0 + gr, q0 + m0 + gr + 8};
  const uint64_t drop_key[2] = {a.drop_key(b, h, row[0]), a.drop_key(b, h, row[1])};
  float neg_lse2[2], delta_r[2];  // rows past Sq: -inf and 0 (P = 0)
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const bool in = row[rr] < a.Sq;
    neg_lse2[rr] = in ? rs.neg_lse2[rs.off(b, h, row[rr], a.H)] : kNegInf;
    delta_r[rr] = in ? rs.delta[rs.off(b, h, row[rr], a.H)] : 0.f;
  }
  const int key_end = a.key_end(min(q0 + kBrQ, a.Sq) - 1);
  const int n_tiles = (key_end + kBcQ - 1) / kBcQ;
  auto stage = [&](int t) { return ring + (t % kStages) * kStage; };
  auto load_kv = [&](int t) { load_kv_async<D, kBcQ, kThreads>(stage(t), stage(t) + kTile, a, b, g, t * kBcQ); };

  load_q_async<D, kBrQ, kThreads>(qs, a, b, h, q0);
  load_rows_async<D, kBrQ, kThreads>(dos, a, dout, b, h, q0);
  ring_start<kStages>(n_tiles, load_kv);  // group 0 also carries Q and dO

  float dq_acc[D / 8][4];
  zero_frags(dq_acc);
  const float sl2 = a.scale * kLog2e;

  for (int t = 0; t < n_tiles; ++t) {
    ring_next<kStages>(t, n_tiles, load_kv);
    const uint16_t* kt_s = stage(t);
    const uint16_t* vt_s = kt_s + kTile;
    const int k0 = t * kBcQ;

    float s[kBcQ / 8][4], dp[kBcQ / 8][4];
    zero_frags(s);
    zero_frags(dp);
    mma_abt<T, D, kBcQ / 8>(s, [&](int kt) { return a_frag<D>(qs, m0, kt, lane); }, kt_s, 0, lane);
    mma_abt<T, D, kBcQ / 8>(dp, [&](int kt) { return a_frag<D>(dos, m0, kt, lane); }, vt_s, 0, lane);

    const bool edge = k0 + kBcQ > a.Sk || (a.causal && k0 + kBcQ - 1 > q0 + (a.Sk - a.Sq));
#pragma unroll
    for (int nt = 0; nt < kBcQ / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int rr = e >> 1, j = k0 + 8 * nt + 2 * tg + (e & 1);
        float p = exp2_approx(fmaf(s[nt][e], sl2, neg_lse2[rr]));
        if (edge && (j >= a.Sk || !a.visible(row[rr], j))) p = 0.f;
        s[nt][e] = p * (a.drop_factor(drop_key[rr], j) * dp[nt][e] - delta_r[rr]);  // dS
      }

    Frag da[kBcQ / 16];
    c_to_a<T, kBcQ / 16>(da, s);
    mma_ab<T, D, kBcQ / 16, D / 8>(dq_acc, [&](int kk) { return da[kk]; }, kt_s, 0, 0, lane);
  }

  // dQ = scale dS K through the warp's own rows of the Q tile. Only this warp read them (its A
  // fragments), but other threads copied them in: a block of queries that see no key never entered
  // the loop, so its copies are waited for and published here before the rows are overwritten.
  cp_async_wait<0>();
  __syncthreads();
  store_c_to_tile<T, D, D / 8>(qs, dq_acc, m0, a.scale, a.scale, lane);
  __syncwarp();
  store_q_rows<D>(qs, m0, a, dq, b, h, q0, lane);
}

template <class Kernel>
void set_smem(Kernel kernel, size_t bytes) {
  ATTNLAB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

template <class T, int D>
void launch(const FlashArgs& args, const void* o, const void* dout, const float* lse, float* stats, void* dq,
            void* dk, void* dv, float* dq_acc, cudaStream_t s) {
  const Attn<T> a = make_attn<T>(args);
  const T* do_t = static_cast<const T*>(dout);
  const int sq_pad = (a.Sq + kBrKV - 1) / kBrKV * kBrKV;
  const RowStats rs = {stats, stats + int64_t(a.B) * a.H * sq_pad, sq_pad};  // Delta, then -LSE log2 e
  const int64_t rows = int64_t(a.B) * rs.sq_pad * a.H;
  flash_fast_delta_kernel<T, D>
      <<<ceil_div(rows, kThreads / (D / 8)), kThreads, 0, s>>>(a, static_cast<const T*>(o), do_t, lse, rs);
  ATTNLAB_CUDA_CHECK_LAUNCH();

  constexpr size_t dkdv_smem = DkdvSmem<D>::bytes;
  set_smem(flash_fast_dkdv_kernel<T, D>, dkdv_smem);
  flash_fast_dkdv_kernel<T, D><<<dim3(ceil_div(a.Sk, kBcKV), a.Hkv, a.B), kThreads, dkdv_smem, s>>>(
      a, do_t, rs, static_cast<T*>(dk), static_cast<T*>(dv), dq_acc);
  ATTNLAB_CUDA_CHECK_LAUNCH();

  if (!dq_acc) {
    constexpr size_t dq_smem = dq_smem_bytes<D>();
    set_smem(flash_fast_dq_kernel<T, D>, dq_smem);
    flash_fast_dq_kernel<T, D>
        <<<dim3(ceil_div(a.Sq, kBrQ), a.H, a.B), kThreads, dq_smem, s>>>(a, do_t, rs, static_cast<T*>(dq));
    ATTNLAB_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

int64_t fast_stats_floats(const FlashArgs& a) {
  const int64_t sq_pad = (a.Sq + kBrKV - 1) / kBrKV * kBrKV;
  return 2 * a.B * a.H * sq_pad;
}

void fast_backward(const FlashArgs& a, const void* o, const void* dout, const float* lse, float* stats, void* dq,
                   void* dk, void* dv, float* dq_acc, cudaStream_t s) {
  with_mma_shape(a, [&](auto t, auto d) {
    launch<decltype(t), decltype(d)::value>(a, o, dout, lse, stats, dq, dk, dv, dq_acc, s);
  });
}

}  // namespace attnlab::kernels::cuda::detail
