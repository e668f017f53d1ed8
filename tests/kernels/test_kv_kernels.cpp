// KV-cache kernels: the FP8 E4M3 codec (against the OCP spec's value table and a brute-force
// nearest-value search), int8/int4 quantization, and the decode-attention kernel against the math
// reference (dense, ring-buffer and paged readers, causal and sliding-window masks).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/attention_reference.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/decode_attention.h"
#include "kernels/cpu/kv_quant.h"

using namespace attnlab::kernels;

namespace {

std::vector<double> randvec(size_t n, uint64_t seed, double lo = -2, double hi = 2) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// The finite E4M3 values >= 0, ascending, with their codes.
std::vector<std::pair<float, uint8_t>> fp8_positive_values() {
  std::vector<std::pair<float, uint8_t>> v;
  for (int c = 0; c < 0x7F; ++c) v.emplace_back(fp8_e4m3_to_f32(uint8_t(c)), uint8_t(c));
  return v;
}

}  // namespace

TEST_CASE("fp8 e4m3: decoding follows the OCP table") {
  CHECK(fp8_e4m3_to_f32(0x00) == 0.f);
  CHECK(std::signbit(fp8_e4m3_to_f32(0x80)));
  CHECK(fp8_e4m3_to_f32(0x01) == std::ldexp(1.f, -9));   // smallest subnormal
  CHECK(fp8_e4m3_to_f32(0x07) == 7 * std::ldexp(1.f, -9));
  CHECK(fp8_e4m3_to_f32(0x08) == std::ldexp(1.f, -6));   // smallest normal
  CHECK(fp8_e4m3_to_f32(0x38) == 1.f);
  CHECK(fp8_e4m3_to_f32(0x39) == 1.125f);
  CHECK(fp8_e4m3_to_f32(0x7E) == 448.f);                 // largest finite
  CHECK(fp8_e4m3_to_f32(0xFE) == -448.f);
  CHECK(std::isnan(fp8_e4m3_to_f32(0x7F)));
  CHECK(std::isnan(fp8_e4m3_to_f32(0xFF)));
  const auto vals = fp8_positive_values();
  for (size_t i = 1; i < vals.size(); ++i) CHECK(vals[i].first > vals[i - 1].first);  // monotone codes
}

TEST_CASE("fp8 e4m3: encoding rounds to the nearest value, ties to even, saturating") {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;
    CHECK(f32_to_fp8_e4m3(fp8_e4m3_to_f32(uint8_t(c))) == c);  // exact round trip, -0 included
  }
  CHECK(f32_to_fp8_e4m3(1.0625f) == 0x38);              // tie between 1 (m=0) and 1.125 (m=1): even
  CHECK(f32_to_fp8_e4m3(1.1875f) == 0x3A);              // tie between 1.125 and 1.25: even (m=2)
  CHECK(f32_to_fp8_e4m3(std::ldexp(1.f, -10)) == 0x00);  // half the smallest subnormal: to 0
  CHECK(f32_to_fp8_e4m3(3 * std::ldexp(1.f, -10)) == 0x02);
  CHECK(f32_to_fp8_e4m3(500.f) == 0x7E);
  CHECK(f32_to_fp8_e4m3(-1e30f) == 0xFE);
  CHECK(f32_to_fp8_e4m3(std::numeric_limits<float>::infinity()) == 0x7E);
  CHECK((f32_to_fp8_e4m3(std::nanf("")) & 0x7F) == 0x7F);
  // Brute force: the nearest representable value (ties: even code) for many random magnitudes.
  const auto vals = fp8_positive_values();
  const auto xs = randvec(20000, 3, -12, 9.5);
  for (double e : xs) {
    const float x = float(std::exp2(e));
    size_t best = 0;
    for (size_t i = 1; i < vals.size(); ++i) {
      const double di = std::fabs(double(vals[i].first) - x), db = std::fabs(double(vals[best].first) - x);
      if (di < db || (di == db && (vals[i].second & 1) == 0)) best = i;
    }
    const uint8_t want = x >= 448.f ? uint8_t(0x7E) : vals[best].second;
    INFO("x = " << x);
    CHECK(f32_to_fp8_e4m3(x) == want);
    CHECK(f32_to_fp8_e4m3(-x) == (want | 0x80));
  }
}

