// The building blocks of the fast tensor-core tier (Variant::fast: flash_attention_fast.cu, the
// forward, and flash_attention_fast_bwd.cu, the backward): cp.async tile loads into XOR-swizzled
// shared memory, ldmatrix / ldmatrix.trans fragment loads, and the two warp-level products every
// kernel of the tier is made of. Private to kernels/cuda. tests/kernels/cuda/fast_kernels_sim.py
// transcribes each function here one to one (same names), so keep the two in step.
//
// Swizzled tiles. A tile holds rows of COLS 16-bit elements (COLS a multiple of 64), row-major, each
// row COLS / 8 chunks of 16 bytes; chunk c of row r is stored at chunk position c ^ (r % 8). The
// row pitch is a multiple of 128 bytes, so a chunk's bank group (4 banks) is its position mod 8:
//   * ldmatrix reads 8 rows r0..r0+7 (r0 % 8 == 0) at the same logical chunk: 8 positions c ^ 0..7,
//     8 distinct bank groups, no conflict — without the XOR all 8 would hit the same 4 banks;
//   * cp.async writes 8 consecutive chunks of one row per 8 threads: distinct positions again.
// No padding, so a stage is exactly rows x COLS x 2 bytes.
//
// mma.m16n8k16 fragments (lane = 4 gr + tg; PTX ISA "Matrix Fragments for mma.m16n8k16"):
//   A[16 x 16]: reg0 (rows 0-7, k 0-7), reg1 (rows 8-15, k 0-7), reg2 (rows 0-7, k 8-15),
//               reg3 (rows 8-15, k 8-15); in each 8x8 block the thread holds row gr, k 2tg, 2tg+1
//   B[16 x 8]:  reg0 (k 0-7), reg1 (k 8-15); in each 8x8 block the thread holds k 2tg, 2tg+1 of col gr
//   C[16 x 8]:  c0, c1 (row gr, cols 2tg, 2tg+1), c2, c3 (row gr + 8, same cols)
// ldmatrix.x4: lanes 8m..8m+7 give the row addresses of 8x8 matrix m (16 bytes each); register m
// of every thread receives row gr, elements 2tg, 2tg+1 of matrix m — exactly an A or B block as
// above. With .trans it receives elements (2tg, gr), (2tg+1, gr) instead: the block transposed,
// which turns a row-major [k][n] tile into B fragments (and a [k][m] tile into A fragments).
#pragma once
#include <cstdint>

#include "kernels/cuda/flash_attention_common.cuh"
#include "kernels/cuda/flash_attention_mma.cuh"

namespace attnlab::kernels::cuda::detail::fast {

// One mma operand fragment: four 32-bit registers of 16-bit pairs (an A fragment, or the B
// fragments of two adjacent n-tiles).
struct Frag {
  uint32_t r[4];
};

// ---- swizzled tiles ------------------------------------------------------------------------------
// Element offset of (row, col) in a swizzled tile of COLS columns.
template <int COLS>
__device__ __forceinline__ int swz(int row, int col) {
  static_assert(COLS % 64 == 0, "the XOR swizzle needs at least 8 chunks per row");
  return row * COLS + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7);
}

