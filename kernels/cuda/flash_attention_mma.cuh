// The tensor-core pieces shared by the forward (flash_attention_mma.cu) and backward
// (flash_attention_mma_bwd.cu) kernels: mma.sync.aligned.m16n8k16 with f32 accumulation for bf16 and
// f16, and packing two floats into one 16-bit pair register. Fragment layouts: flash_attention_mma.cu.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace attnlab::kernels::cuda::detail {

constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

template <class T>
struct Mma;
template <>
struct Mma<__nv_bfloat16> {
  static __device__ __forceinline__ void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x = lo (low half)
    return *reinterpret_cast<const uint32_t*>(&v);
  }
};
template <>
struct Mma<__half> {
  static __device__ __forceinline__ void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
};

// Zeroes N mma accumulator fragments.
template <int N>
__device__ __forceinline__ void zero_frags(float (&c)[N][4]) {
#pragma unroll
  for (int n = 0; n < N; ++n) c[n][0] = c[n][1] = c[n][2] = c[n][3] = 0.f;
}

// Two consecutive 16-bit elements of a row as one register; 0 for a missing row.
__device__ __forceinline__ uint32_t load_pair(const uint16_t* row, int col) {
  return row ? *reinterpret_cast<const uint32_t*>(row + col) : 0u;
}

// Two consecutive 16-bit elements at p (4-byte aligned) as one register.
__device__ __forceinline__ uint32_t load_u32(const uint16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

// Two 16-bit elements of one column (rows r and r + 1 of a row-major tile with pitch `pitch`) as one
// register, the lower row in the low half: a B fragment of a [k][n] operand stored k-major.
__device__ __forceinline__ uint32_t load_column_pair(const uint16_t* p, int pitch) {
  return uint32_t(p[0]) | (uint32_t(p[pitch]) << 16);
}

// Copies `rows` rows of D 16-bit elements into a shared tile of pitch D + 8 with 16-byte loads (the
// whole block cooperates); row(r) gives the global row (16-byte aligned) or nullptr for a zero row.
template <int D, class RowFn>
__device__ __forceinline__ void copy_rows(uint16_t* tile, int rows, RowFn row) {
  constexpr int kChunks = D / 8;
  for (int e = threadIdx.x; e < rows * kChunks; e += blockDim.x) {
    const int r = e / kChunks, ch = e % kChunks;
    const uint16_t* src = reinterpret_cast<const uint16_t*>(row(r));
    const uint4 x = src ? *reinterpret_cast<const uint4*>(src + ch * 8) : make_uint4(0, 0, 0, 0);
    *reinterpret_cast<uint4*>(tile + r * (D + 8) + ch * 8) = x;
  }
}

}  // namespace attnlab::kernels::cuda::detail
