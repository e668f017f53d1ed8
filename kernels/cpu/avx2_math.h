// Vectorized float math for the CPU kernels (AVX2 + FMA, eight lanes), shared by the kernels that need
// an exponential or erf per element: a libm call per element cost more than the rest of those kernels.
//   exp_nonpositive(x)  e^x for x <= 0 (softmax after the row max, a Gaussian's e^(-x²/2))
//   erf8(x, table)      erf(x) for any x
// Both are within a few float roundings of the exact value (tests/kernels/test_kernels.cpp measures
// them against double precision). Only for builds with __AVX2__ (ours: -march=x86-64-v3).
#pragma once
#ifdef __AVX2__
#include <immintrin.h>

namespace attnlab::kernels {

// 2^k * p(r) with x = k ln2 + r, |r| <= ln2 / 2, and p the degree-7 Taylor polynomial (truncation error
// < 1e-8 relative: below float rounding). Below -87.3 the result would be denormal and is flushed to 0,
// which also makes exp(-inf) = 0.
inline __m256 exp_nonpositive(__m256 x) {
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x - k ln2 in two steps (ln2 split into a part exact in float and a correction)
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  const __m256 big_negative = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
  const __m256i k_safe = _mm256_cvtps_epi32(_mm256_max_ps(k, _mm256_set1_ps(-126.f)));
  const __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k_safe, _mm256_set1_epi32(127)), 23));
  return _mm256_andnot_ps(big_negative, _mm256_mul_ps(p, scale));
}

// erf on [0, 4) as eight polynomials of degree 7, one per interval [i/2, (i+1)/2), each in
// s = 4 (|x| - center) in [-1, 1]: coefficient k of all eight intervals sits in one row, so one
// permute picks each lane's. The coefficients interpolate double-precision erf at eight Chebyshev
// nodes per interval (error bound ~2e-9, far below float rounding), computed once at first use.
// At |x| >= 4, 1 - erf(x) < 2e-8 is below half a float ulp of 1, so erf = ±1.
struct ErfTable {
  static constexpr int kDegree = 7, kIntervals = 8;
  alignas(32) float c[kDegree + 1][kIntervals];
  ErfTable();
};
const ErfTable& erf_table();

// t: erf_table(), fetched once by the caller's loop.
inline __m256 erf8(__m256 x, const ErfTable& t) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  const __m256 a = _mm256_andnot_ps(sign, x);
  // min(NaN, 7) is 7, so a NaN lane takes a valid interval and stays NaN through s.
  const __m256i idx = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_add_ps(a, a), _mm256_set1_ps(7.f)));
  const __m256 center = _mm256_fmadd_ps(_mm256_cvtepi32_ps(idx), _mm256_set1_ps(0.5f), _mm256_set1_ps(0.25f));
  const __m256 s = _mm256_mul_ps(_mm256_sub_ps(a, center), _mm256_set1_ps(4.f));
  __m256 p = _mm256_permutevar8x32_ps(_mm256_load_ps(t.c[ErfTable::kDegree]), idx);
  for (int k = ErfTable::kDegree - 1; k >= 0; --k)
    p = _mm256_fmadd_ps(p, s, _mm256_permutevar8x32_ps(_mm256_load_ps(t.c[k]), idx));
  p = _mm256_blendv_ps(p, _mm256_set1_ps(1.f), _mm256_cmp_ps(a, _mm256_set1_ps(4.f), _CMP_GE_OQ));
  return _mm256_or_ps(p, _mm256_and_ps(x, sign));  // erf is odd
}

}  // namespace attnlab::kernels
#endif
