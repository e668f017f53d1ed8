#include "kernels/cpu/decode_attention.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/avx2_math.h"
#include "kernels/error.h"

namespace attnlab::kernels {
namespace {

// Query rows (query position x head of the group) one task handles: all of them for decoding, chunks
// of about 64 for a prefill so the score block [rows, length] stays small.
constexpr int64_t kRowsPerTask = 64;
// Key rows prefetched ahead of the one being scored: a decode step reads each cached row once, after
// the step's weights have streamed through the caches, so without a hint every row is a memory stall.
constexpr int64_t kPrefetchRows = 32;

template <class T>
void prefetch_row(const T* row, int64_t D) {
  for (int64_t off = 0; off < D * int64_t(sizeof(T)); off += 64)
    __builtin_prefetch(reinterpret_cast<const char*>(row) + off);
}

template <class T>
void check(const DecodeParams<T>& p) {
  ATTNLAB_CHECK(p.B > 0 && p.Tq > 0 && p.H > 0 && p.Hkv > 0 && p.D > 0 && p.H % p.Hkv == 0,
                "decode_attention: bad sizes B ", p.B, ", Tq ", p.Tq, ", H ", p.H, ", Hkv ", p.Hkv, ", D ", p.D);
  ATTNLAB_CHECK(p.q && p.o, "decode_attention: null q or o");
  ATTNLAB_CHECK(p.window >= 0, "decode_attention: window must be >= 0, got ", p.window);
}

// dot products of one key row with `rows` query rows: out[ii * out_stride] = <q[ii], k>. The float version does four
// rows at a time with AVX2 and one combined horizontal sum (a compiler-vectorized reduction per dot
// spends more on its horizontal sum than on the D = 32 multiply-adds).
template <class T>
void dots(const T* k, const T* const* q, int64_t rows, int64_t D, T* out, int64_t out_stride) {
  for (int64_t ii = 0; ii < rows; ++ii) {
    T acc = 0;
    for (int64_t d = 0; d < D; ++d) acc += q[ii][d] * k[d];
    out[ii * out_stride] = acc;
  }
}

#ifdef __AVX2__
template <>
[[gnu::always_inline]] inline void dots<float>(const float* k, const float* const* q, int64_t rows, int64_t D,
                                               float* out, int64_t out_stride) {
  if (D % 8 != 0) {
    for (int64_t ii = 0; ii < rows; ++ii) {
      float acc = 0;
      for (int64_t d = 0; d < D; ++d) acc += q[ii][d] * k[d];
      out[ii * out_stride] = acc;
    }
    return;
  }
  int64_t ii = 0;
  for (; ii + 4 <= rows; ii += 4) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < D; d += 8) {
      const __m256 kv = _mm256_loadu_ps(k + d);
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q[ii] + d), kv, a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q[ii + 1] + d), kv, a1);
      a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q[ii + 2] + d), kv, a2);
      a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q[ii + 3] + d), kv, a3);
    }
    // [a0 a1 a2 a3] lane sums: two hadds leave each row's partial sums in both 128-bit halves.
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    const __m128 d4 = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    // Stored one lane at a time from the register: the scores go to four rows of the score matrix (a
    // vector store read back as scalars would stall store forwarding).
    float* o = out + ii * out_stride;
    _mm_store_ss(o, d4);
    _mm_store_ss(o + out_stride, _mm_shuffle_ps(d4, d4, 1));
    _mm_store_ss(o + 2 * out_stride, _mm_shuffle_ps(d4, d4, 2));
    _mm_store_ss(o + 3 * out_stride, _mm_shuffle_ps(d4, d4, 3));
  }
  for (; ii < rows; ++ii) {
    __m256 a = _mm256_setzero_ps();
    for (int64_t d = 0; d < D; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q[ii] + d), _mm256_loadu_ps(k + d), a);
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    out[ii * out_stride] = _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
  }
}
#endif

