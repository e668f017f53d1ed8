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
  Problem<T> pr(c);
  check_outputs(run_math(pr), run_reference(pr), math_tolerance<T>(), math_tolerance<T>(), true);
}

}  // namespace

TEST_CASE_TEMPLATE("math attention matches the reference: MHA/GQA/MQA x causal x masks", T, double,
                   float) {
  for (const Case& c : mask_sweep()) check_case<T>(c);
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

TEST_CASE_TEMPLATE("math attention matches the reference: causal sliding windows", T, double, float) {
  for (const Case& c : window_sweep()) check_case<T>(c);
}

TEST_CASE_TEMPLATE("math attention matches the reference: head dims", T, double, float) {
  for (const Case& c : head_dim_sweep()) check_case<T>(c);
}

TEST_CASE_TEMPLATE("math attention matches the reference: strided Q/K/V, no copies", T, double,
                   float) {
  for (const Case& c : strided_sweep()) check_case<T>(c);
}

TEST_CASE_TEMPLATE("math attention: fully masked rows give P = 0, O = 0, LSE = -inf, no gradient",
                   T, double, float) {
  check_fully_masked_rows<T>([](const Problem<T>& pr) { return run_math(pr); }, math_tolerance<T>(),
                             true);
}

TEST_CASE("math attention in float is close to the double reference") {
  check_float_against_double_reference([](const Problem<float>& pr) { return run_math(pr); }, true);
}

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
