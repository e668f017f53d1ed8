// The BLAS math path (kernels/cpu/attention_math.h) against the loop reference
// (kernels/cpu/attention_reference.h): O, LSE and the materialized P in forward, dQ, dK, dV in
// backward, over head layouts, masks, bias broadcasts, dropout, lengths, head dims and strides.
//
// Tolerances are max |math - reference| / max |reference| per tensor: 1e-12 in f64 (both sum in
// double; only the summation order differs), 1e-5 in f32 (sgemm's blocked sums against the
// reference's sequential ones, and the float exp polynomial against std::exp, grow with Sk and D).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "attention_cases.h"
#include "kernels/cpu/attention_math.h"
#include "kernels/cpu/attention_reference.h"
#include "kernels/error.h"

using namespace attnlab::kernels;
using namespace attnlab::kernels::testing;

namespace {

template <class T>
Outputs<T> run_math(const Problem<T>& pr) {
  Outputs<T> out(pr.p);
  std::vector<T> fwd_work(size_t(attention_math_forward_workspace(pr.p)));
  std::vector<T> bwd_work(size_t(attention_math_backward_workspace(pr.p)));
  attention_math_forward(pr.p, out.o.data(), out.lse.data(), out.probs.data(), fwd_work.data(),
                         int64_t(fwd_work.size()));
  attention_math_backward(pr.p, out.probs.data(), pr.dout.data(), out.dq.data(), out.dk.data(),
                          out.dv.data(), bwd_work.data(), int64_t(bwd_work.size()));
  return out;
}

template <class T>
double math_tolerance() {
  return sizeof(T) == 8 ? 1e-12 : 1e-5;
}

template <class T>
void check_case(const Case& c) {
  INFO(describe(c));
  const double tol = math_tolerance<T>();
  Problem<T> pr(c);
  const Outputs<T> m = run_math(pr), r = run_reference(pr);
  CHECK(rel_error(m.o, r.o) < tol);
  CHECK(rel_error(m.lse, r.lse) < tol);
  CHECK(rel_error(m.probs, r.probs) < tol);
  CHECK(rel_error(m.dq, r.dq) < tol);
  CHECK(rel_error(m.dk, r.dk) < tol);
  CHECK(rel_error(m.dv, r.dv) < tol);
}

}  // namespace

TEST_CASE_TEMPLATE("math attention matches the reference: MHA/GQA/MQA x causal x masks", T, double,
                   float) {
  uint64_t seed = 1;
  for (int64_t Hkv : {4, 2, 1})
    for (bool causal : {false, true})
      for (int variant = 0; variant < 6; ++variant) {
        Case c;
        c.B = 2, c.Sq = c.Sk = 65, c.H = 4, c.Hkv = Hkv, c.D = 16, c.causal = causal;
        c.seed = seed++;
        if (variant == 1) c.padding = true;
        if (variant == 2) c.bias = Bias::Full;
        if (variant == 3) c.bias = Bias::KeyRow, c.padding = true;  // [B, 1, 1, Sk] broadcast
        if (variant == 4) c.bias = Bias::BoolSqSk;                  // [Sq, Sk], column-major
        if (variant == 5) c.dropout = 0.2, c.padding = true, c.bias = Bias::KeyRow;
        check_case<T>(c);
      }
}

TEST_CASE_TEMPLATE("math attention matches the reference: lengths and Sq != Sk", T, double, float) {
  for (int64_t S : {1, 7, 64, 65, 129})
    for (bool causal : {false, true}) {
      Case c;
      c.B = 1, c.Sq = c.Sk = S, c.H = 2, c.Hkv = 1, c.D = 32, c.causal = causal;
      c.padding = S > 1, c.dropout = 0.1;
      c.seed = uint64_t(S * 2 + causal);
      check_case<T>(c);
    }
  const int64_t lens[][2] = {{7, 129}, {129, 7}, {64, 65}, {65, 1}, {1, 100}};
  for (auto& l : lens)
    for (bool causal : {false, true}) {
      Case c;
      c.B = 2, c.Sq = l[0], c.Sk = l[1], c.H = 4, c.Hkv = 2, c.D = 16, c.causal = causal;
      c.bias = Bias::Full;
      c.seed = uint64_t(l[0] * 1000 + l[1] + causal);
      check_case<T>(c);
    }
}

TEST_CASE_TEMPLATE("math attention matches the reference: head dims", T, double, float) {
  for (int64_t D : {1, 3, 16, 64, 100, 128, 256}) {
    Case c;
    c.B = 1, c.Sq = 70, c.Sk = 110, c.H = 2, c.Hkv = 1, c.D = D, c.causal = true;
    c.padding = true, c.dropout = 0.1;
    c.seed = uint64_t(D);
    check_case<T>(c);
  }
}

TEST_CASE_TEMPLATE("math attention matches the reference: strided Q/K/V, no copies", T, double,
                   float) {
  for (Layout layout : {Layout::PackedQKV, Layout::HeadMajor})
    for (int64_t Hkv : {4, 2, 1}) {
      Case c;
      c.B = 2, c.Sq = c.Sk = 100, c.H = 4, c.Hkv = Hkv, c.D = 24, c.causal = Hkv != 2;
      c.padding = true, c.bias = Bias::KeyRow, c.dropout = 0.15, c.layout = layout;
      c.seed = uint64_t(40 + Hkv + int(layout));
      check_case<T>(c);
    }
}