// Scores of every query row against keys 0..n: st[ii * n + j] = <q[ii], k[j]>, for rows stored in the
// compute type (k[j] points into the cache). Key by key, as dots() above; the float version below
// puts keys in the vector lanes instead.
template <class T>
void scores(const T* const* q, int64_t rows, const T* const* k, int64_t n, int64_t D, T* st) {
  for (int64_t j = 0; j < n; ++j) {
    if (j + kPrefetchRows < n) prefetch_row(k[j + kPrefetchRows], D);
    dots(k[j], q, rows, D, st + j, n);
  }
}

#ifdef __AVX2__
// One query row against eight keys, the eight scores in one vector: eight accumulators take a D/8-long
// chain of FMAs each, then one transposing reduction (six hadds, two lane swaps) sums all eight at
// once. Key by key, a decode step spent more on horizontal sums and scattered score stores than on
// its multiply-adds.
[[gnu::always_inline]] inline __m256 dots_8keys(const float* q, const float* const* k, int64_t D) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (int64_t d = 0; d < D; d += 8) {
    const __m256 qv = _mm256_loadu_ps(q + d);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(k[0] + d), qv, a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(k[1] + d), qv, a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(k[2] + d), qv, a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(k[3] + d), qv, a3);
    a4 = _mm256_fmadd_ps(_mm256_loadu_ps(k[4] + d), qv, a4);
    a5 = _mm256_fmadd_ps(_mm256_loadu_ps(k[5] + d), qv, a5);
    a6 = _mm256_fmadd_ps(_mm256_loadu_ps(k[6] + d), qv, a6);
    a7 = _mm256_fmadd_ps(_mm256_loadu_ps(k[7] + d), qv, a7);
  }
  // u0 = [key 0..3 sums of lanes 0-3 | key 0..3 sums of lanes 4-7], u1 the same for keys 4..7.
  const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

template <>
void scores<float>(const float* const* q, int64_t rows, const float* const* k, int64_t n, int64_t D, float* st) {
  int64_t j = 0;
  if (D % 8 == 0)
    for (; j + 8 <= n; j += 8) {
      if (j + kPrefetchRows + 8 <= n)
        for (int u = 0; u < 8; ++u) prefetch_row(k[j + kPrefetchRows + u], D);
      for (int64_t ii = 0; ii < rows; ++ii) _mm256_storeu_ps(st + ii * n + j, dots_8keys(q[ii], k + j, D));
    }
  for (; j < n; ++j) {  // the last n % 8 keys, or every key when D % 8 != 0
    if (j + kPrefetchRows < n) prefetch_row(k[j + kPrefetchRows], D);
    dots(k[j], q, rows, D, st + j, n);
  }
}
#endif

// A softmax row's two reductions. The float versions run eight lanes at a time: a scalar max or sum
// is a chain of dependent adds (3-4 cycles each), which cost a decode step more than its exponentials.
// row_max: the max of x[0..n) (-inf for n = 0). exp_shifted_sum: x[i] = exp(x[i] - m) (exp(-inf) = 0),
// returns the sum.
template <class T>
T row_max(const T* x, int64_t n) {
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}
template <class T>
T exp_shifted_sum(T* x, int64_t n, T m) {
  T sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i] = std::exp(x[i] - m);
  return sum;
}

#ifdef __AVX2__
inline float lane_sum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

template <>
float row_max<float>(const float* x, int64_t n) {
  __m256 a = _mm256_set1_ps(-std::numeric_limits<float>::infinity()), b = a;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) a = _mm256_max_ps(a, _mm256_loadu_ps(x + i)), b = _mm256_max_ps(b, _mm256_loadu_ps(x + i + 8));
  float lanes[8];
  _mm256_storeu_ps(lanes, _mm256_max_ps(a, b));
  float m = lanes[0];
  for (float l : lanes) m = std::max(m, l);
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

template <>
float exp_shifted_sum<float>(float* x, int64_t n, float m) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = lane_sum(acc);
  for (; i < n; ++i) sum += x[i] = std::exp(x[i] - m);
  return sum;
}
#endif

