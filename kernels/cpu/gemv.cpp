#include "kernels/cpu/gemv.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/error.h"

namespace attnlab::kernels {

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::bf16: return "bf16";
    case WeightFormat::int8: return "int8";
    case WeightFormat::w8a8: return "w8a8";
    default: return "f32";
  }
}

WeightFormat parse_weight_format(const char* name) {
  const std::string s = name;
  if (s == "f32") return WeightFormat::f32;
  if (s == "bf16") return WeightFormat::bf16;
  if (s == "int8") return WeightFormat::int8;
  if (s == "w8a8") return WeightFormat::w8a8;
  throw Error("unknown weight format '" + s + "' (expected f32, bf16, int8 or w8a8)");
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
// thread (a futex wake under the passive waits attnlab uses) costs more than it saves. An int8 matrix
// is a quarter of an f32 one's bytes and stays in cache, so a row costs far less and int8 matrices
// need about eight times the elements before a second thread pays: at 2^17 the seed model's 256 x 1024
// feed-forward matrices were split, and an int8 or w8a8 stream tick took 1.3-1.5x as long with two
// threads as with one.
constexpr int64_t kParallelElems = int64_t(1) << 17;
constexpr int64_t kParallelElemsInt8 = int64_t(1) << 20;

// Runs rows(r0, r1) over row ranges: one per thread for a large matrix, multiples of 4 rows.
template <class F>
void split_rows(int64_t rows, int64_t cols, int64_t min_elems, F&& f) {
  const int64_t threads = rows * cols >= min_elems ? std::min<int64_t>(omp_get_max_threads(), rows / 64) : 1;
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
  split_rows(rows, cols, kParallelElems, [&](int64_t r0, int64_t r1) {
    row_dots<F32Row>(r0, r1, cols, [&](int64_t i) { return F32Row{A + i * lda}; }, x,
                     [&](int64_t i, float d) { y[i] = alpha * d + (beta == 0.f ? 0.f : beta * y[i]); });
  });
}

void gemv_bf16(int64_t rows, int64_t cols, const uint16_t* A, const float* x, float* y) {
  split_rows(rows, cols, kParallelElems, [&](int64_t r0, int64_t r1) {
    row_dots<Bf16Row>(r0, r1, cols, [&](int64_t i) { return Bf16Row{A + i * cols}; }, x,
                      [&](int64_t i, float d) { y[i] = d; });
  });
}

void gemv_int8(int64_t rows, int64_t cols, const int8_t* A, const float* row_scales, const float* x, float* y) {
  split_rows(rows, cols, kParallelElemsInt8, [&](int64_t r0, int64_t r1) {
    row_dots<Int8Row>(r0, r1, cols, [&](int64_t i) { return Int8Row{A + i * cols}; }, x,
                      [&](int64_t i, float d) { y[i] = row_scales[i] * d; });
  });
}

void quantize_q8_blocks(const float* x, int64_t n, int8_t* q, float* scales) {
  for (int64_t b0 = 0; b0 < n; b0 += kQ8Block) {
    const int64_t len = std::min(kQ8Block, n - b0);
    const float* xb = x + b0;
    float amax = 0;
    bool finite = true;
    int64_t k = 0;
    if (len == kQ8Block) {  // |x| by clearing the sign bit; x - x is 0 exactly when x is finite
      const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
      __m256 m = _mm256_setzero_ps(), ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
      for (int c = 0; c < 4; ++c) {
        const __m256 v = _mm256_loadu_ps(xb + 8 * c);
        m = _mm256_max_ps(m, _mm256_and_ps(v, abs_mask));
        ok = _mm256_and_ps(ok, _mm256_cmp_ps(_mm256_sub_ps(v, v), _mm256_setzero_ps(), _CMP_EQ_OQ));
      }
      float lanes[8];
      _mm256_storeu_ps(lanes, m);
      for (float l : lanes) amax = std::max(amax, l);
      finite = _mm256_movemask_ps(ok) == 0xff;
      k = kQ8Block;
    }
    for (; k < len; ++k) {
      amax = std::max(amax, std::abs(xb[k]));
      finite = finite && std::isfinite(xb[k]);
    }
    // A non-finite x must not vanish into a finite code: its block's scale is NaN, so are the products.
    const float s = finite ? amax / 127.f : std::nanf(""), inv = finite && amax > 0 ? 127.f / amax : 0.f;
    scales[b0 / kQ8Block] = s;
    k = 0;
    if (len == kQ8Block) {  // round to nearest even (as lrint), then narrow 32 -> 16 -> 8 bits in order
      const __m256 vinv = _mm256_set1_ps(inv);
      __m256i v[4];
      for (int c = 0; c < 4; ++c) v[c] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 8 * c), vinv));
      const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(v[0], v[1]), 0xd8);
      const __m256i x16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(v[2], v[3]), 0xd8);
      const __m256i b8 = _mm256_permute4x64_epi64(_mm256_packs_epi16(w16, x16), 0xd8);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b0), b8);
      k = kQ8Block;
    }
    for (; k < len; ++k) q[b0 + k] = int8_t(std::lrint(xb[k] * inv));
  }
}

