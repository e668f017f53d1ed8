// scaled_dot_product_attention on CUDA tensors against the CPU reference backend (f32): key padding
// masks, additive biases broadcast over batch and queries, a boolean mask as a 0/-inf bias, causal
// with Sq != Sk, GQA, dropout, and the attention weights (return_weights) — values, LSE and every
// input gradient. Skipped (exit 77) without a GPU.
#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "nn/attention/sdpa.h"
#include "tensor/creation.h"
#include "tensor/ops.h"
#include "tests/test_util.h"

using namespace attnlab;
using namespace attnlab::nn;
using attnlab::testing::check_close_tensor;

namespace {
const Device kGPU{DeviceType::cuda, 0};
Tensor host(const Tensor& t) { return ops::to_device(t, kCPU); }
Tensor gpu(const Tensor& t) { return ops::to_device(t, kGPU); }

// The same attention on both devices (CPU: the reference backend), then backward of sum(out * w).
void compare(int64_t B, int64_t Sq, int64_t Sk, int64_t H, int64_t Hkv, int64_t D, const AttentionOptions& opt,
             AttentionBackend gpu_backend) {
  INFO("B=" << B << " Sq=" << Sq << " Sk=" << Sk << " H=" << H << " Hkv=" << Hkv << " D=" << D
            << " causal=" << opt.causal << " window=" << opt.window << " dropout=" << opt.dropout_p << " weights=" << opt.return_weights);
  Generator g(uint64_t(Sq * 131 + Sk));
  Tensor qc = randn({B, Sq, H, D}, DType::f32, &g), kc = randn({B, Sk, Hkv, D}, DType::f32, &g);
  Tensor vc = randn({B, Sk, Hkv, D}, DType::f32, &g);
  const Tensor w = randn({B, Sq, H, D}, DType::f32, &g);
  Tensor qg = gpu(qc), kg = gpu(kc), vg = gpu(vc);  // copies made before any of them needs a gradient
  for (Tensor* t : {&qc, &kc, &vc, &qg, &kg, &vg}) t->set_requires_grad();
  AttentionOptions oc = opt, og = opt;
  oc.backend = AttentionBackend::reference;
  og.backend = gpu_backend;
  if (opt.key_padding_mask.defined()) og.key_padding_mask = gpu(opt.key_padding_mask);
  if (opt.attn_bias.defined()) og.attn_bias = gpu(opt.attn_bias);
  const AttentionResult rc = scaled_dot_product_attention(qc, kc, vc, oc);
  const AttentionResult rg = scaled_dot_product_attention(qg, kg, vg, og);
  CHECK(rg.out.device() == kGPU);
  check_close_tensor(host(rg.out), rc.out, 1e-5, 1e-4);
  check_close_tensor(host(rg.lse), rc.lse, 1e-5, 1e-4);
  if (opt.return_weights) {
    REQUIRE(rg.weights.defined());
    CHECK(rg.weights.device() == kGPU);
    check_close_tensor(host(rg.weights), rc.weights, 1e-6, 1e-4);
  }
  backward(sum(mul(rc.out, w)));
  backward(sum(mul(rg.out, gpu(w))));
  for (auto [a, b] : {std::pair{&qg, &qc}, std::pair{&kg, &kc}, std::pair{&vg, &vc}}) {
    CHECK(a->grad().device() == kGPU);
    check_close_tensor(host(a->grad()), b->grad(), 1e-5, 1e-3);
  }
}
}  // namespace

TEST_CASE("CUDA attention: key padding mask and broadcast bias, every backend, causal with Sq != Sk, GQA") {
  Generator g(3);
  AttentionOptions opt;
  opt.key_padding_mask = ops::compare_scalar(ops::CompareOp::gt, rand({2, 47}, DType::f32, &g), 0.7);
  opt.attn_bias = randn({1, 4, 1, 47}, DType::f32, &g);  // broadcast over batch and queries
  for (bool causal : {false, true})
    for (auto backend : {AttentionBackend::flash, AttentionBackend::math, AttentionBackend::reference}) {
      opt.causal = causal;
      compare(2, 33, 47, 4, 2, 64, opt, backend);
    }
  opt.dropout_p = 0.2, opt.dropout_seed = 7;
  compare(2, 33, 47, 4, 2, 64, opt, AttentionBackend::flash);
}

TEST_CASE("CUDA attention: a boolean [Sq, Sk] mask as a 0/-inf bias, with fully masked rows") {
  Generator g(5);
  AttentionOptions opt;
  Tensor allowed = ops::compare_scalar(ops::CompareOp::gt, rand({20, 20}, DType::f32, &g), 0.4);
  opt.attn_bias = mask_to_bias(allowed, DType::f32);
  compare(1, 20, 20, 2, 2, 32, opt, AttentionBackend::flash);
}

TEST_CASE("CUDA attention: return_weights (math and reference backends) equals the CPU's weights") {
  Generator g(9);
  AttentionOptions opt;
  opt.return_weights = true;
  opt.key_padding_mask = ops::compare_scalar(ops::CompareOp::gt, rand({2, 30}, DType::f32, &g), 0.8);
  for (bool causal : {false, true})
    for (auto backend : {AttentionBackend::math, AttentionBackend::reference}) {
      opt.causal = causal;
      compare(2, 25, 30, 2, 1, 16, opt, backend);
    }
  AttentionOptions flash;
  flash.return_weights = true;
  flash.backend = AttentionBackend::flash;
  const Tensor x = gpu(randn({1, 4, 2, 16}));
  testing::check_error([&] { scaled_dot_product_attention(x, x, x, flash); }, {"return_weights needs the math"});
}

TEST_CASE("CUDA attention: a causal sliding window (a banded bias on the GPU), alone and with a bias") {
  AttentionOptions opt;
  opt.causal = true;
  for (int64_t window : {1, 7, 40}) {
    opt.window = window;
    compare(2, 33, 47, 4, 2, 64, opt, AttentionBackend::flash);  // Sq != Sk: bottom-right
    compare(1, 64, 64, 4, 1, 32, opt, AttentionBackend::math);
  }
  Generator g(9);
  opt.window = 5;
  opt.attn_bias = randn({1, 4, 1, 47}, DType::f32, &g);
  compare(2, 33, 47, 4, 2, 64, opt, AttentionBackend::flash);
}