// acc[ii][0..D) = sum_j p[ii][j] * v[j][0..D) for `rows` rows, p row-major (p[ii * n + j]).
template <class T>
void weighted_sum(const T* p, int64_t rows, const T* const* v, int64_t n, int64_t D, T* acc) {
  for (int64_t ii = 0; ii < rows; ++ii) {
    T* a = acc + ii * D;
    for (int64_t j = 0; j < n; ++j) {
      const T pij = p[ii * n + j];
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) a[d] += pij * v[j][d];
    }
  }
}

#ifdef __AVX2__
// Two rows x (8 * NV) channels of accumulators stay in registers over all n value rows (NV <= 4: at
// most 8 accumulators + 4 loads of 16 ymm registers).
template <int NV>
void weighted_sum_2rows(const float* p, int64_t ii, const float* const* v, int64_t n, int64_t d0,
                        bool two, float* acc, int64_t D) {
  __m256 a0[NV], a1[NV];
  for (int c = 0; c < NV; ++c) a0[c] = a1[c] = _mm256_setzero_ps();
  for (int64_t j = 0; j < n; ++j) {
    const __m256 p0 = _mm256_set1_ps(p[ii * n + j]);
    const __m256 p1 = _mm256_set1_ps(two ? p[(ii + 1) * n + j] : 0.f);
    const float* vj = v[j] + d0;
    if (j + kPrefetchRows < n) prefetch_row(v[j + kPrefetchRows] + d0, 8 * NV);
    for (int c = 0; c < NV; ++c) {
      const __m256 x = _mm256_loadu_ps(vj + 8 * c);
      a0[c] = _mm256_fmadd_ps(p0, x, a0[c]);
      a1[c] = _mm256_fmadd_ps(p1, x, a1[c]);
    }
  }
  for (int c = 0; c < NV; ++c) {
    _mm256_storeu_ps(acc + ii * D + d0 + 8 * c, a0[c]);
    if (two) _mm256_storeu_ps(acc + (ii + 1) * D + d0 + 8 * c, a1[c]);
  }
}

template <>
void weighted_sum<float>(const float* p, int64_t rows, const float* const* v, int64_t n, int64_t D, float* acc) {
  if (D % 8 != 0) {
    for (int64_t ii = 0; ii < rows; ++ii)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t d = 0; d < D; ++d) acc[ii * D + d] += p[ii * n + j] * v[j][d];
    return;
  }
  for (int64_t d0 = 0; d0 < D; d0 += 32)
    for (int64_t ii = 0; ii < rows; ii += 2) {
      const bool two = ii + 1 < rows;
      switch (std::min<int64_t>(32, D - d0) / 8) {
        case 1: weighted_sum_2rows<1>(p, ii, v, n, d0, two, acc, D); break;
        case 2: weighted_sum_2rows<2>(p, ii, v, n, d0, two, acc, D); break;
        case 3: weighted_sum_2rows<3>(p, ii, v, n, d0, two, acc, D); break;
        default: weighted_sum_2rows<4>(p, ii, v, n, d0, two, acc, D); break;
      }
    }
}
#endif

// Per-thread buffers reused across tasks: a decode step runs a few small tasks per layer, and
// allocating their buffers each time showed in profiles of a streaming tick.
template <class T>
struct Workspace {
  enum Buffer { queries, scores, acc, scratch, kBuffers };
  enum Rows { query_rows, key_rows, value_rows, kRows };
  std::vector<T> buffers[kBuffers];
  std::vector<const T*> rows[kRows];
  std::vector<int64_t> positions;
  T* get(Buffer b, size_t n) { return grown(buffers[b], n); }
  const T** get_rows(Rows r, size_t n) { return grown(rows[r], n); }
  int64_t* get_positions(size_t n) { return grown(positions, n); }
  template <class V> static V* grown(std::vector<V>& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
  }
};
template <class T>
Workspace<T>& workspace() {
  thread_local Workspace<T> w;
  return w;
}

