// FlashAttention (kernels/cpu/flash_attention.h) against the math reference
// (kernels/cpu/attention_reference.h), and the reference against finite differences.
#include <doctest/doctest.h>
#include <omp.h>

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "attention_cases.h"
#include "kernels/cpu/attention_math.h"
#include "kernels/cpu/attention_reference.h"
#include "kernels/cpu/flash_attention.h"
#include "kernels/error.h"

using namespace attnlab::kernels;
using namespace attnlab::kernels::testing;

namespace {

template <class T>
Outputs<T> run_flash(const Problem<T>& pr) {
  Outputs<T> out(pr.p);
  flash_attention_forward(pr.p, out.o.data(), out.lse.data());
  flash_attention_backward(pr.p, out.o.data(), pr.dout.data(), out.lse.data(), out.dq.data(),
                           out.dk.data(), out.dv.data());
  return out;
}

template <class T>
void check_case(const Case& c, double tol) {
  INFO(describe(c));
  Problem<T> pr(c);
  check_outputs(run_flash(pr), run_reference(pr), tol, tol);
}

}  // namespace

TEST_CASE_TEMPLATE("flash attention matches the reference: MHA/GQA/MQA x causal x masks", T, double,
                   float) {
  for (const Case& c : mask_sweep()) check_case<T>(c, tolerance<T>());
}

TEST_CASE_TEMPLATE("flash attention matches the reference: lengths around the tile size", T,
                   double, float) {
  for (int64_t S : {1, 7, 63, 64, 65, 95, 96, 97, 129, 200})
    for (bool causal : {false, true}) {
      Case c;
      c.B = 1, c.Sq = c.Sk = S, c.H = 2, c.Hkv = 1, c.D = 32, c.causal = causal;
      c.padding = S > 1;
      c.seed = uint64_t(S * 2 + causal);
      check_case<T>(c, tolerance<T>());
    }
}

TEST_CASE_TEMPLATE("flash attention matches the reference: Sq != Sk", T, double, float) {
  const int64_t lens[][2] = {{7, 129}, {129, 7}, {65, 200}, {200, 65}, {1, 100}, {100, 1}};
  for (auto& l : lens)
    for (bool causal : {false, true}) {
      Case c;
      c.B = 2, c.Sq = l[0], c.Sk = l[1], c.H = 4, c.Hkv = 2, c.D = 16, c.causal = causal;
      c.bias = Bias::Full;
      c.seed = uint64_t(l[0] * 1000 + l[1] + causal);
      check_case<T>(c, tolerance<T>());
    }
}

TEST_CASE_TEMPLATE("flash attention matches the reference: causal sliding windows", T, double, float) {
  for (const Case& c : window_sweep()) check_case<T>(c, tolerance<T>());
}

TEST_CASE("the reference's sliding window is the same function as a banded boolean mask") {
  // An independent check of the oracle: window = w equals causal plus a 0/-inf bias that hides the
  // keys j <= i + (Sk - Sq) - w, for values and every gradient (bitwise: the same scores are -inf).
  for (const Case& base : window_sweep()) {
    if (base.bias != Bias::None) continue;
    INFO(describe(base));
    Problem<double> win(base), band(base);
    band.p.window = 0;
    std::vector<double> bias(size_t(base.Sq * base.Sk), 0.0);
    for (int64_t i = 0; i < base.Sq; ++i)
      for (int64_t j = 0; j < base.Sk; ++j)
        if (j <= i + (base.Sk - base.Sq) - base.window) bias[size_t(i * base.Sk + j)] = -INFINITY;
    band.p.bias = bias.data(), band.p.bias_stride_q = base.Sk, band.p.bias_stride_k = 1;
    const Outputs<double> a = run_reference(win), b = run_reference(band);
    CHECK(a.o == b.o);
    CHECK(a.lse == b.lse);
    CHECK(a.dq == b.dq);
    CHECK(a.dk == b.dk);
    CHECK(a.dv == b.dv);
  }
}

TEST_CASE_TEMPLATE("flash attention matches the reference: head dims", T, double, float) {
  for (const Case& c : head_dim_sweep()) check_case<T>(c, tolerance<T>());
}

TEST_CASE_TEMPLATE("flash attention matches the reference: strided Q/K/V", T, double, float) {
  for (const Case& c : strided_sweep()) check_case<T>(c, tolerance<T>());
}