namespace {

// Integer dot of 32 int8 weights with 32 int8 activations as eight 32-bit partial sums (AVX2 has no
// signed x signed byte product: maddubs takes |w| unsigned and moves w's sign onto x; |w| <= 127, so
// its pairwise 16-bit sums cannot saturate).
inline __m256i dot32_i8(__m256i w, __m256i x) {
  const __m256i prod16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
  return _mm256_madd_epi16(prod16, _mm256_set1_epi16(1));
}

// Rows [r0, r1): y[i] = row_scales[i] * sum over blocks b of xs[b] * <A[i, block b], xq[block b]>, four
// rows per pass sharing each activation block; the column tail (cols % 32) in scalar code.
void w8a8_rows(int64_t r0, int64_t r1, int64_t cols, const int8_t* A, const float* row_scales, const int8_t* xq,
               const float* xs, float* y) {
  const int64_t blocks = cols / kQ8Block, tail = blocks * kQ8Block;
  auto tail_dot = [&](const int8_t* a) {
    float d = 0;
    for (int64_t k = tail; k < cols; ++k) d += float(a[k]) * float(xq[k]) * xs[blocks];
    return d;
  };
  int64_t i = r0;
  for (; i + 4 <= r1; i += 4) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < blocks; ++b) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * kQ8Block));
      const __m256 sx = _mm256_set1_ps(xs[b]);
      for (int r = 0; r < 4; ++r) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(A + (i + r) * cols + b * kQ8Block));
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32_i8(wv, xv)), sx, acc[r]);
      }
    }
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
    float d[4];
    _mm_storeu_ps(d, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    for (int r = 0; r < 4; ++r) y[i + r] = row_scales[i + r] * (d[r] + tail_dot(A + (i + r) * cols));
  }
  for (; i < r1; ++i) {
    const int8_t* a = A + i * cols;
    float d = 0;
    for (int64_t b = 0; b < blocks; ++b) {
      int32_t s = 0;
      for (int64_t k = b * kQ8Block; k < (b + 1) * kQ8Block; ++k) s += int32_t(a[k]) * int32_t(xq[k]);
      d += float(s) * xs[b];
    }
    y[i] = row_scales[i] * (d + tail_dot(a));
  }
}

}  // namespace

void gemv_w8a8(int64_t rows, int64_t cols, const int8_t* A, const float* row_scales, const float* x, float* y) {
  thread_local std::vector<int8_t> xq;
  thread_local std::vector<float> xs;
  xq.resize(size_t(cols)), xs.resize(size_t((cols + kQ8Block - 1) / kQ8Block));
  quantize_q8_blocks(x, cols, xq.data(), xs.data());
  // Plain pointers into this thread's buffers: inside the parallel region the name of a thread_local
  // would mean each worker's own (empty) one.
  const int8_t* q = xq.data();
  const float* qs = xs.data();
  split_rows(rows, cols, kParallelElemsInt8, [&](int64_t r0, int64_t r1) { w8a8_rows(r0, r1, cols, A, row_scales, q, qs, y); });
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