// One task: batch row b, KV head g, queries [i0, i1) of the Tq new ones, all heads of the group: query
// rows ii = (query i0 + ii / G, head g * G + ii % G).
template <class T, class Reader>
void decode_task(const DecodeParams<T>& p, const Reader& r, int64_t b, int64_t g, int64_t i0, int64_t i1) {
  const int64_t G = p.H / p.Hkv, D = p.D, rows = (i1 - i0) * G;
  const int64_t L = r.length(b), pos = r.position(b);
  const int64_t last_qpos = pos - p.Tq + i1 - 1;
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();

  // The task's query rows, pre-scaled, so a dot product is the score.
  Workspace<T>& ws = workspace<T>();
  T* qs = ws.get(ws.queries, size_t(rows * D));
  const T** qrow = ws.get_rows(ws.query_rows, size_t(rows));
  int64_t* qpos = ws.get_positions(size_t(rows));
  for (int64_t ii = 0; ii < rows; ++ii) {
    const int64_t i = i0 + ii / G, h = g * G + ii % G;
    const T* q = p.q + b * p.q_stride_b + i * p.q_stride_t + h * p.q_stride_h;
    for (int64_t d = 0; d < D; ++d) qs[ii * D + d] = q[d] * p.scale;
    qrow[ii] = qs + ii * D;
    qpos[ii] = pos - p.Tq + i;
  }
  const int64_t first_qpos = pos - p.Tq + i0;
  // Keys are in position order: skip the ones older than every row's window (a ring holds more than
  // it attends) and stop at the first one no query of the task may see (binary searches).
  auto first_after = [&](int64_t lo, int64_t limit) {  // first j >= lo with key_position > limit
    int64_t hi = L;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (r.key_position(b, g, mid) > limit) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  const int64_t jbegin = p.window > 0 ? first_after(0, first_qpos - p.window) : 0;
  const int64_t jend = p.causal ? first_after(jbegin, last_qpos) : L;
  const int64_t n = std::max<int64_t>(jend - jbegin, 0);
  // Scores row-major, st[ii][j] for keys jbegin + j, so each row's softmax is a contiguous pass.
  T* st = ws.get(ws.scores, size_t(std::max<int64_t>(n, 1) * rows));
  T* acc = ws.get(ws.acc, size_t(rows * D));
  std::fill(acc, acc + rows * D, T(0));
  T* scratch = ws.get(ws.scratch, size_t(D));
  // Rows stored in the compute type: pointers to every key and value row, read straight from the cache
  // (with prefetches ahead: it is usually out of L1/L2 by now). Decoded rows go through scratch one by one.
  const T** krows = nullptr;
  const T** vrows = nullptr;
  if constexpr (Reader::kStableRows) {
    krows = ws.get_rows(ws.key_rows, size_t(n));
    vrows = ws.get_rows(ws.value_rows, size_t(n));
    for (int64_t j = 0; j < n; ++j) {
      krows[j] = r.key(b, g, jbegin + j, nullptr);
      vrows[j] = r.value(b, g, jbegin + j, nullptr);
    }
    scores(qrow, rows, krows, n, D, st);
  } else {
    for (int64_t j = 0; j < n; ++j) dots(r.key(b, g, jbegin + j, scratch), qrow, rows, D, st + j, n);
  }
  // A row does not see a key newer than its query or older than its window allows. Only the keys newer
  // than the first query (causal) or older than the last query's window can be hidden from some row:
  // two ranges at the ends, both empty when the task has one query position (decoding).
  auto mask_range = [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t kp = r.key_position(b, g, jbegin + j);
      for (int64_t ii = 0; ii < rows; ++ii) {
        const int64_t qp = qpos[ii];
        if ((p.causal && kp > qp) || (p.window > 0 && kp <= qp - p.window)) st[ii * n + j] = kNegInf;
      }
    }
  };
  if (p.window > 0) mask_range(0, std::min(first_after(jbegin, last_qpos - p.window) - jbegin, n));
  if (p.causal) mask_range(std::min(first_after(jbegin, first_qpos) - jbegin, n), n);
  // Softmax of each row over the n keys; a row that sees nothing keeps its -inf scores (exp gives 0)
  // and is all zeros.
  for (int64_t ii = 0; ii < rows; ++ii) {
    T* row = st + ii * n;
    T m = row_max(row, n);
    if (m == kNegInf) m = T(0);
    const T sum = exp_shifted_sum(row, n, m);
    const T inv = sum > 0 ? T(1) / sum : T(0);
    for (int64_t j = 0; j < n; ++j) row[j] *= inv;
  }
  // O = P V. Rows stored in the compute type: accumulators held in registers across all the value rows
  // gathered above. Decoded rows (scratch): each value row is decoded once for all rows of the task.
  if constexpr (Reader::kStableRows) {
    weighted_sum(st, rows, vrows, n, D, acc);
  } else {
    for (int64_t j = 0; j < n; ++j) {
      const T* v = r.value(b, g, jbegin + j, scratch);
      for (int64_t ii = 0; ii < rows; ++ii) {
        const T pij = st[ii * n + j];
        if (pij == T(0)) continue;
        T* a = acc + ii * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) a[d] += pij * v[d];
      }
    }
  }
  for (int64_t ii = 0; ii < rows; ++ii) {
    const int64_t i = i0 + ii / G, h = g * G + ii % G;
    std::copy(acc + ii * D, acc + (ii + 1) * D, p.o + ((b * p.Tq + i) * p.H + h) * D);
    if (p.probs) {
      T* out = p.probs + ((b * p.H + h) * p.Tq + i) * p.probs_len;
      std::fill(out, out + p.probs_len, T(0));
      std::copy(st + ii * n, st + (ii + 1) * n, out + jbegin);
    }
  }
}

}  // namespace