TEST_CASE("int8 / int4 / fp8 rows: error within half a step, packing, zero groups") {
  const int64_t n = 70;
  const auto xd = randvec(size_t(n), 5);
  std::vector<float> x(xd.begin(), xd.end());
  for (QuantFormat f : {QuantFormat::int8, QuantFormat::int4, QuantFormat::fp8_e4m3}) {
    INFO(quant_format_name(f));
    const int64_t group = f == QuantFormat::int4 ? 32 : n;
    const int64_t groups = (n + group - 1) / group;
    std::vector<uint16_t> scales(static_cast<size_t>(groups));
    std::vector<uint8_t> codes(static_cast<size_t>(quant_code_bytes(f, n)));
    quant_scales(f, x.data(), n, group, scales.data());
    quantize(f, x.data(), n, group, scales.data(), codes.data());
    std::vector<float> y(static_cast<size_t>(n));
    dequantize(f, codes.data(), scales.data(), n, group, y.data());
    for (int64_t i = 0; i < n; ++i) {
      const float s = f16_to_f32(scales[size_t(i / group)]);
      // int: half a step of the scale; fp8: half a ulp of the scaled value (relative 2^-4), plus the step
      // at the bottom of the range.
      const double tol = f == QuantFormat::fp8_e4m3 ? std::fabs(x[size_t(i)]) / 16 + s * std::ldexp(1.0, -10)
                                                    : 0.5 * s * (1 + 1e-6);
      CHECK(std::fabs(y[size_t(i)] - x[size_t(i)]) <= tol);
    }
  }
  // int4 nibble order: value 0 in the low nibble of byte 0, stored as code + 8.
  const float two[2] = {-7.f, 7.f};
  uint16_t s;
  quant_scales(QuantFormat::int4, two, 2, 2, &s);
  CHECK(f16_to_f32(s) == 1.f);
  uint8_t byte;
  quantize(QuantFormat::int4, two, 2, 2, &s, &byte);
  CHECK(byte == 0xF1);
  // A group of zeros: scale 0 and exact zeros back.
  const float zeros[4] = {0, 0, 0, 0};
  uint8_t zc[4];
  float back[4] = {1, 1, 1, 1};
  quant_scales(QuantFormat::int8, zeros, 4, 4, &s);
  CHECK(s == 0);
  quantize(QuantFormat::int8, zeros, 4, 4, &s, zc);
  dequantize(QuantFormat::int8, zc, &s, 4, 4, back);
  CHECK(std::all_of(back, back + 4, [](float v) { return v == 0.f; }));
}

TEST_CASE("channel scales: one scale per channel over a block of rows (KIVI keys)") {
  const int64_t T = 5, D = 3;
  const float x[T * D] = {1, -10, 0.5f, 2, 3, -0.25f, -4, 1, 0, 0.5f, 2, 0.125f, 3, -1, 0};
  uint16_t scales[D];
  channel_scales(QuantFormat::int8, x, T, D, D, scales);
  CHECK(f16_to_f32(scales[0]) == doctest::Approx(4.0 / 127).epsilon(1e-3));
  CHECK(f16_to_f32(scales[1]) == doctest::Approx(10.0 / 127).epsilon(1e-3));
  CHECK(f16_to_f32(scales[2]) == doctest::Approx(0.5 / 127).epsilon(1e-3));
  uint8_t codes[D];
  float y[D];
  quantize(QuantFormat::int8, x + D, D, 1, scales, codes);  // row 1 with the channel scales
  dequantize(QuantFormat::int8, codes, scales, D, 1, y);
  for (int64_t c = 0; c < D; ++c) CHECK(std::fabs(y[c] - x[D + c]) <= 0.5 * f16_to_f32(scales[c]) * (1 + 1e-6));
}

// ---- decode attention ------------------------------------------------------------------------------