// ---- cp.async ------------------------------------------------------------------------------------
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, asynchronously; fill = false writes 16 zero bytes (src is not read
// but must still be a valid global address).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool fill) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(fill ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// A kStages-deep ring of shared-memory stages fed by cp.async, one commit group per tile; tile t lives
// in stage t % kStages. ring_start issues tiles 0 .. kStages - 2; ring_next(t) starts iteration t:
// after it tile t has landed for every thread and every warp is done with tile t - 1, whose stage it
// then refills with tile t + kStages - 1. Groups are committed even when empty, so the count per
// iteration stays constant. load(t) issues tile t's copies; n is the number of tiles.
template <int kStages, class LoadFn>
__device__ __forceinline__ void ring_start(int n, LoadFn load) {
#pragma unroll
  for (int t = 0; t < kStages - 1; ++t) {
    if (t < n) load(t);
    cp_async_commit();
  }
}
template <int kStages, class LoadFn>
__device__ __forceinline__ void ring_next(int t, int n, LoadFn load) {
  cp_async_wait<kStages - 2>();  // tile t has landed (this thread's copies) ...
  __syncthreads();               // ... everyone's; tile t - 1 is consumed by every warp
  if (t + kStages - 1 < n) load(t + kStages - 1);
  cp_async_commit();
}

// Issues the copies of ROWS rows of COLS 16-bit elements into a swizzled tile; every one of the
// THREADS threads of the block takes part. row(r) is the global row (16-byte aligned) or nullptr
// for a row of zeros; any_valid is any global address (the source operand of a zero fill).
template <int COLS, int ROWS, int THREADS, class RowFn>
__device__ __forceinline__ void load_tile_async(uint16_t* tile, RowFn row, const void* any_valid) {
  constexpr int kChunks = COLS / 8;
  static_assert(ROWS * kChunks % THREADS == 0, "every thread copies the same number of chunks");
#pragma unroll
  for (int it = 0; it < ROWS * kChunks / THREADS; ++it) {
    const int e = it * THREADS + int(threadIdx.x), r = e / kChunks, ch = e % kChunks;
    const uint16_t* src = row(r);
    cp_async16(tile + swz<COLS>(r, 8 * ch), src ? src + 8 * ch : any_valid, src != nullptr);
  }
}

// The attention operands as tiles of ROWS rows (zeros past the end): rows r0.. of K and V of KV head
// g (batch b), rows r0.. of Q of head h, rows r0.. of a contiguous [B, Sq, H, D] tensor (dO).
template <int D, int ROWS, int THREADS, class T>
__device__ __forceinline__ void load_kv_async(uint16_t* k_tile, uint16_t* v_tile, const Attn<T>& a, int b, int g,
                                              int r0) {
  load_tile_async<D, ROWS, THREADS>(
      k_tile,
      [&](int r) { return r0 + r < a.Sk ? reinterpret_cast<const uint16_t*>(a.k_row(b, r0 + r, g)) : nullptr; }, a.k);
  load_tile_async<D, ROWS, THREADS>(
      v_tile,
      [&](int r) { return r0 + r < a.Sk ? reinterpret_cast<const uint16_t*>(a.v_row(b, r0 + r, g)) : nullptr; }, a.v);
}
template <int D, int ROWS, int THREADS, class T>
__device__ __forceinline__ void load_q_async(uint16_t* tile, const Attn<T>& a, int b, int h, int r0) {
  load_tile_async<D, ROWS, THREADS>(
      tile, [&](int r) { return r0 + r < a.Sq ? reinterpret_cast<const uint16_t*>(a.q_row(b, r0 + r, h)) : nullptr; },
      a.q);
}
template <int D, int ROWS, int THREADS, class T>
__device__ __forceinline__ void load_rows_async(uint16_t* tile, const Attn<T>& a, const T* x, int b, int h, int r0) {
  load_tile_async<D, ROWS, THREADS>(
      tile,
      [&](int r) { return r0 + r < a.Sq ? reinterpret_cast<const uint16_t*>(x + a.o_off(b, r0 + r, h)) : nullptr; }, x);
}

// ---- ldmatrix ------------------------------------------------------------------------------------
__device__ __forceinline__ void ldsm_x4(Frag& f, const uint16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(f.r[0]), "=r"(f.r[1]), "=r"(f.r[2]), "=r"(f.r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(Frag& f, const uint16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(f.r[0]), "=r"(f.r[1]), "=r"(f.r[2]), "=r"(f.r[3])
               : "r"(smem_addr(p)));
}

// The A fragment of rows m0..m0+15, k-step kt (columns 16kt..16kt+15) of a swizzled [*, COLS] tile:
// matrix m = lane / 8 is (rows + 8 (m & 1), cols + 8 (m >> 1)).
template <int COLS>
__device__ __forceinline__ Frag a_frag(const uint16_t* tile, int m0, int kt, int lane) {
  Frag f;
  ldsm_x4(f, tile + swz<COLS>(m0 + (lane & 7) + 8 * ((lane >> 3) & 1), 16 * kt + 8 * (lane >> 4)));
  return f;
}

// The A fragment of A[m][k] = tile[16kt + k][m0 + m] (a [k][m] tile, e.g. dS^T stored key-major):
// the same 8x8 blocks read transposed; matrix m is (k rows + 8 (m >> 1), m cols + 8 (m & 1)).
template <int COLS>
__device__ __forceinline__ Frag a_frag_trans(const uint16_t* tile, int m0, int kt, int lane) {
  Frag f;
  ldsm_x4_trans(f, tile + swz<COLS>(16 * kt + (lane & 7) + 8 * (lane >> 4), m0 + 8 * ((lane >> 3) & 1)));
  return f;
}

// ---- the two warp products -----------------------------------------------------------------------
// C[16 x 8N] += A[16 x K] B^T where B's rows are rows n0..n0+8N-1 of a swizzled [*, K] tile
// (S = Q K^T, dP = dO V^T, S^T = K Q^T, dP^T = V dO^T). afrag(kt) gives A's k-step kt (registers or
// an ldmatrix). Per k-step and pair of n-tiles one ldmatrix.x4: matrix m is (rows n + 8 (m >> 1),
// cols k + 8 (m & 1)), i.e. regs {b0, b1} of n-tile 2p and {b0, b1} of n-tile 2p + 1.
template <class T, int K, int N, class AFn>
__device__ __forceinline__ void mma_abt(float (&c)[N][4], AFn afrag, const uint16_t* tile, int n0, int lane) {
  static_assert(N % 2 == 0 && K % 16 == 0);
  const int rn = (lane & 7) + 8 * (lane >> 4), ck = 8 * ((lane >> 3) & 1);
#pragma unroll
  for (int kt = 0; kt < K / 16; ++kt) {
    const Frag a = afrag(kt);
#pragma unroll
    for (int np = 0; np < N / 2; ++np) {
      Frag b;
      ldsm_x4(b, tile + swz<K>(n0 + 16 * np + rn, 16 * kt + ck));
      Mma<T>::run(c[2 * np], a.r, b.r[0], b.r[1]);
      Mma<T>::run(c[2 * np + 1], a.r, b.r[2], b.r[3]);
    }
  }
}

// C[16 x 8N] += A[16 x 16KS] B with B[k][n] = tile[k0 + k][n0 + n] of a swizzled [*, COLS] tile
// (O += P V, dQ += dS K, dV += P^T dO, dK += dS^T Q). One ldmatrix.x4.trans per k-step and pair of
// n-tiles: matrix m is (rows k + 8 (m & 1), cols n + 8 (m >> 1)) -> {b0, b1} of n-tiles 2p, 2p + 1.
template <class T, int COLS, int KS, int N, class AFn>
__device__ __forceinline__ void mma_ab(float (&c)[N][4], AFn afrag, const uint16_t* tile, int k0, int n0, int lane) {
  static_assert(N % 2 == 0);
  const int rk = (lane & 7) + 8 * ((lane >> 3) & 1), cn = 8 * (lane >> 4);
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    const Frag a = afrag(kk);
#pragma unroll
    for (int np = 0; np < N / 2; ++np) {
      Frag b;
      ldsm_x4_trans(b, tile + swz<COLS>(k0 + 16 * kk + rk, n0 + 16 * np + cn));
      Mma<T>::run(c[2 * np], a.r, b.r[0], b.r[1]);
      Mma<T>::run(c[2 * np + 1], a.r, b.r[2], b.r[3]);
    }
  }
}

// The C fragments of a [16 x 16KS] product as the A fragments of the next product (FlashAttention-2's
// register reuse): k-step kk is n-tiles 2kk (k 0-7) and 2kk + 1 (k 8-15), rounded to 16 bits.
template <class T, int KS>
__device__ __forceinline__ void c_to_a(Frag (&a)[KS], const float (&c)[2 * KS][4]) {
#pragma unroll
  for (int kk = 0; kk < KS; ++kk) {
    a[kk].r[0] = Mma<T>::pack(c[2 * kk][0], c[2 * kk][1]);
    a[kk].r[1] = Mma<T>::pack(c[2 * kk][2], c[2 * kk][3]);
    a[kk].r[2] = Mma<T>::pack(c[2 * kk + 1][0], c[2 * kk + 1][1]);
    a[kk].r[3] = Mma<T>::pack(c[2 * kk + 1][2], c[2 * kk + 1][3]);
  }
}

// ---- epilogues -----------------------------------------------------------------------------------
// A warp's C fragments [16 x 8N] into rows m0..m0+15, columns 0..8N-1 of a swizzled [*, COLS] tile,
// row gr scaled by f0 and row gr + 8 by f1, rounded to 16 bits (32-bit stores: the 8 rows of a store
// sit at 8 distinct chunk positions, so its 32 words hit 32 banks).
template <class T, int COLS, int N>
__device__ __forceinline__ void store_c_to_tile(uint16_t* tile, const float (&c)[N][4], int m0, float f0, float f1,
                                                int lane) {
  const int gr = lane >> 2, tg = lane & 3;
#pragma unroll
  for (int nt = 0; nt < N; ++nt) {
    *reinterpret_cast<uint32_t*>(tile + swz<COLS>(m0 + gr, 8 * nt + 2 * tg)) = Mma<T>::pack(c[nt][0] * f0, c[nt][1] * f0);
    *reinterpret_cast<uint32_t*>(tile + swz<COLS>(m0 + gr + 8, 8 * nt + 2 * tg)) =
        Mma<T>::pack(c[nt][2] * f1, c[nt][3] * f1);
  }
}

// A warp's A fragments [16 x 16KS] (16-bit pairs, as c_to_a made them) into rows m0..m0+15, columns
// k0..k0+16KS-1 of a swizzled [*, COLS] tile: what store_c_to_tile writes for the same C fragments.
template <int COLS, int KS>
__device__ __forceinline__ void store_a_to_tile(uint16_t* tile, const Frag (&a)[KS], int m0, int k0, int lane) {
  const int gr = lane >> 2, tg = lane & 3;
#pragma unroll
  for (int kk = 0; kk < KS; ++kk)
#pragma unroll
    for (int q = 0; q < 4; ++q)  // regs: (row gr, k 0-7), (gr + 8, k 0-7), (gr, k 8-15), (gr + 8, k 8-15)
      *reinterpret_cast<uint32_t*>(tile + swz<COLS>(m0 + gr + 8 * (q & 1), k0 + 16 * kk + 8 * (q >> 1) + 2 * tg)) =
          a[kk].r[q];
}

// The warp copies rows m0..m0+15 of a swizzled [*, COLS] tile to global memory with 16-byte stores;
// dst(r) is the global row of tile row m0 + r (16-byte aligned) or nullptr to skip it. Reads only
// rows the warp itself wrote: a __syncwarp() before it is enough.
template <int COLS, class RowFn>
__device__ __forceinline__ void store_rows_from_tile(const uint16_t* tile, int m0, RowFn dst, int lane) {
  constexpr int kChunks = COLS / 8;
#pragma unroll
  for (int e = lane; e < 16 * kChunks; e += 32) {
    const int r = e / kChunks, ch = e % kChunks;
    uint16_t* d = dst(r);
    if (d) *reinterpret_cast<uint4*>(d + 8 * ch) = *reinterpret_cast<const uint4*>(tile + swz<COLS>(m0 + r, 8 * ch));
  }
}

// The warp's rows r0 + m0 .. r0 + m0 + 15 of a contiguous [B, Sq, H, D] tensor x (O, dQ), head h,
// from rows m0.. of a swizzled [*, D] tile; rows past Sq are skipped.
template <int D, class T>
__device__ __forceinline__ void store_q_rows(const uint16_t* tile, int m0, const Attn<T>& a, T* x, int b, int h,
                                             int r0, int lane) {
  store_rows_from_tile<D>(
      tile, m0,
      [&](int r) {
        const int i = r0 + m0 + r;
        return i < a.Sq ? reinterpret_cast<uint16_t*>(x + a.o_off(b, i, h)) : nullptr;
      },
      lane);
}

// ---- arithmetic ----------------------------------------------------------------------------------
// 2^x by the special-function unit (ex2.approx.ftz: relative error ~2^-22, 2^-inf = +0). The scores
// are exponentiated as exp2(s * scale * log2 e - m'), one FFMA and one MUFU per element.
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Adds (x, y) to the two consecutive f32 at p (8-byte aligned): one vector atomic on sm_90, two
// scalar ones before it.
__device__ __forceinline__ void atomic_add2(float* p, float x, float y) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float2*>(p), make_float2(x, y));
#else
  atomicAdd(p, x);
  atomicAdd(p + 1, y);
#endif
}

}  // namespace attnlab::kernels::cuda::detail::fast