template <class T, class Reader>
void decode_attention(const DecodeParams<T>& p, const Reader& r) {
  check(p);
  const int64_t G = p.H / p.Hkv;
  const int64_t q_per_task = std::max<int64_t>(1, kRowsPerTask / G);
  const int64_t chunks = (p.Tq + q_per_task - 1) / q_per_task;
  const int64_t tasks = p.B * p.Hkv * chunks;
  int64_t work = 0;
  for (int64_t b = 0; b < p.B; ++b) {  // checked here: nothing may throw inside the parallel loop
    const int64_t L = r.length(b), pos = r.position(b);
    ATTNLAB_CHECK(p.Tq <= L && L <= pos, "decode_attention: row ", b, " holds ", L,
                  " keys at position ", pos, " for ", p.Tq, " new queries");
    ATTNLAB_CHECK(!p.probs || L <= p.probs_len, "decode_attention: probs_len ", p.probs_len, " < length ", L);
    work += L;
  }
  work *= p.Tq * p.H * p.D;
  // Small problems run on the calling thread: waking the team costs more than the work.
#pragma omp parallel for schedule(dynamic) if (tasks > 1 && work > (int64_t(1) << 15))
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t c = t % chunks, g = (t / chunks) % p.Hkv, b = t / (chunks * p.Hkv);
    decode_task(p, r, b, g, c * q_per_task, std::min(p.Tq, (c + 1) * q_per_task));
  }
}

template void decode_attention(const DecodeParams<float>&, const DenseKVReader<float>&);
template void decode_attention(const DecodeParams<double>&, const DenseKVReader<double>&);
template void decode_attention(const DecodeParams<float>&, const DenseKVReader<float, bf16_bits>&);
template void decode_attention(const DecodeParams<float>&, const DenseKVReader<float, f16_bits>&);
template void decode_attention(const DecodeParams<float>&, const SinkKVReader<float>&);
template void decode_attention(const DecodeParams<double>&, const SinkKVReader<double>&);
template void decode_attention(const DecodeParams<float>&, const SinkKVReader<float, bf16_bits>&);
template void decode_attention(const DecodeParams<float>&, const SinkKVReader<float, f16_bits>&);
template void decode_attention(const DecodeParams<float>&, const PagedKVReader<float>&);
template void decode_attention(const DecodeParams<double>&, const PagedKVReader<double>&);
template void decode_attention(const DecodeParams<float>&, const QuantKVReader&);

}  // namespace attnlab::kernels
