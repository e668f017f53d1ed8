// Optimized CPU kernels against their plain references, and the 16-bit conversions.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/gelu.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemv.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/softmax.h"

using namespace attnlab::kernels;

namespace {
std::vector<double> randvec(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> d(-2, 2);
  std::vector<double> v(n);
  for (auto& x : v) x = d(g);
  return v;
}
}  // namespace

TEST_CASE("layernorm: optimized forward/backward match the plain reference (f64 and f32)") {
  const int64_t N = 37, C = 129;
  auto x = randvec(size_t(N * C), 1), w = randvec(size_t(C), 2), b = randvec(size_t(C), 3),
       g = randvec(size_t(N * C), 4);
  std::vector<double> o1(x.size()), o2(x.size()), m1(static_cast<size_t>(N)), m2(static_cast<size_t>(N)), r1(static_cast<size_t>(N)), r2(static_cast<size_t>(N));
  layernorm_forward(o1.data(), m1.data(), r1.data(), x.data(), w.data(), b.data(), N, C, 1e-5);
  layernorm_forward_reference(o2.data(), m2.data(), r2.data(), x.data(), w.data(), b.data(), N, C, 1e-5);
  for (size_t i = 0; i < o1.size(); ++i) CHECK(o1[i] == doctest::Approx(o2[i]).epsilon(1e-12));
  std::vector<double> dx1(x.size(), 0.5), dx2(x.size(), 0.5), dw1(size_t(C), 0), dw2(size_t(C), 0), db1(size_t(C), 0), db2(size_t(C), 0);
  layernorm_backward(dx1.data(), dw1.data(), db1.data(), g.data(), x.data(), w.data(), m1.data(), r1.data(), N, C);
  layernorm_backward_reference(dx2.data(), dw2.data(), db2.data(), g.data(), x.data(), w.data(), m2.data(), r2.data(), N, C);
  for (size_t i = 0; i < dx1.size(); ++i) CHECK(dx1[i] == doctest::Approx(dx2[i]).epsilon(1e-10));
  for (int64_t c = 0; c < C; ++c) {
    CHECK(dw1[size_t(c)] == doctest::Approx(dw2[size_t(c)]).epsilon(1e-10));
    CHECK(db1[size_t(c)] == doctest::Approx(db2[size_t(c)]).epsilon(1e-10));
  }
  // f32 path agrees with the f64 reference to f32 precision
  std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), bf(b.begin(), b.end()), of(x.size()), mf(static_cast<size_t>(N)), rf(static_cast<size_t>(N));
  layernorm_forward(of.data(), mf.data(), rf.data(), xf.data(), wf.data(), bf.data(), N, C, 1e-5);
  for (size_t i = 0; i < of.size(); ++i) CHECK(of[i] == doctest::Approx(o2[i]).epsilon(1e-4));
}

TEST_CASE("layernorm backward: finite differences of the reference forward") {
  const int64_t N = 2, C = 5;
  auto x = randvec(size_t(N * C), 7), w = randvec(size_t(C), 8), b = randvec(size_t(C), 9), g = randvec(size_t(N * C), 10);
  auto loss = [&](const std::vector<double>& xx, const std::vector<double>& ww) {
    std::vector<double> o(xx.size()), m(static_cast<size_t>(N)), r(static_cast<size_t>(N));
    layernorm_forward_reference(o.data(), m.data(), r.data(), xx.data(), ww.data(), b.data(), N, C, 1e-5);
    double s = 0;
    for (size_t i = 0; i < o.size(); ++i) s += o[i] * g[i];
    return s;
  };
  std::vector<double> o(x.size()), m(static_cast<size_t>(N)), r(static_cast<size_t>(N)), dx(x.size(), 0), dw(size_t(C), 0), db(size_t(C), 0);
  layernorm_forward(o.data(), m.data(), r.data(), x.data(), w.data(), b.data(), N, C, 1e-5);
  layernorm_backward(dx.data(), dw.data(), db.data(), g.data(), x.data(), w.data(), m.data(), r.data(), N, C);
  const double eps = 1e-6;
  for (size_t i = 0; i < x.size(); ++i) {
    auto xp = x, xm = x;
    xp[i] += eps;
    xm[i] -= eps;
    CHECK(dx[i] == doctest::Approx((loss(xp, w) - loss(xm, w)) / (2 * eps)).epsilon(1e-6));
  }
  for (size_t c = 0; c < size_t(C); ++c) {
    auto wp = w, wm = w;
    wp[c] += eps;
    wm[c] -= eps;
    CHECK(dw[c] == doctest::Approx((loss(x, wp) - loss(x, wm)) / (2 * eps)).epsilon(1e-6));
  }
}

