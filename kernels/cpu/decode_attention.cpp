#include "kernels/cpu/decode_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/error.h"

namespace attnlab::kernels {
namespace {

// Query rows (query position x head of the group) one task handles: all of them for decoding, chunks
// of about 64 for a prefill so the score block [rows, length] stays small.
constexpr int64_t kRowsPerTask = 64;

template <class T>
T dot(const T* a, const T* b, int64_t D) {
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t d = 0; d < D; ++d) acc += a[d] * b[d];
  return acc;
}

template <class T>
void check(const DecodeParams<T>& p) {
  ATTNLAB_CHECK(p.B > 0 && p.Tq > 0 && p.H > 0 && p.Hkv > 0 && p.D > 0 && p.H % p.Hkv == 0,
                "decode_attention: bad sizes B ", p.B, ", Tq ", p.Tq, ", H ", p.H, ", Hkv ", p.Hkv, ", D ", p.D);
  ATTNLAB_CHECK(p.q && p.o, "decode_attention: null q or o");
  ATTNLAB_CHECK(p.window >= 0, "decode_attention: window must be >= 0, got ", p.window);
}

// One task: batch row b, KV head g, queries [i0, i1) of the Tq new ones, all heads of the group.
template <class T, class Reader>
void decode_task(const DecodeParams<T>& p, const Reader& r, int64_t b, int64_t g, int64_t i0, int64_t i1) {
  const int64_t G = p.H / p.Hkv, D = p.D, rows = (i1 - i0) * G;
  const int64_t L = r.length(b), pos = r.position(b);
  const int64_t last_qpos = pos - p.Tq + i1 - 1;
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();

  auto qrow = [&](int64_t ii) {  // query row ii = (i0 + ii / G, head g * G + ii % G)
    return p.q + b * p.q_stride_b + (i0 + ii / G) * p.q_stride_t + (g * G + ii % G) * p.q_stride_h;
  };
  std::vector<T> s(size_t(rows * std::max<int64_t>(L, 1)));
  std::vector<T> acc(size_t(rows * D), T(0));
  std::vector<T> scratch(static_cast<size_t>(D));

  // Scores. Keys are in position order: stop at the first one no query of the task may see.
  int64_t jend = L;
  for (int64_t j = 0; j < L; ++j) {
    const int64_t kp = r.key_position(b, g, j);
    if (p.causal && kp > last_qpos) {
      jend = j;
      break;
    }
    const T* k = r.key(b, g, j, scratch.data());
    for (int64_t ii = 0; ii < rows; ++ii) {
      const int64_t qp = pos - p.Tq + i0 + ii / G;
      const bool visible = (!p.causal || kp <= qp) && (p.window == 0 || kp > qp - p.window);
      s[size_t(ii * L + j)] = visible ? p.scale * dot(qrow(ii), k, D) : kNegInf;
    }
  }
  // Row softmax over [0, jend); a row that sees nothing is all zeros.
  for (int64_t ii = 0; ii < rows; ++ii) {
    T* row = s.data() + ii * L;
    T m = kNegInf;
    for (int64_t j = 0; j < jend; ++j) m = std::max(m, row[j]);
    if (m == kNegInf) {
      std::fill(row, row + jend, T(0));
      continue;
    }
    T sum = 0;
    for (int64_t j = 0; j < jend; ++j) sum += (row[j] = std::exp(row[j] - m));
    const T inv = T(1) / sum;
    for (int64_t j = 0; j < jend; ++j) row[j] *= inv;
  }
  // O = P V: each value row is loaded once for all rows of the task.
  for (int64_t j = 0; j < jend; ++j) {
    const T* v = r.value(b, g, j, scratch.data());
    for (int64_t ii = 0; ii < rows; ++ii) {
      const T pij = s[size_t(ii * L + j)];
      if (pij == T(0)) continue;
      T* a = acc.data() + ii * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) a[d] += pij * v[d];
    }
  }
  for (int64_t ii = 0; ii < rows; ++ii) {
    const int64_t i = i0 + ii / G, h = g * G + ii % G;
    std::copy(acc.data() + ii * D, acc.data() + (ii + 1) * D, p.o + ((b * p.Tq + i) * p.H + h) * D);
    if (p.probs) {
      T* out = p.probs + ((b * p.H + h) * p.Tq + i) * p.probs_len;
      std::copy(s.data() + ii * L, s.data() + ii * L + jend, out);
      std::fill(out + jend, out + p.probs_len, T(0));
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
template void decode_attention(const DecodeParams<float>&, const PagedKVReader<float>&);
template void decode_attention(const DecodeParams<double>&, const PagedKVReader<double>&);
template void decode_attention(const DecodeParams<float>&, const QuantKVReader&);

}  // namespace attnlab::kernels
