// Shared by the attention kernel tests (test_flash_attention.cpp, test_attention_math.cpp): one
// random problem (Q/K/V in several layouts, masks, bias, dropout, dO), the output buffers, the
// reference run, and the relative error used against it.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/attention_reference.h"
#include "kernels/error.h"

namespace attnlab::kernels::testing {

enum class Layout { Contiguous, PackedQKV, HeadMajor };
enum class Bias { None, Full, KeyRow, BoolSqSk };

struct Case {
  int64_t B = 1, Sq = 8, Sk = 8, H = 4, Hkv = 4, D = 16;
  bool causal = false;
  int64_t window = 0;    // sliding window (with causal)
  bool padding = false;  // random key padding mask
  Bias bias = Bias::None;
  double dropout = 0;
  Layout layout = Layout::Contiguous;
  uint64_t seed = 1;
};

inline std::string describe(const Case& c) {
  return attnlab::cat("B=", c.B, " Sq=", c.Sq, " Sk=", c.Sk, " H=", c.H, " Hkv=", c.Hkv,
                      " D=", c.D, " causal=", c.causal, " window=", c.window, " padding=", c.padding,
                      " bias=", int(c.bias), " dropout=", c.dropout, " layout=", int(c.layout));
}

// Inputs of one case: storage for Q/K/V (possibly strided), masks, and dO; params point into it.
template <class T>
struct Problem {
  std::vector<T> qs, ks, vs, bias, dout;
  std::vector<uint8_t> pad;
  AttentionParams<T> p;

  explicit Problem(const Case& c) {
    std::mt19937_64 rng(c.seed);
    std::uniform_real_distribution<double> U(-1, 1);
    auto fill = [&](std::vector<T>& v) {
      for (auto& x : v) x = T(U(rng));
    };
    const int64_t B = c.B, Sq = c.Sq, Sk = c.Sk, H = c.H, Hkv = c.Hkv, D = c.D;
    p.B = B, p.Sq = Sq, p.Sk = Sk, p.H = H, p.Hkv = Hkv, p.D = D;
    if (c.layout == Layout::PackedQKV) {
      // one fused projection output [B, S, H + 2 Hkv, D]: Q heads, then K heads, then V heads
      REQUIRE(Sq == Sk);
      const int64_t W = H + 2 * Hkv;
      qs.resize(size_t(B * Sq * W * D));
      fill(qs);
      p.q = qs.data(), p.k = qs.data() + H * D, p.v = qs.data() + (H + Hkv) * D;
      p.q_stride_b = p.k_stride_b = p.v_stride_b = Sq * W * D;
      p.q_stride_s = p.k_stride_s = p.v_stride_s = W * D;
      p.q_stride_h = p.k_stride_h = p.v_stride_h = D;
    } else if (c.layout == Layout::HeadMajor) {
      // [B, heads, S, D + 3]: head stride larger than seq stride, rows padded
      const int64_t ld = D + 3;
      qs.resize(size_t(B * H * Sq * ld)), ks.resize(size_t(B * Hkv * Sk * ld));
      vs.resize(ks.size());
      fill(qs), fill(ks), fill(vs);
      p.q = qs.data(), p.q_stride_b = H * Sq * ld, p.q_stride_s = ld, p.q_stride_h = Sq * ld;
      p.k = ks.data(), p.k_stride_b = Hkv * Sk * ld, p.k_stride_s = ld, p.k_stride_h = Sk * ld;
      p.v = vs.data(), p.v_stride_b = Hkv * Sk * ld, p.v_stride_s = ld, p.v_stride_h = Sk * ld;
    } else {
      qs.resize(size_t(B * Sq * H * D)), ks.resize(size_t(B * Sk * Hkv * D)), vs.resize(ks.size());
      fill(qs), fill(ks), fill(vs);
      p = attention_params<T>(B, Sq, Sk, H, Hkv, D, qs.data(), ks.data(), vs.data());
    }
    // Scores of order a few units so the softmax is far from uniform.
    p.scale = T(2.0 / std::sqrt(double(D)));
    p.causal = c.causal;
    p.window = c.window;
    if (c.padding) {
      pad.resize(size_t(B * Sk));
      for (auto& m : pad) m = (rng() % 4 == 0);  // ~25% of keys ignored
      p.key_padding_mask = pad.data();
    }
    if (c.bias == Bias::Full) {
      bias.resize(size_t(B * H * Sq * Sk));
      fill(bias);
      p.bias = bias.data();
      p.bias_stride_b = H * Sq * Sk, p.bias_stride_h = Sq * Sk, p.bias_stride_q = Sk;
      p.bias_stride_k = 1;
    } else if (c.bias == Bias::KeyRow) {  // [B, 1, 1, Sk]
      bias.resize(size_t(B * Sk));
      fill(bias);
      p.bias = bias.data(), p.bias_stride_b = Sk, p.bias_stride_k = 1;
    } else if (c.bias == Bias::BoolSqSk) {  // [Sq, Sk] boolean mask as 0 / -inf, column-major
      bias.resize(size_t(Sq * Sk));
      for (auto& x : bias) x = (rng() % 5 == 0) ? -std::numeric_limits<T>::infinity() : T(0);
      p.bias = bias.data(), p.bias_stride_q = 1, p.bias_stride_k = Sq;
    }
    p.dropout_p = c.dropout;
    p.dropout_seed = c.seed * 7919 + 3;
    dout.resize(size_t(B * Sq * H * D));
    fill(dout);
  }
};

template <class T>
struct Outputs {
  std::vector<T> o, lse, dq, dk, dv;
  std::vector<T> probs;  // [B, H, Sq, Sk], filled by the paths that materialize P
  explicit Outputs(const AttentionParams<T>& p)
      : o(size_t(p.B * p.Sq * p.H * p.D)), lse(size_t(p.B * p.H * p.Sq)), dq(o.size()),
        dk(size_t(p.B * p.Sk * p.Hkv * p.D)), dv(dk.size()), probs(size_t(p.B * p.H * p.Sq * p.Sk)) {}
};

// The reference forward (with P) and backward: what every other path is checked against.
template <class T>
Outputs<T> run_reference(const Problem<T>& pr) {
  Outputs<T> out(pr.p);
  attention_reference_forward(pr.p, out.o.data(), out.lse.data(), out.probs.data());
  attention_reference_backward(pr.p, pr.dout.data(), out.dq.data(), out.dk.data(), out.dv.data());
  return out;
}

// max |a - b| / max |b|; -inf must match -inf exactly (LSE of masked rows).
template <class A, class B>
double rel_error(const std::vector<A>& a, const std::vector<B>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, mag = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = double(a[i]), y = double(b[i]);
    if (std::isinf(y) || std::isinf(x)) {
      if (x != y) return std::numeric_limits<double>::infinity();
      continue;
    }
    if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<double>::infinity();
    diff = std::max(diff, std::abs(x - y));
    mag = std::max(mag, std::abs(y));
  }
  return mag > 0 ? diff / mag : diff;
}

