#include "kernels/cpu/gemv.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/cpu/convert.h"
#include "kernels/error.h"

namespace attnlab::kernels {

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::bf16: return "bf16";
    case WeightFormat::int8: return "int8";
    default: return "f32";
  }
}

WeightFormat parse_weight_format(const char* name) {
  const std::string s = name;
  if (s == "f32") return WeightFormat::f32;
  if (s == "bf16") return WeightFormat::bf16;
  if (s == "int8") return WeightFormat::int8;
  throw Error("unknown weight format '" + s + "' (expected f32, bf16 or int8)");
}


namespace {

// Eight consecutive elements of a stored row as f32, and one element (for the column tail).
struct F32Row {
  const float* p;
  __m256 load8(int64_t k) const { return _mm256_loadu_ps(p + k); }
  float at(int64_t k) const { return p[k]; }
};
struct Bf16Row {
  const uint16_t* p;
  __m256 load8(int64_t k) const {  // bf16 is the top half of an f32: widen and shift
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  float at(int64_t k) const { return bf16_to_f32(p[k]); }
};
struct Int8Row {  // the row scale is applied once, to the dot product
  const int8_t* p;
  __m256 load8(int64_t k) const {
    int64_t bits;
    std::memcpy(&bits, p + k, 8);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(bits)));
  }
  float at(int64_t k) const { return float(p[k]); }
};

// Dots of rows [r0, r1) with x: four rows per pass over x, two accumulators each, and one combined
// horizontal sum for the four (a horizontal sum per row would cost as much as a short row's FMAs).
// finish(i, dot) stores row i.
template <class Row, class MakeRow, class Finish>
void row_dots(int64_t r0, int64_t r1, int64_t cols, MakeRow row, const float* x, Finish finish) {
  const int64_t c16 = cols / 16 * 16;
  int64_t i = r0;
  for (; i + 4 <= r1; i += 4) {
    const Row a[4] = {row(i), row(i + 1), row(i + 2), row(i + 3)};
    __m256 s[4][2];
    for (auto& r : s) r[0] = r[1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < c16; k += 16) {
      const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
      for (int r = 0; r < 4; ++r) {
        s[r][0] = _mm256_fmadd_ps(a[r].load8(k), x0, s[r][0]);
        s[r][1] = _mm256_fmadd_ps(a[r].load8(k + 8), x1, s[r][1]);
      }
    }
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(_mm256_add_ps(s[0][0], s[0][1]), _mm256_add_ps(s[1][0], s[1][1])),
                                    _mm256_hadd_ps(_mm256_add_ps(s[2][0], s[2][1]), _mm256_add_ps(s[3][0], s[3][1])));
    float d[4];
    _mm_storeu_ps(d, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    for (int r = 0; r < 4; ++r) {
      for (int64_t k = c16; k < cols; ++k) d[r] += a[r].at(k) * x[k];
      finish(i + r, d[r]);
    }
  }
  for (; i < r1; ++i) {
    const Row a = row(i);
    float d = 0;
    for (int64_t k = 0; k < cols; ++k) d += a.at(k) * x[k];
    finish(i, d);
  }
}

// Matrices of at least this many elements are split over the threads: below it, waking a second
// thread costs more than it saves.
constexpr int64_t kParallelElems = int64_t(1) << 17;

// Runs rows(r0, r1) over row ranges: one per thread for a large matrix, multiples of 4 rows.
template <class F>
void split_rows(int64_t rows, int64_t cols, F&& f) {
  const int64_t threads = rows * cols >= kParallelElems ? std::min<int64_t>(omp_get_max_threads(), rows / 64) : 1;
  if (threads <= 1) return f(int64_t(0), rows);
#pragma omp parallel num_threads(int(threads))
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t per = (rows + n - 1) / n / 4 * 4 + 4;
    const int64_t r0 = std::min(rows, t * per), r1 = std::min(rows, r0 + per);
    f(r0, r1);
  }
}

}  // namespace

void gemv(int64_t rows, int64_t cols, float alpha, const float* A, int64_t lda, const float* x, float beta, float* y) {
  split_rows(rows, cols, [&](int64_t r0, int64_t r1) {
    row_dots<F32Row>(r0, r1, cols, [&](int64_t i) { return F32Row{A + i * lda}; }, x,
                     [&](int64_t i, float d) { y[i] = alpha * d + (beta == 0.f ? 0.f : beta * y[i]); });
  });
}

void gemv_bf16(int64_t rows, int64_t cols, const uint16_t* A, const float* x, float* y) {
  split_rows(rows, cols, [&](int64_t r0, int64_t r1) {
    row_dots<Bf16Row>(r0, r1, cols, [&](int64_t i) { return Bf16Row{A + i * cols}; }, x,
                      [&](int64_t i, float d) { y[i] = d; });
  });
}

void gemv_int8(int64_t rows, int64_t cols, const int8_t* A, const float* row_scales, const float* x, float* y) {
  split_rows(rows, cols, [&](int64_t r0, int64_t r1) {
    row_dots<Int8Row>(r0, r1, cols, [&](int64_t i) { return Int8Row{A + i * cols}; }, x,
                      [&](int64_t i, float d) { y[i] = row_scales[i] * d; });
  });
}

void pack_int8_rows(const float* w, int64_t rows, int64_t cols, int8_t* q, float* row_scales) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* r = w + i * cols;
    float amax = 0;
    for (int64_t k = 0; k < cols; ++k) amax = std::max(amax, std::abs(r[k]));
    ATTNLAB_CHECK(std::isfinite(amax), "pack_int8_rows: row ", i, " holds a non-finite weight");
    const float s = amax > 0 ? amax / 127.f : 1.f;
    row_scales[i] = s;
    for (int64_t k = 0; k < cols; ++k) q[i * cols + k] = int8_t(std::lrint(std::clamp(r[k] / s, -127.f, 127.f)));
  }
}

void unpack_int8_rows(const int8_t* q, const float* row_scales, int64_t rows, int64_t cols, float* w) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < cols; ++k) w[i * cols + k] = row_scales[i] * float(q[i * cols + k]);
}

}  // namespace attnlab::kernels