TEST_CASE_TEMPLATE("flash attention matches the reference: one long sequence", T, double, float) {
  Case c;
  c.B = 1, c.Sq = c.Sk = 1000, c.H = 2, c.Hkv = 1, c.D = 64, c.causal = true;
  c.padding = true, c.dropout = 0.1, c.seed = 1000;
  check_case<T>(c, tolerance<T>());
}

TEST_CASE("flash attention in float is close to the double reference") {
  check_float_against_double_reference([](const Problem<float>& pr) { return run_flash(pr); }, false);
}

TEST_CASE("reference backward matches central finite differences (double)") {
  Case c;
  c.B = 2, c.Sq = 5, c.Sk = 6, c.H = 4, c.Hkv = 2, c.D = 3, c.causal = true;
  c.padding = true, c.bias = Bias::Full, c.dropout = 0.3, c.seed = 5;
  Case windowed = c;  // and with a sliding window of 3 keys
  windowed.window = 3, windowed.padding = false, windowed.seed = 6;
  for (const Case& cs : {c, windowed}) {
    INFO(describe(cs));
    Problem<double> pr(cs);
    AttentionParams<double>& p = pr.p;
    Outputs<double> g = run_reference(pr);
    // L = sum(O * dO) so that dL/dO = dO.
    auto loss = [&]() {
      Outputs<double> out(p);
      attention_reference_forward(p, out.o.data(), out.lse.data());
      double L = 0;
      for (size_t i = 0; i < out.o.size(); ++i) L += out.o[i] * pr.dout[i];
      return L;
    };
    const double eps = 1e-6;
    double worst = 0, mag = 0;
    auto probe = [&](std::vector<double>& x, size_t idx, double analytic) {
      const double x0 = x[idx];
      x[idx] = x0 + eps;
      const double up = loss();
      x[idx] = x0 - eps;
      const double down = loss();
      x[idx] = x0;
      worst = std::max(worst, std::abs((up - down) / (2 * eps) - analytic));
      mag = std::max(mag, std::abs(analytic));
    };
    // Contiguous layout: qs is [B, Sq, H, D] like dq, ks/vs are [B, Sk, Hkv, D] like dk/dv.
    for (size_t i = 0; i < pr.qs.size(); ++i) probe(pr.qs, i, g.dq[i]);
    for (size_t i = 0; i < pr.ks.size(); ++i) probe(pr.ks, i, g.dk[i]);
    for (size_t i = 0; i < pr.vs.size(); ++i) probe(pr.vs, i, g.dv[i]);
    CHECK(mag > 0.1);
    CHECK(worst < 1e-8 * std::max(1.0, mag));
  }
}

TEST_CASE("reference probabilities: rows sum to one, masks are zeros, P = exp(s - LSE)") {
  Case c;
  c.B = 2, c.Sq = 9, c.Sk = 12, c.H = 2, c.Hkv = 1, c.D = 8, c.causal = true, c.padding = true;
  c.seed = 11;
  Problem<double> pr(c);
  const auto& p = pr.p;
  std::vector<double> o(size_t(p.B * p.Sq * p.H * p.D)), lse(size_t(p.B * p.H * p.Sq));
  std::vector<double> P(size_t(p.B * p.H * p.Sq * p.Sk));
  attention_reference_forward(p, o.data(), lse.data(), P.data());
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h)
      for (int64_t i = 0; i < p.Sq; ++i) {
        const double* row = P.data() + ((b * p.H + h) * p.Sq + i) * p.Sk;
        double sum = 0;
        bool any = false;
        for (int64_t j = 0; j < p.Sk; ++j) {
          const bool masked = j > i + (p.Sk - p.Sq) || pr.pad[size_t(b * p.Sk + j)];
          if (masked) CHECK(row[j] == 0.0);
          any |= !masked;
          sum += row[j];
          if (!masked) {  // s_ij recomputed by hand
            double s = 0;
            for (int64_t d = 0; d < p.D; ++d)
              s += p.q[b * p.q_stride_b + i * p.q_stride_s + h * p.q_stride_h + d] *
                   p.k[b * p.k_stride_b + j * p.k_stride_s + d];
            CHECK(row[j] == doctest::Approx(std::exp(p.scale * s - lse[(b * p.H + h) * p.Sq + i]))
                                .epsilon(1e-12));
          }
        }
        CHECK(sum == doctest::Approx(any ? 1.0 : 0.0).epsilon(1e-12));
      }
}

TEST_CASE_TEMPLATE("fully masked rows give O = 0, LSE = -inf and zero gradients", T, double,
                   float) {
  check_fully_masked_rows<T>([](const Problem<T>& pr) { return run_flash(pr); }, tolerance<T>(), false);
}