template <class T>
double tolerance() {
  return sizeof(T) == 8 ? 1e-10 : 1e-4;
}

// CHECKs O, LSE, dQ, dK, dV of `got` against `ref` (and P with `probs`): values within tol,
// gradients within grad_tol (relative to the largest element, rel_error).
template <class T, class U>
void check_outputs(const Outputs<T>& got, const Outputs<U>& ref, double tol, double grad_tol,
                   bool probs = false) {
  CHECK(rel_error(got.o, ref.o) < tol);
  CHECK(rel_error(got.lse, ref.lse) < tol);
  if (probs) CHECK(rel_error(got.probs, ref.probs) < tol);
  CHECK(rel_error(got.dq, ref.dq) < grad_tol);
  CHECK(rel_error(got.dk, ref.dk) < grad_tol);
  CHECK(rel_error(got.dv, ref.dv) < grad_tol);
}

// ---- case sweeps shared by the kernel tests ------------------------------------------------------
// MHA/GQA/MQA x causal x {none, padding, full bias, [B, 1, 1, Sk] bias + padding, boolean [Sq, Sk]
// mask (column-major), dropout + padding + broadcast bias}; B = 2, S = 65, D = 16.
inline std::vector<Case> mask_sweep() {
  std::vector<Case> cases;
  uint64_t seed = 1;
  for (int64_t Hkv : {4, 2, 1})
    for (bool causal : {false, true})
      for (int variant = 0; variant < 6; ++variant) {
        Case c;
        c.B = 2, c.Sq = c.Sk = 65, c.H = 4, c.Hkv = Hkv, c.D = 16, c.causal = causal;
        c.seed = seed++;
        if (variant == 1) c.padding = true;
        if (variant == 2) c.bias = Bias::Full;
        if (variant == 3) c.bias = Bias::KeyRow, c.padding = true;
        if (variant == 4) c.bias = Bias::BoolSqSk;
        if (variant == 5) c.dropout = 0.2, c.padding = true, c.bias = Bias::KeyRow;
        cases.push_back(c);
      }
  return cases;
}

