// scaled_dot_product_attention: flash vs math and math vs reference (outputs and all three
// gradients) over a sweep, gradchecks in f64 through every backend, masks, GQA without copies, what
// the math backend keeps for backward, and peak memory read from the tracker.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "nn/attention/sdpa.h"
#include "tensor/memory.h"
#include "test_util.h"

using namespace attnlab;
using namespace attnlab::nn;

namespace {

struct Case {
  int64_t B, Sq, Sk, H, Hkv, D;
  bool causal;
};

// Runs one backend; returns {out, dq, dk, dv} for a fixed upstream gradient.
std::vector<Tensor> run(const Tensor& q0, const Tensor& k0, const Tensor& v0, const Tensor& dout,
                        AttentionOptions opt, AttentionBackend backend) {
  Tensor q = ops::clone(q0).set_requires_grad(), k = ops::clone(k0).set_requires_grad(),
         v = ops::clone(v0).set_requires_grad();
  opt.backend = backend;
  const auto r = scaled_dot_product_attention(q, k, v, opt);
  backward(r.out, dout);
  return {r.out, q.grad(), k.grad(), v.grad()};
}

void compare(const Case& c, DType dt, AttentionOptions opt = {}, double tol = -1,
             AttentionBackend first = AttentionBackend::math, AttentionBackend second = AttentionBackend::flash) {
  Generator g(uint64_t(c.Sq * 131 + c.Sk * 7 + c.D + c.Hkv));
  const Tensor q = randn({c.B, c.Sq, c.H, c.D}, dt, &g), k = randn({c.B, c.Sk, c.Hkv, c.D}, dt, &g),
               v = randn({c.B, c.Sk, c.Hkv, c.D}, dt, &g), dout = randn({c.B, c.Sq, c.H, c.D}, dt, &g);
  opt.causal = c.causal;
  const auto a = run(q, k, v, dout, opt, first);
  const auto b = run(q, k, v, dout, opt, second);
  if (tol < 0) tol = dt == DType::f64 ? 1e-10 : 2e-4;
  const char* names[] = {"out", "dq", "dk", "dv"};
  for (int i = 0; i < 4; ++i) {
    INFO("B=" << c.B << " Sq=" << c.Sq << " Sk=" << c.Sk << " H=" << c.H << " Hkv=" << c.Hkv << " D=" << c.D
              << " causal=" << c.causal << " backends " << int(first) << "/" << int(second) << " " << names[i]);
    const double scale = std::max(1.0, ops::amax(ops::unary(ops::UnaryOp::abs, a[size_t(i)])).item<double>());
    const double err = ops::amax(ops::unary(ops::UnaryOp::abs, ops::sub(a[size_t(i)], b[size_t(i)]))).item<double>();
    CHECK(err <= tol * scale);
  }
}

}  // namespace

TEST_CASE("flash == math: MHA/GQA/MQA, causal or not, lengths and head dims (f64)") {
  for (int64_t hkv : {4, 2, 1})
    for (bool causal : {false, true})
      for (int64_t s : {1, 7, 63, 64, 65, 129}) compare({2, s, s, 4, hkv, 16, causal}, DType::f64);
  for (int64_t d : {16, 64, 128, 256}) compare({1, 33, 33, 2, 1, d, true}, DType::f64);
}

TEST_CASE("flash == math: query length != key length, bottom-right causal (f64 and f32)") {
  for (bool causal : {false, true}) {
    compare({2, 5, 70, 4, 2, 32, causal}, DType::f64);   // decoding a few queries against a long cache
    compare({1, 70, 5, 4, 2, 32, causal}, DType::f64);   // Sq > Sk: the first queries see nothing
    compare({2, 17, 130, 4, 1, 64, causal}, DType::f32);
  }
}

TEST_CASE("flash == math at length 1000 (f32)") { compare({1, 1000, 1000, 2, 1, 64, true}, DType::f32); }

TEST_CASE("flash == math with key padding, an additive bias and dropout") {
  Generator g(3);
  AttentionOptions opt;
  opt.key_padding_mask = ops::compare_scalar(ops::CompareOp::gt, rand({2, 40}, DType::f64, &g), 0.7);
  opt.attn_bias = randn({1, 4, 1, 40}, DType::f64, &g);  // broadcast over batch and queries
  compare({2, 23, 40, 4, 2, 16, false}, DType::f64, opt);
  opt.dropout_p = 0.2;
  opt.dropout_seed = 99;
  compare({2, 23, 40, 4, 2, 16, true}, DType::f64, opt);
  // a boolean [Sq, Sk] mask given as a 0/-inf bias
  AttentionOptions m;
  m.attn_bias = mask_to_bias(ops::compare_scalar(ops::CompareOp::gt, rand({9, 9}, DType::f64, &g), 0.3), DType::f64);
  compare({1, 9, 9, 2, 2, 8, false}, DType::f64, m);
}