TEST_CASE("softmax / log_softmax: values and backward against finite differences") {
  const int64_t N = 3, C = 7;
  auto x = randvec(size_t(N * C), 11), g = randvec(size_t(N * C), 12);
  std::vector<double> y(x.size()), ly(x.size()), lse(static_cast<size_t>(N));
  softmax_forward(y.data(), x.data(), N, C);
  log_softmax_forward(ly.data(), x.data(), N, C);
  logsumexp_forward(lse.data(), x.data(), N, C);
  for (int64_t n = 0; n < N; ++n) {
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += std::exp(x[size_t(n * C + c)]);
    CHECK(lse[size_t(n)] == doctest::Approx(std::log(s)).epsilon(1e-12));
    for (int64_t c = 0; c < C; ++c) {
      CHECK(y[size_t(n * C + c)] == doctest::Approx(std::exp(x[size_t(n * C + c)]) / s).epsilon(1e-12));
      CHECK(ly[size_t(n * C + c)] == doctest::Approx(x[size_t(n * C + c)] - std::log(s)).epsilon(1e-12));
    }
  }
  std::vector<double> dx(x.size()), dlx(x.size());
  softmax_backward(dx.data(), g.data(), y.data(), N, C);
  log_softmax_backward(dlx.data(), g.data(), ly.data(), N, C);
  auto L = [&](const std::vector<double>& xx, bool log) {
    std::vector<double> o(xx.size());
    if (log) log_softmax_forward(o.data(), xx.data(), N, C);
    else softmax_forward(o.data(), xx.data(), N, C);
    double s = 0;
    for (size_t i = 0; i < o.size(); ++i) s += o[i] * g[i];
    return s;
  };
  for (size_t i = 0; i < x.size(); ++i) {
    auto xp = x, xm = x;
    xp[i] += 1e-6;
    xm[i] -= 1e-6;
    CHECK(dx[i] == doctest::Approx((L(xp, false) - L(xm, false)) / 2e-6).epsilon(1e-6));
    CHECK(dlx[i] == doctest::Approx((L(xp, true) - L(xm, true)) / 2e-6).epsilon(1e-6));
  }
  // A row of large values does not overflow.
  std::vector<double> big{1000, 1001, 1002}, out(3);
  softmax_forward(out.data(), big.data(), 1, 3);
  CHECK(out[2] == doctest::Approx(std::exp(2.0) / (1 + std::exp(1.0) + std::exp(2.0))));
}