// Causal sliding windows: windows of 1 key, inside one tile, across tile edges (96) and wider than
// the sequence; Sq == Sk and Sq != Sk (bottom-right), MHA/GQA/MQA, with padding, bias and dropout
// on some; lengths of several tiles so the flash kernels skip tiles on both sides of the band.
inline std::vector<Case> window_sweep() {
  std::vector<Case> cases;
  const int64_t shapes[][3] = {{300, 300, 1}, {300, 300, 5}, {300, 300, 96}, {300, 300, 97},
                               {250, 250, 130}, {65, 65, 400}, {40, 290, 33}, {290, 200, 60}};
  uint64_t seed = 500;
  for (auto& s : shapes)
    for (int variant = 0; variant < 3; ++variant) {
      Case c;
      c.B = 1, c.Sq = s[0], c.Sk = s[1], c.window = s[2], c.causal = true;
      c.H = 4, c.Hkv = variant == 0 ? 4 : variant == 1 ? 2 : 1, c.D = 16;
      c.seed = seed++;
      if (variant == 1) c.padding = true, c.bias = Bias::KeyRow;
      if (variant == 2) c.dropout = 0.2, c.bias = Bias::Full;
      cases.push_back(c);
    }
  return cases;
}

// Head dims 1 to 256 with Sq != Sk, causal, padding and dropout.
inline std::vector<Case> head_dim_sweep() {
  std::vector<Case> cases;
  for (int64_t D : {1, 3, 16, 64, 100, 128, 256}) {
    Case c;
    c.B = 1, c.Sq = 70, c.Sk = 110, c.H = 2, c.Hkv = 1, c.D = D, c.causal = true;
    c.padding = true, c.dropout = 0.1;
    c.seed = uint64_t(D);
    cases.push_back(c);
  }
  return cases;
}

// Packed QKV and head-major layouts, MHA/GQA/MQA, with padding, a broadcast bias and dropout.
inline std::vector<Case> strided_sweep() {
  std::vector<Case> cases;
  for (Layout layout : {Layout::PackedQKV, Layout::HeadMajor})
    for (int64_t Hkv : {4, 2, 1}) {
      Case c;
      c.B = 2, c.Sq = c.Sk = 100, c.H = 4, c.Hkv = Hkv, c.D = 24, c.causal = Hkv != 2;
      c.padding = true, c.bias = Bias::KeyRow, c.dropout = 0.15, c.layout = layout;
      c.seed = uint64_t(40 + Hkv + int(layout));
      cases.push_back(c);
    }
  return cases;
}

// A float run against the double reference on the same (rounded) inputs: values within 1e-5,
// gradients within 1e-4. `run` maps a Problem<float> to its Outputs<float>.
template <class Run>
void check_float_against_double_reference(Run run, bool probs) {
  Case c;
  c.B = 2, c.Sq = 150, c.Sk = 170, c.H = 4, c.Hkv = 2, c.D = 64, c.causal = true;
  c.padding = true, c.bias = Bias::Full, c.dropout = 0.1, c.seed = 77;
  Problem<float> pf(c);
  Problem<double> pd(c);  // same seed: the float inputs are the double ones rounded
  check_outputs(run(pf), run_reference(pd), 1e-5, 1e-4, probs);
}

// Fully masked rows: batch 1 has every key padded, and causal with Sq > Sk leaves the first
// Sq - Sk queries of batch 0 blind. Checks O = 0, LSE = -inf, P = 0 (with `probs`), zero dQ and
// zero dK/dV for batch 1, and agreement with the reference within tol.
template <class T, class Run>
void check_fully_masked_rows(Run run, double tol, bool probs) {
  Case c;
  c.B = 2, c.Sq = 40, c.Sk = 30, c.H = 2, c.Hkv = 1, c.D = 16, c.causal = true, c.seed = 9;
  c.dropout = 0.3;
  Problem<T> pr(c);
  pr.pad.assign(size_t(c.B * c.Sk), 0);
  std::fill(pr.pad.begin() + c.Sk, pr.pad.end(), 1);
  pr.p.key_padding_mask = pr.pad.data();
  const Outputs<T> f = run(pr), r = run_reference(pr);
  const int64_t H = c.H, D = c.D, Sq = c.Sq, Sk = c.Sk;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t i = 0; i < Sq; ++i)
      for (int64_t h = 0; h < H; ++h) {
        const bool blind = b == 1 || i < Sq - Sk;
        const T lse = f.lse[size_t((b * H + h) * Sq + i)];
        CHECK(std::isinf(lse) == blind);
        if (!blind) continue;
        CHECK(lse < 0);
        for (int64_t d = 0; d < D; ++d) {
          CHECK(f.o[size_t(((b * Sq + i) * H + h) * D + d)] == T(0));
          CHECK(f.dq[size_t(((b * Sq + i) * H + h) * D + d)] == T(0));
        }
        if (probs)
          for (int64_t j = 0; j < Sk; ++j) CHECK(f.probs[size_t(((b * H + h) * Sq + i) * Sk + j)] == T(0));
      }
  for (size_t e = size_t(Sk * c.Hkv * D); e < f.dk.size(); ++e) {  // batch 1: no gradient
    CHECK(f.dk[e] == T(0));
    CHECK(f.dv[e] == T(0));
  }
  check_outputs(f, r, tol, tol, probs);
}

}  // namespace attnlab::kernels::testing