TEST_CASE("math == reference: the BLAS path against the loops, masks, bias and dropout (f64 and f32)") {
  const auto math = AttentionBackend::math, reference = AttentionBackend::reference;
  for (int64_t hkv : {4, 1})
    for (bool causal : {false, true}) {
      compare({2, 65, 65, 4, hkv, 16, causal}, DType::f64, {}, 1e-12, math, reference);
      compare({1, 7, 129, 4, hkv, 32, causal}, DType::f64, {}, 1e-12, math, reference);
      compare({2, 129, 40, 4, hkv, 64, causal}, DType::f32, {}, 2e-5, math, reference);
    }
  Generator g(5);
  AttentionOptions opt;
  opt.key_padding_mask = ops::compare_scalar(ops::CompareOp::gt, rand({2, 40}, DType::f64, &g), 0.7);
  opt.attn_bias = randn({1, 4, 1, 40}, DType::f64, &g);
  opt.dropout_p = 0.2;
  opt.dropout_seed = 17;
  compare({2, 23, 40, 4, 2, 16, true}, DType::f64, opt, 1e-12, math, reference);
}

TEST_CASE("sliding window: flash == math == reference, and == causal with a banded 0/-inf bias") {
  const auto math = AttentionBackend::math, flash = AttentionBackend::flash, reference = AttentionBackend::reference;
  for (int64_t w : {1, 6, 96, 200}) {
    AttentionOptions opt;
    opt.window = w;
    compare({2, 150, 150, 4, 2, 16, true}, DType::f64, opt, 1e-10, math, flash);
    compare({1, 40, 210, 4, 1, 16, true}, DType::f64, opt, 1e-10, math, flash);  // bottom-right: decode-like
    compare({2, 65, 65, 4, 4, 8, true}, DType::f64, opt, 1e-12, math, reference);
    compare({1, 300, 300, 2, 1, 32, true}, DType::f32, opt, 2e-4, math, flash);
  }
  // The same function as causal + a bias hiding keys j <= i + (Sk - Sq) - window.
  Generator g(21);
  const int64_t Sq = 30, Sk = 45, W = 7;
  const Tensor q = randn({1, Sq, 2, 8}, DType::f64, &g), k = randn({1, Sk, 2, 8}, DType::f64, &g),
               v = randn({1, Sk, 2, 8}, DType::f64, &g);
  std::vector<double> band(size_t(Sq * Sk), 0.0);
  for (int64_t i = 0; i < Sq; ++i)
    for (int64_t j = 0; j < Sk; ++j)
      if (j <= i + (Sk - Sq) - W) band[size_t(i * Sk + j)] = -INFINITY;
  AttentionOptions banded, windowed;
  banded.causal = windowed.causal = true;
  banded.attn_bias = from_vector(band, {Sq, Sk}, DType::f64);
  windowed.window = W;
  CHECK(testing::max_abs_diff(scaled_dot_product_attention(q, k, v, windowed).out,
                              scaled_dot_product_attention(q, k, v, banded).out) < 1e-14);
}

TEST_CASE("gradcheck through every backend in f64") {
  for (auto backend : {AttentionBackend::math, AttentionBackend::flash, AttentionBackend::reference}) {
    Generator g(11);
    std::vector<Tensor> in = {randn({1, 5, 4, 8}, DType::f64, &g), randn({1, 7, 2, 8}, DType::f64, &g),
                              randn({1, 7, 2, 8}, DType::f64, &g)};
    for (auto& t : in) t.set_requires_grad();
    AttentionOptions opt;
    opt.backend = backend;
    opt.causal = true;
    opt.dropout_p = 0.25;
    opt.dropout_seed = 5;
    for (int64_t window : {0, 3}) {  // and with a sliding window of 3 keys
      opt.window = window;
      const auto r = gradcheck([&](const std::vector<Tensor>& x) { return scaled_dot_product_attention(x[0], x[1], x[2], opt).out; }, in);
      INFO("window " << window << ": " << r.message);
      CHECK(r.ok);
    }
  }
}

TEST_CASE("strided q/k/v (slices of one packed QKV projection) need no copy and match contiguous") {
  Generator g(4);
  const int64_t B = 2, S = 19, H = 4, D = 16;
  const Tensor qkv = randn({B, S, 3, H, D}, DType::f64, &g);
  const Tensor q = ops::select(qkv, 2, 0), k = ops::select(qkv, 2, 1), v = ops::select(qkv, 2, 2);
  CHECK(!q.is_contiguous());
  const auto a = scaled_dot_product_attention(q, k, v, {});
  const auto b = scaled_dot_product_attention(ops::contiguous(q), ops::contiguous(k), ops::contiguous(v), {});
  testing::check_close_tensor(a.out, b.out, 1e-12, 1e-12);
}