namespace {

struct DecodeCase {
  int64_t B, L, Tq, H, Hkv, D;
  bool causal;
  int64_t window;
};

// Reference: the math kernel on Q [B, Tq, H, D] against K, V [B, L, Hkv, D] (bottom-right causal), with
// the sliding window as an additive bias.
void reference(const DecodeCase& c, const std::vector<double>& q, const std::vector<double>& k,
               const std::vector<double>& v, std::vector<double>& o, std::vector<double>& probs) {
  auto p = attention_params<double>(c.B, c.Tq, c.L, c.H, c.Hkv, c.D, q.data(), k.data(), v.data());
  p.causal = c.causal;
  std::vector<double> bias;
  if (c.window > 0) {  // query i at position L - Tq + i sees keys j > pos - window
    bias.assign(size_t(c.Tq * c.L), 0.0);
    for (int64_t i = 0; i < c.Tq; ++i)
      for (int64_t j = 0; j < c.L; ++j)
        if (j <= c.L - c.Tq + i - c.window) bias[size_t(i * c.L + j)] = -std::numeric_limits<double>::infinity();
    p.bias = bias.data();
    p.bias_stride_q = c.L, p.bias_stride_k = 1;
  }
  std::vector<double> lse(size_t(c.B * c.H * c.Tq));
  o.assign(size_t(c.B * c.Tq * c.H * c.D), 0);
  probs.assign(size_t(c.B * c.H * c.Tq * c.L), 0);
  attention_reference_forward<double>(p, o.data(), lse.data(), probs.data());
}

DecodeParams<double> decode_params(const DecodeCase& c, const std::vector<double>& q, std::vector<double>& o,
                                   std::vector<double>& probs) {
  DecodeParams<double> p;
  p.B = c.B, p.Tq = c.Tq, p.H = c.H, p.Hkv = c.Hkv, p.D = c.D;
  p.q = q.data(), p.q_stride_b = c.Tq * c.H * c.D, p.q_stride_t = c.H * c.D, p.q_stride_h = c.D;
  o.assign(size_t(c.B * c.Tq * c.H * c.D), -1);
  probs.assign(size_t(c.B * c.H * c.Tq * c.L), -1);
  p.o = o.data(), p.probs = probs.data(), p.probs_len = c.L;
  p.scale = 1.0 / std::sqrt(double(c.D));
  p.causal = c.causal, p.window = c.window;
  return p;
}

void check_equal(const std::vector<double>& a, const std::vector<double>& b, double tol = 1e-12) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  CHECK(worst <= tol);
}

}  // namespace