// With 1 thread the backward takes the fused schedule (B * Hkv >= 2 tasks per thread), with 2
// threads the two-pass one (flash_attention.cpp): this also checks the two agree bitwise.
TEST_CASE("flash attention: bitwise identical for 1 and 2 threads and both backward schedules") {
  const int64_t shapes[][5] = {{300, 250, 4, 2, 32}, {130, 400, 4, 2, 100}, {97, 97, 6, 3, 16}};
  for (auto& sh : shapes) {
    Case c;
    c.B = 1, c.Sq = sh[0], c.Sk = sh[1], c.H = sh[2], c.Hkv = sh[3], c.D = sh[4];
    c.causal = true, c.padding = true, c.bias = Bias::KeyRow, c.dropout = 0.1;
    c.seed = uint64_t(sh[0]);
    INFO(describe(c));
    Problem<float> pr(c);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const Outputs<float> one = run_flash(pr);
    omp_set_num_threads(2);
    const Outputs<float> two = run_flash(pr);
    omp_set_num_threads(saved);
    CHECK(one.o == two.o);
    CHECK(one.lse == two.lse);
    CHECK(one.dq == two.dq);
    CHECK(one.dk == two.dk);
    CHECK(one.dv == two.dv);
    const Outputs<float> r = run_reference(pr);
    CHECK(rel_error(one.dq, r.dq) < 1e-4);
    CHECK(rel_error(one.dk, r.dk) < 1e-4);
    CHECK(rel_error(two.dv, r.dv) < 1e-4);
  }
}

TEST_CASE("dropout mask: keep rate, independence across heads, same mask in forward and backward") {
  const double p = 0.3;
  int64_t kept = 0, same = 0;
  const int64_t n = 200000;
  for (int64_t j = 0; j < n; ++j) {
    const bool a = dropout_keep(42, 0, 0, 3, j, p), b = dropout_keep(42, 0, 1, 3, j, p);
    kept += a;
    same += (a == b);
  }
  CHECK(double(kept) / n == doctest::Approx(0.7).epsilon(0.01));
  CHECK(double(same) / n == doctest::Approx(0.7 * 0.7 + 0.3 * 0.3).epsilon(0.01));  // independent
  CHECK(dropout_keep(42, 1, 2, 3, 4, 0.0));
  // Output changes with the seed; identical seed reproduces it exactly.
  Case c;
  c.Sq = c.Sk = 50, c.H = 2, c.Hkv = 2, c.D = 8, c.dropout = 0.5, c.seed = 3;
  Problem<double> pr(c);
  Outputs<double> a(pr.p), b(pr.p), d(pr.p);
  flash_attention_forward(pr.p, a.o.data(), a.lse.data());
  flash_attention_forward(pr.p, b.o.data(), b.lse.data());
  pr.p.dropout_seed += 1;
  flash_attention_forward(pr.p, d.o.data(), d.lse.data());
  CHECK(a.o == b.o);
  CHECK(a.o != d.o);
  CHECK(a.lse == d.lse);  // the normalizer is computed before dropout
}

TEST_CASE("invalid attention arguments throw attnlab::Error") {
  std::vector<float> x(4096, 0.5f), o(4096), lse(256), g(4096);
  auto p = attention_params<float>(1, 4, 4, 4, 3, 8, x.data(), x.data(), x.data());  // 4 % 3
  CHECK_THROWS_AS(flash_attention_forward(p, o.data(), lse.data()), attnlab::Error);
  CHECK_THROWS_WITH_AS(attention_reference_forward(p, o.data(), lse.data()),
                       doctest::Contains("Hkv=3"), attnlab::Error);
  p = attention_params<float>(1, 4, 4, 4, 2, 0, x.data(), x.data(), x.data());  // D == 0
  CHECK_THROWS_AS(flash_attention_forward(p, o.data(), lse.data()), attnlab::Error);
  CHECK_THROWS_AS(flash_attention_backward(p, o.data(), g.data(), lse.data(), g.data(), g.data(),
                                           g.data()),
                  attnlab::Error);
  p = attention_params<float>(1, 4, 4, 4, 2, 8, x.data(), nullptr, x.data());
  CHECK_THROWS_AS(flash_attention_forward(p, o.data(), lse.data()), attnlab::Error);
  p = attention_params<float>(1, 4, 4, 4, 2, 8, x.data(), x.data(), x.data());
  p.dropout_p = 1.0;
  CHECK_THROWS_AS(flash_attention_forward(p, o.data(), lse.data()), attnlab::Error);
  p.dropout_p = 0;
  p.window = 2;  // a sliding window without causal
  CHECK_THROWS_WITH_AS(flash_attention_forward(p, o.data(), lse.data()), doctest::Contains("causal"),
                       attnlab::Error);
  p.causal = true, p.window = -1;
  CHECK_THROWS_WITH_AS(attention_reference_forward(p, o.data(), lse.data()), doctest::Contains("window"),
                       attnlab::Error);
  p.causal = false, p.window = 0;
  float* no_output = nullptr;
  CHECK_THROWS_AS(flash_attention_forward(p, no_output, lse.data()), attnlab::Error);
  CHECK_NOTHROW(flash_attention_forward(p, o.data(), lse.data()));
}

