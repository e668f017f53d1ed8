// Internal building blocks of flash_attention.cpp: a register-blocked tile GEMM and a vectorizable
// exp. Not a public API (no shapes beyond one tile, no argument checks).
//
// Why hand-written and not cblas_sgemm on tiles: measured on the 2-core AVX2 box, OpenBLAS is
// ~15% faster per tile single-threaded, but a 96x96x64 tile is above its internal multithreading
// threshold (M*N*K > 65536 * GEMM_MULTITHREAD_THRESHOLD), so calls from two OpenMP threads fight
// over its thread pool and drop to ~45 GFLOP/s (vs ~170). Forcing OPENBLAS_NUM_THREADS=1 would
// change global state other layers rely on. This kernel is ~70 GFLOP/s per core, for float and
// double alike in code, with no threading interaction.
#pragma once
#include <cstdint>
#include <cstring>
#include <numeric>

namespace attnlab::kernels::detail {

// One 256-bit AVX2 register of T (GCC vector extension; -march=x86-64-v3 maps it to ymm).
template <class T>
struct Vec {
  static constexpr int W = 32 / int(sizeof(T));  // lanes: 8 floats or 4 doubles
  typedef T type __attribute__((vector_size(32)));
};
template <class T>
inline typename Vec<T>::type vload(const T* p) {
  typename Vec<T>::type v;
  std::memcpy(&v, p, sizeof(v));  // unaligned load
  return v;
}
template <class T>
inline void vstore(T* p, typename Vec<T>::type v) {
  std::memcpy(p, &v, sizeof(v));
}

// Register blocking: MR rows x NR columns of C live in 12 ymm registers (MR * NV), the NV
// B-vectors of one k and one broadcast A value take 3 more: 15 of AVX2's 16.
template <class T>
struct Blocking {
  static constexpr int MR = 6;
  static constexpr int NV = 2;
  static constexpr int NR = NV * Vec<T>::W;  // 16 floats / 8 doubles
  static constexpr int LC = std::lcm(MR, NR);  // KV tiles are M in one GEMM and N in another
};
static_assert(Blocking<float>::LC == 48 && Blocking<double>::LC == 24);

// C[MR x NR] (+)= sum_k A[i, k] * B[k, :]
//   A element (i, k) at A[i * a_si + k * a_sk]  (any strides: A may be a transposed tile)
//   B row k at B + k * ldb, NR contiguous values
//   C row i at C + i * ldc
template <class T, bool ACCUMULATE>
inline void micro_kernel(int64_t K, const T* __restrict A, int64_t a_si, int64_t a_sk,
                         const T* __restrict B, int64_t ldb, T* __restrict C, int64_t ldc) {
  using V = typename Vec<T>::type;
  constexpr int MR = Blocking<T>::MR, NV = Blocking<T>::NV, W = Vec<T>::W;
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = ACCUMULATE ? vload(C + i * ldc + j * W) : V{};
  for (int64_t k = 0; k < K; ++k) {
    V b[NV];
    for (int j = 0; j < NV; ++j) b[j] = vload(B + k * ldb + j * W);
    for (int i = 0; i < MR; ++i) {
      const V a = V{} + A[i * a_si + k * a_sk];  // broadcast
      for (int j = 0; j < NV; ++j) acc[i][j] += a * b[j];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) vstore(C + i * ldc + j * W, acc[i][j]);
}

// C[M x N] (+)= A[M x K] B[K x N], M % MR == 0 and N % NR == 0 (callers pad tiles with zeros).
// Column panels outer: the K x NR panel of B stays in L1 while the MR-row strips of A stream.
template <class T, bool ACCUMULATE>
void tile_gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t a_si, int64_t a_sk, const T* B,
               int64_t ldb, T* C, int64_t ldc) {
  constexpr int MR = Blocking<T>::MR, NR = Blocking<T>::NR;
  for (int64_t j = 0; j < N; j += NR)
    for (int64_t i = 0; i < M; i += MR)
      micro_kernel<T, ACCUMULATE>(K, A + i * a_si, a_si, a_sk, B + j, ldb, C + i * ldc + j, ldc);
}

// exp(x) in float for x <= 0 (softmax arguments are s - max), written so GCC vectorizes a loop
// over it: x = n ln2 + r with |r| <= ln2/2, exp(r) by Cephes' degree-6 polynomial (~1 ulp),
// 2^n built in the exponent bits. Returns exactly 0 below -87 (and for -inf: masked scores).
inline float exp_f32(float x) {
  const float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the mantissa
  const float t = xc * 1.44269504088896341f + shifter;
  const float n = t - shifter;
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;  // ln2 split in two for accuracy
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  int32_t ti, two_n;
  std::memcpy(&ti, &t, 4);
  two_n = (ti - 0x4B400000 + 127) << 23;  // integer n sits in t's low mantissa bits
  float scale;
  std::memcpy(&scale, &two_n, 4);
  return x < -87.0f ? 0.0f : y * scale;
}

// row[c] = exp(row[c] - shift) for c < n; returns the sum. double uses libm (no fast path needed
// for the oracle-precision type), float the polynomial above.
inline float exp_shift_sum(float* row, int64_t n, float shift) {
  float sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t c = 0; c < n; ++c) {
    row[c] = exp_f32(row[c] - shift);
    sum += row[c];
  }
  return sum;
}
inline double exp_shift_sum(double* row, int64_t n, double shift) {
  double sum = 0;
  for (int64_t c = 0; c < n; ++c) {
    row[c] = __builtin_exp(row[c] - shift);
    sum += row[c];
  }
  return sum;
}

// row[c] = exp(row[c] - shift) without the sum (backward: shift = LSE gives P directly).
inline void exp_shift(float* row, int64_t n, float shift) {
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) row[c] = exp_f32(row[c] - shift);
}
inline void exp_shift(double* row, int64_t n, double shift) {
  for (int64_t c = 0; c < n; ++c) row[c] = __builtin_exp(row[c] - shift);
}

}  // namespace attnlab::kernels::detail