TEST_CASE("decode attention == math reference: dense, ring and paged readers") {
  for (const DecodeCase& c : {DecodeCase{2, 37, 1, 4, 2, 16, true, 0}, DecodeCase{1, 64, 3, 4, 1, 32, true, 0},
                              DecodeCase{2, 50, 5, 6, 3, 8, false, 0}, DecodeCase{1, 200, 70, 8, 2, 16, true, 0},
                              DecodeCase{2, 40, 4, 4, 4, 16, true, 9}, DecodeCase{1, 1, 1, 2, 1, 4, true, 0}}) {
    INFO("B " << c.B << " L " << c.L << " Tq " << c.Tq << " H " << c.H << " Hkv " << c.Hkv << " causal " << c.causal
              << " window " << c.window);
    const size_t kv_n = size_t(c.B * c.L * c.Hkv * c.D);
    const auto q = randvec(size_t(c.B * c.Tq * c.H * c.D), 11), k = randvec(kv_n, 12), v = randvec(kv_n, 13);
    std::vector<double> o_ref, p_ref, o, probs;
    reference(c, q, k, v, o_ref, p_ref);
    const std::vector<int64_t> lengths(size_t(c.B), c.L), positions(size_t(c.B), c.L);

    // dense [B, L, Hkv, D]
    DenseKVReader<double> dense;
    dense.k = k.data(), dense.v = v.data();
    dense.stride_b = c.L * c.Hkv * c.D, dense.stride_s = c.Hkv * c.D, dense.stride_h = c.D, dense.D = c.D;
    dense.capacity = c.L, dense.lengths = lengths.data(), dense.positions_b = positions.data(), dense.Hkv = c.Hkv;
    decode_attention(decode_params(c, q, o, probs), dense);
    check_equal(o, o_ref);
    check_equal(probs, p_ref);

    // ring: the same keys rotated by `shift` slots in a buffer of L slots
    const int64_t shift = c.L / 3;
    std::vector<double> kr(kv_n), vr(kv_n);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t j = 0; j < c.L; ++j) {
        const int64_t row = c.Hkv * c.D, src = (b * c.L + j) * row, dst = (b * c.L + (j + shift) % c.L) * row;
        std::copy_n(k.begin() + src, row, kr.begin() + dst);
        std::copy_n(v.begin() + src, row, vr.begin() + dst);
      }
    DenseKVReader<double> ring = dense;
    ring.k = kr.data(), ring.v = vr.data(), ring.ring_start = shift;
    decode_attention(decode_params(c, q, o, probs), ring);
    check_equal(o, o_ref);

    // paged: blocks of 4 positions in a scrambled pool [blocks, Hkv, 4, D]
    const int64_t bs = 4, nb = (c.L + bs - 1) / bs;
    std::vector<int32_t> perm(size_t(c.B * nb));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937_64(14));
    std::vector<double> kp(perm.size() * size_t(c.Hkv * bs * c.D), std::nan("")), vp(kp.size(), std::nan(""));
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t j = 0; j < c.L; ++j)
        for (int64_t g = 0; g < c.Hkv; ++g) {
          const int64_t blk = perm[size_t(b * nb + j / bs)];
          const int64_t dst = ((blk * c.Hkv + g) * bs + j % bs) * c.D, src = ((b * c.L + j) * c.Hkv + g) * c.D;
          std::copy_n(k.begin() + src, c.D, kp.begin() + dst);
          std::copy_n(v.begin() + src, c.D, vp.begin() + dst);
        }
    std::vector<const int32_t*> tables;
    for (int64_t b = 0; b < c.B; ++b) tables.push_back(perm.data() + b * nb);
    PagedKVReader<double> paged;
    paged.k_pool = kp.data(), paged.v_pool = vp.data(), paged.Hkv = c.Hkv, paged.D = c.D, paged.block_shift = 2;
    paged.block_tables = tables.data(), paged.lengths = lengths.data();
    decode_attention(decode_params(c, q, o, probs), paged);  // unused slots are NaN: never read
    check_equal(o, o_ref);
    check_equal(probs, p_ref);
  }
}

