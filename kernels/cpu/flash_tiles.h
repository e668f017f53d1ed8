// Internal building blocks of flash_attention.cpp: a register-blocked tile GEMM, a vector exp and
// row max. Not a public API (no shapes beyond one tile, no argument checks). Include it only from
// kernels/cpu/*.cpp, which are compiled with -march=x86-64-v3: these inline functions use 256-bit
// vectors, and a copy compiled without AVX elsewhere would break the one-definition rule.
//
// Why hand-written and not cblas_sgemm on tiles: measured on the 2-core AVX2 box, OpenBLAS is
// ~15% faster per tile single-threaded, but a 96x96x64 tile is above its internal multithreading
// threshold (M*N*K > 65536 * GEMM_MULTITHREAD_THRESHOLD), so calls from two OpenMP threads fight
// over its thread pool and drop to ~45 GFLOP/s (vs ~170). Forcing OPENBLAS_NUM_THREADS=1 would
// change global state other layers rely on. This kernel is ~70 GFLOP/s per core, for float and
// double alike in code, with no threading interaction.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
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
      const V a = A[i * a_si + k * a_sk] - V{};  // broadcast (x - 0 folds away, 0 + x does not)
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

// exp(x) in float for x <= 0 (softmax arguments are s - max): x = n ln2 + r with |r| <= ln2/2,
// exp(r) by Cephes' degree-6 polynomial (~1 ulp), 2^n built in the exponent bits. Returns exactly
// 0 below -87 (and for -inf: masked scores). F is float or Vec<float>::type (8 lanes), I the
// matching int32 type: the same code serves the vector body and the scalar tail. Written with
// explicit vectors because GCC will not if-convert the clamps of a plain loop under the default
// -ftrapping-math, and a scalar exp made the whole forward 4x slower.
template <class F, class I>
inline F exp_poly(F x) {
  const F lo = F{} - 87.0f, hi = F{} + 88.0f;
  const F xc = x < lo ? lo : (x > hi ? hi : x);
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the mantissa
  const F t = xc * 1.44269504088896341f + shifter;
  const F n = t - shifter;
  const F r = xc - n * 0.693359375f + n * 2.12194440e-4f;  // ln2 split in two for accuracy
  F y = F{} + 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  // n sits in t's low mantissa bits; (n + 127) << 23 is the float 2^n.
  const F two_n = std::bit_cast<F>((std::bit_cast<I>(t) - 0x4B400000 + 127) << 23);
  return x < lo ? F{} : y * two_n;
}
// max_c row[c] for c < n (-inf when n == 0), vectorized: GCC leaves a std::max loop scalar.
template <class T>
inline T row_max(const T* row, int64_t n) {
  using V = typename Vec<T>::type;
  constexpr int W = Vec<T>::W;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  V m = neg_inf - V{};
  int64_t c = 0;
  for (; c + W <= n; c += W) {
    const V x = vload(row + c);
    m = x > m ? x : m;
  }
  T mx = neg_inf;
  for (int lane = 0; lane < W; ++lane) mx = m[lane] > mx ? m[lane] : mx;
  for (; c < n; ++c) mx = row[c] > mx ? row[c] : mx;
  return mx;
}

typedef int32_t Int8x32 __attribute__((vector_size(32)));
inline float exp_f32(float x) { return exp_poly<float, int32_t>(x); }

// row[c] = exp(row[c] - shift) for c < n; returns the sum (in a fixed order: 8 lane sums, then
// the lanes, then the tail). double uses libm: it is the oracle-precision type, not the fast one.
inline float exp_shift_sum(float* row, int64_t n, float shift) {
  using V = Vec<float>::type;
  V acc{};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const V e = exp_poly<V, Int8x32>(vload(row + c) - shift);
    vstore(row + c, e);
    acc += e;
  }
  float sum = 0;
  for (int lane = 0; lane < 8; ++lane) sum += acc[lane];
  for (; c < n; ++c) sum += (row[c] = exp_f32(row[c] - shift));
  return sum;
}
inline double exp_shift_sum(double* row, int64_t n, double shift) {
  double sum = 0;
  for (int64_t c = 0; c < n; ++c) sum += (row[c] = std::exp(row[c] - shift));
  return sum;
}

// row[c] = exp(row[c] - shift) without the sum (backward: shift = LSE gives P directly).
inline void exp_shift(float* row, int64_t n, float shift) {
  using V = Vec<float>::type;
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) vstore(row + c, exp_poly<V, Int8x32>(vload(row + c) - shift));
  for (; c < n; ++c) row[c] = exp_f32(row[c] - shift);
}
inline void exp_shift(double* row, int64_t n, double shift) {
  for (int64_t c = 0; c < n; ++c) row[c] = std::exp(row[c] - shift);
}

}  // namespace attnlab::kernels::detail