TEST_CASE("gelu: known values and backward against finite differences, both forms") {
  // gelu(1) = 0.5 (1 + erf(1/√2)) = 0.8413447460685429; tanh form 0.8411919906082768 (PyTorch)
  double x[3] = {1.0, -0.5, 2.0}, y[3];
  gelu_forward(y, x, 3, GeluApprox::none);
  CHECK(y[0] == doctest::Approx(0.8413447460685429).epsilon(1e-14));
  CHECK(y[1] == doctest::Approx(-0.15426876936299344).epsilon(1e-13));
  gelu_forward(y, x, 3, GeluApprox::tanh);
  CHECK(y[0] == doctest::Approx(0.8411919906082768).epsilon(1e-13));
  for (auto approx : {GeluApprox::none, GeluApprox::tanh}) {
    auto xs = randvec(50, 13);
    std::vector<double> ones(50, 1.0), d(50, 0.0);
    gelu_backward(d.data(), xs.data(), ones.data(), 50, approx);
    for (size_t i = 0; i < 50; ++i) {
      double p = xs[i] + 1e-6, m = xs[i] - 1e-6, yp, ym;
      gelu_forward(&yp, &p, 1, approx);
      gelu_forward(&ym, &m, 1, approx);
      CHECK(d[i] == doctest::Approx((yp - ym) / 2e-6).epsilon(1e-7));
    }
  }
}

// float GELU runs eight lanes through a table-driven erf and a vector exp (kernels/cpu/avx2_math.h):
// every x on a fine grid over [-10, 10] (intervals, the |x| >= 4 clamp, and the over-threads split of
// a long array) within a float rounding of the double-precision value, as libm's erff gives.
TEST_CASE("gelu f32 (vectorized erf) == double precision within float rounding") {
  const int64_t n = 400001;  // not a multiple of 8: the scalar tail too
  const auto un = static_cast<size_t>(n);
  std::vector<float> x(un), y(un), d(un, 0.5f), ones(un, 1.f);
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = -10.f + 20.f * float(i) / float(n - 1);
  gelu_forward(y.data(), x.data(), n, GeluApprox::none);
  gelu_backward(d.data(), x.data(), ones.data(), n, GeluApprox::none);  // accumulates onto 0.5
  double worst_y = 0, worst_d = 0;
  for (size_t i = 0; i < un; ++i) {
    const double xd = x[i], cdf = 0.5 * (1 + std::erf(xd / std::sqrt(2.0)));
    const double ref = xd * cdf, dref = 0.5 + cdf + xd * std::exp(-0.5 * xd * xd) / std::sqrt(2 * M_PI);
    // one float ulp of the result plus erf's own rounding (6e-8) times |x| / 2
    worst_y = std::max(worst_y, std::fabs(y[i] - ref) / (1.2e-7 * std::fabs(ref) + 6e-8 * (1 + std::fabs(xd))));
    worst_d = std::max(worst_d, std::fabs(d[i] - dref) / (1.2e-7 * std::fabs(dref) + 6e-8 * (1 + std::fabs(xd))));
  }
  CHECK(worst_y <= 1.0);
  CHECK(worst_d <= 1.0);
  // NaN stays NaN; +inf gives +inf; zeros keep their sign.
  const float special[9] = {NAN, INFINITY, 0.f, -0.f, 1e-30f, 40.f, -40.f, 3.99f, -3.99f};
  float out[9];
  gelu_forward(out, special, 9, GeluApprox::none);
  CHECK(std::isnan(out[0]));
  CHECK(out[1] == INFINITY);
  CHECK((out[2] == 0.f && !std::signbit(out[2])));
  CHECK((out[3] == 0.f && std::signbit(out[3])));
  CHECK(out[5] == 40.f);
  CHECK(out[6] == doctest::Approx(0.0).epsilon(1e-30));
}