TEST_CASE_TEMPLATE("math attention: fully masked rows give P = 0, O = 0, LSE = -inf, no gradient",
                   T, double, float) {
  // Batch 1 has every key padded; causal with Sq > Sk leaves the first Sq - Sk queries blind.
  Case c;
  c.B = 2, c.Sq = 40, c.Sk = 30, c.H = 2, c.Hkv = 1, c.D = 16, c.causal = true, c.seed = 9;
  c.dropout = 0.3;
  Problem<T> pr(c);
  pr.pad.assign(size_t(c.B * c.Sk), 0);
  std::fill(pr.pad.begin() + c.Sk, pr.pad.end(), 1);
  pr.p.key_padding_mask = pr.pad.data();
  const Outputs<T> m = run_math(pr), r = run_reference(pr);
  const int64_t H = c.H, D = c.D, Sq = c.Sq, Sk = c.Sk;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Sq; ++i) {
        if (!(b == 1 || i < Sq - Sk)) continue;
        CHECK(m.lse[size_t((b * H + h) * Sq + i)] == -std::numeric_limits<T>::infinity());
        for (int64_t j = 0; j < Sk; ++j) CHECK(m.probs[size_t(((b * H + h) * Sq + i) * Sk + j)] == T(0));
        for (int64_t d = 0; d < D; ++d) {
          CHECK(m.o[size_t(((b * Sq + i) * H + h) * D + d)] == T(0));
          CHECK(m.dq[size_t(((b * Sq + i) * H + h) * D + d)] == T(0));
        }
      }
  for (size_t e = size_t(Sk * c.Hkv * D); e < m.dk.size(); ++e) {  // batch 1: no gradient
    CHECK(m.dk[e] == T(0));
    CHECK(m.dv[e] == T(0));
  }
  const double tol = math_tolerance<T>();
  CHECK(rel_error(m.o, r.o) < tol);
  CHECK(rel_error(m.probs, r.probs) < tol);
  CHECK(rel_error(m.dq, r.dq) < tol);
  CHECK(rel_error(m.dk, r.dk) < tol);
  CHECK(rel_error(m.dv, r.dv) < tol);
}

TEST_CASE("math attention in float is close to the double reference") {
  Case c;
  c.B = 2, c.Sq = 150, c.Sk = 170, c.H = 4, c.Hkv = 2, c.D = 64, c.causal = true;
  c.padding = true, c.bias = Bias::Full, c.dropout = 0.1, c.seed = 77;
  Problem<float> pf(c);
  Problem<double> pd(c);  // same seed: the float inputs are the double ones rounded
  const Outputs<float> m = run_math(pf);
  const Outputs<double> r = run_reference(pd);
  CHECK(rel_error(m.o, r.o) < 1e-5);
  CHECK(rel_error(m.lse, r.lse) < 1e-5);
  CHECK(rel_error(m.probs, r.probs) < 1e-5);
  CHECK(rel_error(m.dq, r.dq) < 1e-4);
  CHECK(rel_error(m.dk, r.dk) < 1e-4);
  CHECK(rel_error(m.dv, r.dv) < 1e-4);
}

// B * Hkv >= threads: one task per KV group; B = 1 with MQA: a group is split into chunks whose
// partial dK/dV are summed in chunk order (attention_math.cpp). Both must repeat bitwise.
TEST_CASE("math attention is deterministic: repeated runs agree bitwise") {
  for (int64_t Hkv : {6, 2, 1}) {
    Case c;
    c.B = 1, c.Sq = c.Sk = 300, c.H = 6, c.Hkv = Hkv, c.D = 32, c.causal = true;
    c.padding = true, c.dropout = 0.1, c.seed = uint64_t(5 + Hkv);
    INFO(describe(c));
    Problem<float> pr(c);
    const Outputs<float> a = run_math(pr), b = run_math(pr);
    CHECK(a.o == b.o);
    CHECK(a.probs == b.probs);
    CHECK(a.dq == b.dq);
    CHECK(a.dk == b.dk);
    CHECK(a.dv == b.dv);
  }
}

TEST_CASE("math attention: missing buffers throw attnlab::Error") {
  std::vector<float> x(4096, 0.5f), o(4096), lse(256), P(4096), g(4096), w(4096);
  float* none = nullptr;
  auto p = attention_params<float>(1, 4, 4, 4, 2, 8, x.data(), x.data(), x.data());
  CHECK_THROWS_AS(attention_math_forward(p, o.data(), lse.data(), none, none, 0), attnlab::Error);
  p.dropout_p = 0.5;  // dropout needs the P * z scratch
  const int64_t need = attention_math_forward_workspace(p);
  CHECK(need > 0);
  CHECK_THROWS_WITH_AS(attention_math_forward(p, o.data(), lse.data(), P.data(), none, 0),
                       doctest::Contains("workspace"), attnlab::Error);
  CHECK_THROWS_AS(attention_math_forward(p, o.data(), lse.data(), P.data(), w.data(), need - 1),
                  attnlab::Error);
  CHECK_NOTHROW(attention_math_forward(p, o.data(), lse.data(), P.data(), w.data(), need));
  const int64_t need_b = attention_math_backward_workspace(p);
  CHECK_THROWS_AS(attention_math_backward(p, P.data(), g.data(), g.data(), g.data(), g.data(),
                                          none, 0),
                  attnlab::Error);
  CHECK_THROWS_AS(attention_math_backward(p, P.data(), g.data(), g.data(), g.data(), g.data(),
                                          w.data(), need_b - 1),
                  attnlab::Error);
  p.dropout_p = 0;
  CHECK(attention_math_forward_workspace(p) == 0);
  CHECK_NOTHROW(attention_math_forward(p, o.data(), lse.data(), P.data(), none, 0));
}
