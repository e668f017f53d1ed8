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
  bool padding = false;  // random key padding mask
  Bias bias = Bias::None;
  double dropout = 0;
  Layout layout = Layout::Contiguous;
  uint64_t seed = 1;
};

inline std::string describe(const Case& c) {
  return attnlab::cat("B=", c.B, " Sq=", c.Sq, " Sk=", c.Sk, " H=", c.H, " Hkv=", c.Hkv,
                      " D=", c.D, " causal=", c.causal, " padding=", c.padding,
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

}  // namespace attnlab::kernels::testing