TEST_CASE("fully masked rows give zeros, not NaN; weights are returned by the math backend only") {
  AttentionOptions opt;
  opt.key_padding_mask = ops::to_dtype(ones({1, 6}), DType::u8);  // every key ignored
  Generator g(8);
  const Tensor q = randn({1, 3, 2, 4}, DType::f64, &g), k = randn({1, 6, 2, 4}, DType::f64, &g);
  for (auto backend : {AttentionBackend::math, AttentionBackend::flash}) {
    opt.backend = backend;
    const auto r = scaled_dot_product_attention(q, k, k, opt);
    CHECK(ops::amax(ops::unary(ops::UnaryOp::abs, r.out)).item<double>() == 0.0);
  }
  AttentionOptions w;
  w.backend = AttentionBackend::math;
  w.return_weights = true;
  w.causal = true;
  const auto r = scaled_dot_product_attention(q, k, k, w);
  REQUIRE(r.weights.defined());
  CHECK(r.weights.shape() == Shape{1, 2, 3, 6});
  testing::check_close(ops::sum(r.weights, {-1}), std::vector<double>(6, 1.0), 1e-12);
  // bottom-right causal: query 0 of 3 sees keys 0..3 only
  CHECK(ops::select(ops::select(ops::select(ops::select(r.weights, 0, 0), 0, 0), 0, 0), 0, 4).item<double>() == 0.0);
  CHECK(ops::select(ops::select(ops::select(ops::select(r.weights, 0, 0), 0, 0), 0, 0), 0, 3).item<double>() > 0.0);
  w.backend = AttentionBackend::reference;  // the loops return the same weights
  testing::check_close_tensor(scaled_dot_product_attention(q, k, k, w).weights, r.weights, 1e-14, 1e-14);
  w.backend = AttentionBackend::flash;
  testing::check_error([&] { scaled_dot_product_attention(q, k, k, w); }, {"return_weights", "math"});
}

TEST_CASE("math backend: P is saved for backward, freed with the graph, and guarded against in-place edits") {
  const int64_t B = 1, S = 256, H = 2, D = 16;
  Generator g(6);
  Tensor q = randn({B, S, H, D}, DType::f64, &g).set_requires_grad();
  const Tensor k = randn({B, S, H, D}, DType::f64, &g), v = randn({B, S, H, D}, DType::f64, &g);
  const double p_bytes = double(B * H * S * S) * 8, out_bytes = double(B * S * H * D + B * H * S) * 8;
  AttentionOptions opt;
  opt.backend = AttentionBackend::math;
  const int64_t base = memory::stats().bytes_live;
  {
    NoGradGuard ng;  // no graph: P dies with the call
    const auto r = scaled_dot_product_attention(q, k, v, opt);
    CHECK(double(memory::stats().bytes_live - base) <= out_bytes);
  }
  {
    const auto r = scaled_dot_product_attention(q, k, v, opt);  // the graph holds P
    CHECK(!r.weights.defined());
    CHECK(double(memory::stats().bytes_live - base) >= p_bytes);
    backward(sum(r.out));
    CHECK(double(memory::stats().bytes_live - base) < p_bytes);  // released by backward
  }
  opt.return_weights = true;
  const auto r = scaled_dot_product_attention(q, k, v, opt);
  ops::mul_(r.weights, 2.0);  // the caller edits the tensor backward would read
  testing::check_error([&] { backward(sum(r.out)); }, {"modified in place"});
}

TEST_CASE("argument errors name the shapes") {
  const Tensor q = zeros({1, 4, 3, 8}), k = zeros({1, 4, 2, 8});
  testing::check_error([&] { scaled_dot_product_attention(q, k, k); }, {"3 query heads", "2 key/value heads"});
  testing::check_error([&] { scaled_dot_product_attention(zeros({4, 3, 8}), k, k); }, {"[B, Sq, H, D]", "f32[4, 3, 8]"});
  testing::check_error([&] { scaled_dot_product_attention(q, zeros({1, 4, 1, 8}), k); }, {"differ"});
  AttentionOptions bad;
  bad.key_padding_mask = zeros({1, 5}, DType::u8);
  testing::check_error([&] { scaled_dot_product_attention(zeros({1, 4, 2, 8}), k, k, bad); }, {"key_padding_mask", "[1, 4]"});
  AttentionOptions uncausal;
  uncausal.window = 3;
  testing::check_error([&] { scaled_dot_product_attention(zeros({1, 4, 2, 8}), k, k, uncausal); }, {"window 3", "causal"});
}

TEST_CASE("memory: flash's peak extra memory at S=8192 is O(S·D); math allocates the S×S matrix") {
  const int64_t S = 8192, H = 1, D = 64;
  Generator g(1);
  const Tensor q = randn({1, S, H, D}, DType::f32, &g), k = randn({1, S, H, D}, DType::f32, &g);
  const double matrix_bytes = double(S) * double(S) * 4;
  auto peak_extra = [&](AttentionBackend backend) {
    AttentionOptions opt;
    opt.backend = backend;
    opt.causal = true;
    memory::reset_peak();
    const int64_t base = memory::stats().bytes_live;
    { const auto r = scaled_dot_product_attention(q, k, k, opt); }
    return double(memory::stats().bytes_peak - base);
  };
  const double flash = peak_extra(AttentionBackend::flash);
  const double math = peak_extra(AttentionBackend::math);
  MESSAGE("peak extra bytes: flash " << flash << ", math " << math << ", S×S matrix " << matrix_bytes);
  CHECK(flash <= 0.05 * matrix_bytes);  // O and LSE: (S·H·D + H·S)·4 bytes = 0.8% of the matrix here
  CHECK(math >= matrix_bytes);
}