TEST_CASE("gemm: BLAS path equals the triple loop for every transpose combination (and the gemv cases)") {
  // M = 1 and N = 1 take the matrix-vector path; padded leading dimensions and beta = 0 over NaN included.
  // {1, 7, 40} and {1, 300, 530} reach the f32 row-dot gemv: 4-row blocks, row and column tails, and
  // (300 x 530 elements) the two-thread split.
  for (auto [M, N, K] : {std::array<int64_t, 3>{13, 9, 17}, {1, 9, 17}, {13, 1, 17}, {1, 1, 5}, {1, 7, 40},
                         {1, 300, 530}, {300, 1, 530}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (double beta : {0.5, 0.0}) {
          INFO("M " << M << " N " << N << " K " << K << " ta " << ta << " tb " << tb << " beta " << beta);
          const int64_t lda = (ta ? M : K) + 2, ldb = (tb ? K : N) + 3, ldc = N + 1;
          auto A = randvec(size_t((ta ? K : M) * lda), 20), B = randvec(size_t((tb ? N : K) * ldb), 21);
          std::vector<double> C1(size_t(M * ldc), beta == 0 ? std::nan("") : 1.0), C2(C1.size(), 1.0);
          gemm(ta, tb, M, N, K, 1.5, A.data(), lda, B.data(), ldb, beta, C1.data(), ldc);
          gemm_reference(ta, tb, M, N, K, 1.5, A.data(), lda, B.data(), ldb, beta, C2.data(), ldc);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j)
              CHECK(C1[size_t(i * ldc + j)] == doctest::Approx(C2[size_t(i * ldc + j)]).epsilon(1e-12));
          std::vector<float> Af(A.begin(), A.end()), Bf(B.begin(), B.end()), C3(C1.size(), 1.f);
          gemm(ta, tb, M, N, K, 1.5f, Af.data(), lda, Bf.data(), ldb, float(beta), C3.data(), ldc);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j)
              CHECK(C3[size_t(i * ldc + j)] == doctest::Approx(C2[size_t(i * ldc + j)]).epsilon(1e-4));
        }
}

TEST_CASE("gemv with packed weights: bf16, int8 and w8a8 equal the f32 product of the rounded values") {
  // 300 x 530: 4-row blocks, a row tail, a column tail past the 16-wide loop, and the two-thread split
  // of f32 and bf16; 1030 x 1030 the two-thread split of int8 and w8a8 (from 2^20 elements).
  for (auto [rows, cols] : {std::array<int64_t, 2>{300, 530}, {5, 7}, {64, 256}, {1030, 1030}}) {
    INFO("rows " << rows << " cols " << cols);
    const auto wd = randvec(size_t(rows * cols), 30), xd = randvec(size_t(cols), 31);
    std::vector<float> w(wd.begin(), wd.end()), x(xd.begin(), xd.end()), y(size_t(rows), NAN);
    // y[i] against the double dot of row i of wr with xr, within f32 accumulation error: a few float
    // roundings of the sum of |products| (a relative bound on y alone fails where the products cancel).
    auto check_rows = [&](const std::vector<float>& wr, const std::vector<float>& xr) {
      for (int64_t i = 0; i < rows; ++i) {
        double d = 0, mag = 0;
        for (int64_t k = 0; k < cols; ++k) {
          const double p = double(wr[size_t(i * cols + k)]) * double(xr[size_t(k)]);
          d += p, mag += std::abs(p);
        }
        CHECK(std::abs(y[size_t(i)] - d) <= 1e-6 * mag);
      }
    };
    // bf16: exactly the f32 dot product of the bf16-rounded weights (up to f32 accumulation)
    std::vector<uint16_t> wb(w.size());
    f32_to_bf16(w.data(), wb.data(), int64_t(w.size()));
    std::vector<float> wr(w.size());
    bf16_to_f32(wb.data(), wr.data(), int64_t(w.size()));
    gemv_bf16(rows, cols, wb.data(), x.data(), y.data());
    check_rows(wr, x);
    // int8: per-row scale max|w| / 127, every weight within half a step of the original
    std::vector<int8_t> q(w.size());
    std::vector<float> scales(static_cast<size_t>(rows));
    pack_int8_rows(w.data(), rows, cols, q.data(), scales.data());
    unpack_int8_rows(q.data(), scales.data(), rows, cols, wr.data());
    for (int64_t i = 0; i < rows; ++i) {
      float amax = 0;
      for (int64_t k = 0; k < cols; ++k) amax = std::max(amax, std::abs(w[size_t(i * cols + k)]));
      CHECK(scales[size_t(i)] == doctest::Approx(amax / 127));
      for (int64_t k = 0; k < cols; ++k)
        CHECK(std::abs(wr[size_t(i * cols + k)] - w[size_t(i * cols + k)]) <= scales[size_t(i)] * 0.5f + 1e-7f);
    }
    gemv_int8(rows, cols, q.data(), scales.data(), x.data(), y.data());
    check_rows(wr, x);
    // w8a8: x rounded per block of 32 to int8 (every value within half a step), then the int8 rows times
    // the rounded x: the same sum in integers (exact) and f32 scales
    std::vector<int8_t> xq(x.size());
    std::vector<float> xs(size_t((cols + kQ8Block - 1) / kQ8Block));
    quantize_q8_blocks(x.data(), cols, xq.data(), xs.data());
    std::vector<float> xr(x.size());
    for (int64_t k = 0; k < cols; ++k) {
      const float s = xs[size_t(k / kQ8Block)];
      xr[size_t(k)] = float(xq[size_t(k)]) * s;
      CHECK(std::abs(xr[size_t(k)] - x[size_t(k)]) <= s * 0.5f + 1e-7f);
    }
    gemv_w8a8(rows, cols, q.data(), scales.data(), x.data(), y.data());
    check_rows(wr, xr);
  }
  CHECK(parse_weight_format("int8") == WeightFormat::int8);
  CHECK(parse_weight_format("w8a8") == WeightFormat::w8a8);
  CHECK_THROWS_WITH(parse_weight_format("q4"), doctest::Contains("f32, bf16, int8 or w8a8"));
  // A non-finite activation is not rounded into a finite code: its block's outputs are NaN.
  std::vector<float> x(64, 0.5f), y(4);
  x[40] = INFINITY;
  const std::vector<int8_t> w(4 * 64, 3);
  const std::vector<float> s(4, 0.01f);
  gemv_w8a8(4, 64, w.data(), s.data(), x.data(), y.data());
  for (float v : y) CHECK(std::isnan(v));
}