// The f32 kernel scores eight keys per vector (keys in the lanes) when D % 8 == 0 and key by key
// otherwise and for the last n % 8 keys: lengths around multiples of 8, head sizes on and off that
// path, a ring, windows, several queries, the probabilities.
TEST_CASE("decode attention: f32 (keys in vector lanes) == the f64 reference") {
  for (const DecodeCase& c : {DecodeCase{1, 512, 1, 8, 2, 32, true, 0}, DecodeCase{2, 37, 1, 4, 2, 16, true, 0},
                              DecodeCase{1, 64, 3, 4, 1, 64, true, 0}, DecodeCase{2, 15, 2, 6, 3, 8, false, 0},
                              DecodeCase{1, 203, 9, 8, 2, 40, true, 50}, DecodeCase{1, 33, 1, 4, 2, 12, true, 0},
                              DecodeCase{1, 7, 1, 2, 1, 32, true, 0}, DecodeCase{1, 300, 1, 8, 8, 24, true, 129}}) {
    INFO("B " << c.B << " L " << c.L << " Tq " << c.Tq << " H " << c.H << " Hkv " << c.Hkv << " D " << c.D
              << " causal " << c.causal << " window " << c.window);
    const size_t kv_n = size_t(c.B * c.L * c.Hkv * c.D);
    const auto q = randvec(size_t(c.B * c.Tq * c.H * c.D), 31), k = randvec(kv_n, 32), v = randvec(kv_n, 33);
    std::vector<double> o_ref, p_ref;
    reference(c, q, k, v, o_ref, p_ref);
    // the keys rotated by `shift` slots in a ring of L slots
    const int64_t shift = c.L / 3, row = c.Hkv * c.D;
    std::vector<float> qf(q.begin(), q.end()), kf(kv_n), vf(kv_n);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t j = 0; j < c.L; ++j)
        for (int64_t e = 0; e < row; ++e) {
          const size_t src = size_t((b * c.L + j) * row + e), dst = size_t((b * c.L + (j + shift) % c.L) * row + e);
          kf[dst] = float(k[src]), vf[dst] = float(v[src]);
        }
    const std::vector<int64_t> lengths(size_t(c.B), c.L), positions(size_t(c.B), c.L);
    DenseKVReader<float> r;
    r.k = kf.data(), r.v = vf.data(), r.stride_b = c.L * row, r.stride_s = row, r.stride_h = c.D, r.D = c.D;
    r.capacity = c.L, r.ring_start = shift, r.lengths = lengths.data(), r.positions_b = positions.data(), r.Hkv = c.Hkv;
    std::vector<float> o(o_ref.size(), -1.f), probs(p_ref.size(), -1.f);
    DecodeParams<float> p;
    p.B = c.B, p.Tq = c.Tq, p.H = c.H, p.Hkv = c.Hkv, p.D = c.D, p.q = qf.data();
    p.q_stride_b = c.Tq * c.H * c.D, p.q_stride_t = c.H * c.D, p.q_stride_h = c.D;
    p.o = o.data(), p.probs = probs.data(), p.probs_len = c.L;
    p.scale = float(1.0 / std::sqrt(double(c.D))), p.causal = c.causal, p.window = c.window;
    decode_attention(p, r);
    double worst_o = 0, worst_p = 0;
    for (size_t i = 0; i < o.size(); ++i) worst_o = std::max(worst_o, std::fabs(o[i] - o_ref[i]));
    for (size_t i = 0; i < probs.size(); ++i) worst_p = std::max(worst_p, std::fabs(probs[i] - p_ref[i]));
    CHECK(worst_o < 2e-5);
    CHECK(worst_p < 2e-6);
  }
}

TEST_CASE("decode attention: f32 with bf16 storage is close to the f64 reference") {
  const DecodeCase c{1, 33, 2, 4, 2, 16, true, 0};
  const size_t kv_n = size_t(c.L * c.Hkv * c.D);
  const auto q = randvec(size_t(c.Tq * c.H * c.D), 21), k = randvec(kv_n, 22), v = randvec(kv_n, 23);
  std::vector<double> o_ref, p_ref;
  reference(c, q, k, v, o_ref, p_ref);
  std::vector<float> qf(q.begin(), q.end()), o(o_ref.size());
  std::vector<bf16_bits> kb(kv_n), vb(kv_n);
  for (size_t i = 0; i < kv_n; ++i) kb[i].bits = f32_to_bf16(float(k[i])), vb[i].bits = f32_to_bf16(float(v[i]));
  const std::vector<int64_t> lengths{c.L}, positions{c.L};
  DenseKVReader<float, bf16_bits> r;
  r.k = kb.data(), r.v = vb.data(), r.stride_b = c.L * c.Hkv * c.D, r.stride_s = c.Hkv * c.D, r.stride_h = c.D;
  r.D = c.D, r.capacity = c.L, r.lengths = lengths.data(), r.positions_b = positions.data(), r.Hkv = c.Hkv;
  DecodeParams<float> p;
  p.B = 1, p.Tq = c.Tq, p.H = c.H, p.Hkv = c.Hkv, p.D = c.D, p.q = qf.data();
  p.q_stride_b = c.Tq * c.H * c.D, p.q_stride_t = c.H * c.D, p.q_stride_h = c.D, p.o = o.data();
  p.scale = 0.25f;
  decode_attention(p, r);
  for (size_t i = 0; i < o.size(); ++i) CHECK(std::fabs(o[i] - o_ref[i]) < 2e-2);  // bf16 keeps 8 bits
}
