// GroupedQueryAttention and the seed's transformer block: PyTorch golden, MHA equivalence, cached
// decoding against full recompute, validation errors.
#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "nn/attention/gqa.h"
#include "nn/serialization.h"
#include "test_util.h"

using namespace attnlab;
using namespace attnlab::nn;

using testing::max_abs_diff;

TEST_CASE("the seed's GQATransformerBlock (PyTorch golden): output and input gradient") {
  const auto golden = load_tensors(std::string(ATTNLAB_TEST_DATA_DIR) + "/attention/gqa_block.safetensors");
  TransformerBlock block(8, 4, 2, 16, /*dropout=*/0.0);
  block.to(DType::f64);
  NamedTensorList sd;
  for (const auto& [name, t] : golden.tensors)
    if (name.rfind("block.", 0) == 0) sd.push_back({name.substr(6), t});
  block.load_state_dict(sd);  // the seed's names: attention.q_proj.weight, ff.0.bias, norm1.weight, ...
  for (auto backend : {AttentionBackend::math, AttentionBackend::flash}) {
    block.attention->backend = backend;
    Tensor x = ops::clone(golden.get("x")).set_requires_grad();
    AttentionMask mask;
    mask.causal = true;
    const Tensor y = block.forward(x, mask).out;
    CHECK(max_abs_diff(y, golden.get("y")) < 1e-12);
    backward(sum(y * golden.get("w")));
    CHECK(max_abs_diff(x.grad(), golden.get("dx")) < 1e-12);
  }
}

TEST_CASE("GQA with n_kv_heads == n_heads equals a plain multi-head attention written out") {
  manual_seed(3);
  GroupedQueryAttention attn(12, 3, 3, 0.0);
  attn.to(DType::f64);
  Generator g(4);
  const Tensor x = randn({2, 6, 12}, DType::f64, &g);
  // MHA by the textbook: [B, H, T, D] scores, softmax, weighted values.
  auto heads = [](const Tensor& t) { return transpose(reshape(t, {2, 6, 3, 4}), 1, 2); };
  const Tensor q = heads((*attn.q_proj)(x)), k = heads((*attn.k_proj)(x)), v = heads((*attn.v_proj)(x));
  const Tensor p = softmax(matmul(q, transpose(k, -1, -2)) * (1.0 / 2.0), -1);
  const Tensor ref = (*attn.out_proj)(reshape(transpose(matmul(p, v), 1, 2), {2, 6, 12}));
  for (auto backend : {AttentionBackend::math, AttentionBackend::flash}) {
    attn.backend = backend;
    CHECK(max_abs_diff(attn.forward(x).out, ref) < 1e-13);
  }
  const auto w = attn.forward(x, {}, nullptr, 0, /*return_weights=*/true).weights;
  CHECK(max_abs_diff(w, p) < 1e-14);
}

TEST_CASE("MHA/GQA/MQA parameter shapes, and validation errors") {
  GroupedQueryAttention mqa(16, 4, 1, 0.0);
  CHECK(mqa.k_proj->weight.shape() == Shape{4, 16});  // one KV head of dim 4
  CHECK(mqa.q_proj->weight.shape() == Shape{16, 16});
  CHECK(GroupedQueryAttention(16, 4, 2).num_parameters() == 16 * 16 * 2 + 2 * 8 * 16);
  testing::check_error([] { GroupedQueryAttention(10, 4, 2); }, {"d_model 10", "n_heads 4"});
  testing::check_error([] { GroupedQueryAttention(16, 4, 3); }, {"n_heads 4", "n_kv_heads 3"});
  testing::check_error([&] { mqa.forward(zeros({2, 3, 8})); }, {"[B, T, 16]", "f32[2, 3, 8]"});
}

TEST_CASE("cached decoding equals full recompute (learned-free and RoPE, GQA, two layers)") {
  NoGradGuard ng;  // caches are for inference
  for (bool rope : {false, true}) {
    manual_seed(7);
    TransformerBlock b0(16, 4, 2, 32, 0.0, rope), b1(16, 4, 2, 32, 0.0, rope);
    b0.to(DType::f64);
    b1.to(DType::f64);
    b0.eval();
    b1.eval();
    Generator g(8);
    const int64_t T = 9;
    const Tensor x = randn({2, T, 16}, DType::f64, &g);
    AttentionMask causal;
    causal.causal = true;
    const Tensor full = b1.forward(b0.forward(x, causal).out, causal).out;
    // prefill 4 positions, then one at a time
    ContiguousKVCache cache(2, 2, 32, 2, 4, DType::f64);
    std::vector<Tensor> outs;
    auto step = [&](int64_t start, int64_t len) {
      const Tensor xs = ops::narrow(x, 1, start, len);
      outs.push_back(b1.forward(b0.forward(xs, causal, &cache, 0).out, causal, &cache, 1).out);
    };
    step(0, 4);
    for (int64_t t = 4; t < T; ++t) step(t, 1);
    CHECK(cache.length(0) == T);
    CHECK(cache.bytes_used() == 2 * 2 * 2 * T * 2 * 4 * 8);  // layers · (K,V) · B · T · Hkv · D · 8 bytes
    INFO("rope=" << rope);
    CHECK(max_abs_diff(ops::cat(outs, 1), full) < 1e-12);
  }
}