TEST_CASE("bf16 and f16: round-to-nearest-even and special values") {
  auto bits = [](float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; };
  auto from_bits = [](uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; };
  // bf16: 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7 -> ties to even (1.0)
  CHECK(f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);
  // 1 + 3*2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6 (even) -> rounds up to even
  CHECK(f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);
  CHECK(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81);  // just above half -> up
  CHECK(bf16_to_f32(0x3f80) == 1.0f);
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
  CHECK(f32_to_bf16(from_bits(0x7f800000)) == 0x7f80);  // inf stays inf
  // f16: 1 + 2^-11 halfway between 1 and 1 + 2^-10 -> even (1.0); 1 + 3*2^-11 -> 1 + 2^-9
  CHECK(f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);
  CHECK(f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02);
  CHECK(f32_to_f16(65504.0f) == 0x7bff);   // max finite
  CHECK(f32_to_f16(65520.0f) == 0x7c00);   // halfway to the next power -> inf
  CHECK(f32_to_f16(0x1p-24f) == 0x0001);   // smallest subnormal
  CHECK(f32_to_f16(0x1p-25f) == 0x0000);   // half of it ties to even zero
  CHECK(f32_to_f16(3 * 0x1p-26f) == 0x0001);
  CHECK(f32_to_f16(-2.0f) == 0xc000);
  CHECK(f16_to_f32(0x0001) == 0x1p-24f);
  CHECK(f16_to_f32(0x3555) == doctest::Approx(0.333251953125f));
  CHECK(std::isnan(f16_to_f32(f32_to_f16(std::nanf("")))));
  // every f16 value round-trips through f32 exactly
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff)) continue;  // NaN payloads
    CHECK_MESSAGE(f32_to_f16(f16_to_f32(uint16_t(h))) == h, "h=", h);
  }
  (void)bits;
}