// ---- benchmark (skipped by default) ------------------------------------------------------------
// build-flash/tests/kernels_test_flash_attention --no-skip -tc="*benchmark*"
// FLOPs counted as in the FlashAttention papers: forward 4 B H Sq Sk D (two GEMMs), forward +
// backward 14 B H Sq Sk D (2 forward + 5 backward GEMMs; flash's recomputation is not credited).
namespace {

template <class F>
double seconds(F&& f, int reps) {
  f();  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

}  // namespace

TEST_CASE("benchmark: flash attention GFLOP/s vs cblas_sgemm and the math paths" *
          doctest::skip()) {
  {
    const int n = 2048;
    std::vector<float> a(size_t(n) * n, 0.5f), b(a), c(a.size());
    const double t = seconds(
        [&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n,
                      b.data(), n, 0.0f, c.data(), n);
        },
        5);
    std::printf("cblas_sgemm %d^3: %.1f GFLOP/s\n", n, 2.0 * n * n * n / t / 1e9);
  }
  const bool with_reference = std::getenv("ATTNLAB_BENCH_REFERENCE") != nullptr;
  for (int64_t S : {1024, 2048, 4096}) {
    for (bool causal : {false, true}) {
      Case c;
      c.B = 1, c.Sq = c.Sk = S, c.H = 8, c.Hkv = 8, c.D = 64, c.causal = causal, c.seed = 1;
      Problem<float> pr(c);
      pr.p.scale = 0.125f;
      Outputs<float> out(pr.p);
      const double flops = 4.0 * double(S) * double(S) * 8 * 64 / (causal ? 2 : 1);
      const int reps = S <= 2048 ? 3 : 1;
      const double tf = seconds(
          [&] { flash_attention_forward(pr.p, out.o.data(), out.lse.data()); }, reps);
      const double tb = seconds(
          [&] {
            flash_attention_backward(pr.p, out.o.data(), pr.dout.data(), out.lse.data(),
                                     out.dq.data(), out.dk.data(), out.dv.data());
          },
          reps);
      std::printf("S=%5lld causal=%d flash fwd %.3f s %.1f GFLOP/s | fwd+bwd %.3f s %.1f GFLOP/s\n",
                  (long long)S, int(causal), tf, flops / tf / 1e9, tf + tb,
                  3.5 * flops / (tf + tb) / 1e9);
      if (causal) continue;
      // The BLAS math path (attention_math.h): full [Sq, Sk] scores and P, dP/dS scratch.
      std::vector<float> P(size_t(8 * S * S)), work(size_t(attention_math_backward_workspace(pr.p)));
      const double tm = seconds(
          [&] {
            attention_math_forward<float>(pr.p, out.o.data(), out.lse.data(), P.data(), nullptr, 0);
            attention_math_backward(pr.p, P.data(), pr.dout.data(), out.dq.data(), out.dk.data(),
                                    out.dv.data(), work.data(), int64_t(work.size()));
          },
          1);
      std::printf("        BLAS math path fwd+bwd %.3f s %.1f GFLOP/s (%.2fx flash time)\n", tm,
                  3.5 * flops / tm / 1e9, tm / (tf + tb));
      if (!with_reference) continue;
      const auto t0 = std::chrono::steady_clock::now();  // one run, no warm-up: it is slow
      attention_reference_forward(pr.p, out.o.data(), out.lse.data());
      attention_reference_backward(pr.p, pr.dout.data(), out.dq.data(), out.dk.data(),
                                   out.dv.data());
      const double tr =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("        loop reference fwd+bwd %.3f s (%.1fx flash time)\n", tr,
                  tr / (tf + tb));
    }
  }
}
