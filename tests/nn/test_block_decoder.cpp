// nn::BlockDecoder (one position through TransformerBlocks without tensors) against the tensor path it
// replaces: the same blocks, the same prefill, then step by step through two caches — one decoded by
// TransformerBlock::forward, one by BlockDecoder::step. Both run the same kernels, so they agree to
// float rounding (in practice bit for bit); covered: RoPE and none, MHA/GQA/MQA, a wrapped ring with a
// sliding window, bf16/f16 storage, packed int8/bf16 weights, tanh GELU. Then the refusals.
#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "nn/attention/block_decoder.h"
#include "nn/layers/linear.h"
#include "test_util.h"

using namespace attnlab;
using namespace attnlab::nn;

namespace {

struct Case {
  const char* name;
  bool rope = true;
  int64_t heads = 4, kv_heads = 2;
  DType cache_dtype = DType::f32;
  int64_t slots = 64, window = 0;  // window > 0: a ring of `slots` slots
  kernels::WeightFormat weights = kernels::WeightFormat::f32;
  bool tanh_gelu = false;
};

std::vector<std::shared_ptr<TransformerBlock>> make_blocks(const Case& c, int64_t layers = 3) {
  manual_seed(11);
  std::vector<std::shared_ptr<TransformerBlock>> blocks;
  for (int64_t l = 0; l < layers; ++l) {
    auto b = std::make_shared<TransformerBlock>(16, c.heads, c.kv_heads, 40, 0.1, c.rope, 0);
    b->ff->get<GELU>(1)->tanh_approx = c.tanh_gelu;
    pack_linear_weights(*b, c.weights);
    b->eval();
    blocks.push_back(b);
  }
  return blocks;
}

Tensor tensor_forward(const std::vector<std::shared_ptr<TransformerBlock>>& blocks, Tensor x, KVCache& cache) {
  AttentionMask causal;
  causal.causal = true;
  for (size_t l = 0; l < blocks.size(); ++l) x = blocks[l]->forward(x, causal, &cache, int64_t(l)).out;
  return x;
}

}  // namespace

TEST_CASE("BlockDecoder::step == the tensor forward through the same cache, step by step") {
  NoGradGuard ng;
  const Case cases[] = {
      {"GQA, RoPE, f32"},
      {"MHA, no RoPE", false, 4, 4},
      {"MQA, RoPE", true, 4, 1},
      {"ring: 12 slots, window 8 (wraps several times)", true, 4, 2, DType::f32, 12, 8},
      {"bf16 ring", true, 4, 2, DType::bf16, 12, 8},
      {"f16 storage", true, 4, 2, DType::f16},
      {"int8 weights", true, 4, 2, DType::f32, 64, 0, kernels::WeightFormat::int8},
      {"bf16 weights, tanh GELU", true, 2, 2, DType::f32, 64, 0, kernels::WeightFormat::bf16, true},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    const auto blocks = make_blocks(c);
    const int64_t D = 16 / c.heads, prefill = 5, steps = 30;
    ContiguousKVCache ref_cache(3, 1, c.slots, c.kv_heads, D, c.cache_dtype, c.window);
    ContiguousKVCache fused_cache(3, 1, c.slots, c.kv_heads, D, c.cache_dtype, c.window);
    std::vector<TransformerBlock*> raw;
    for (const auto& b : blocks) raw.push_back(b.get());
    BlockDecoder dec(raw, fused_cache);
    Generator g(3);
    const Tensor x = randn({1, prefill + steps, 16}, DType::f32, &g);
    // The prefill through the tensor path for both caches.
    tensor_forward(blocks, ops::narrow(x, 1, 0, prefill), ref_cache);
    tensor_forward(blocks, ops::narrow(x, 1, 0, prefill), fused_cache);
    double worst = 0, scale = 0;
    for (int64_t t = prefill; t < prefill + steps; ++t) {
      const Tensor row = ops::narrow(x, 1, t, 1);
      const Tensor want = tensor_forward(blocks, row, ref_cache);
      std::vector<float> h = row.to_vector<float>();
      dec.step(h.data());
      const std::vector<float> w = want.to_vector<float>();
      for (size_t i = 0; i < h.size(); ++i) {
        worst = std::max(worst, double(std::abs(h[i] - w[i])));
        scale = std::max(scale, double(std::abs(w[i])));
      }
    }
    CHECK(worst <= 1e-6 * scale);
    CHECK(fused_cache.position(2) == ref_cache.position(2));
    CHECK(fused_cache.length(2) == ref_cache.length(2));
  }
}

TEST_CASE("BlockDecoder refuses what it does not run") {
  NoGradGuard ng;
  const auto blocks = make_blocks(Case{"base"}, 2);
  std::vector<TransformerBlock*> raw{blocks[0].get(), blocks[1].get()};
  ContiguousKVCache batch2(2, 2, 8, 2, 4);
  testing::check_error([&] { BlockDecoder d(raw, batch2); }, {"batch-1 cache", "batch 2"});
  ContiguousKVCache f64(2, 1, 8, 2, 4, DType::f64);
  testing::check_error([&] { BlockDecoder d(raw, f64); }, {"f32, bf16 or f16"});
  ContiguousKVCache one_layer(1, 1, 8, 2, 4);
  testing::check_error([&] { BlockDecoder d(raw, one_layer); }, {"2 blocks", "1 layers"});

  ContiguousKVCache cache(2, 1, 4, 2, 4);
  BlockDecoder dec(raw, cache);
  std::vector<float> h(16, 0.5f);
  blocks[1]->train();
  testing::check_error([&] { dec.step(h.data()); }, {"block 1 is in training mode"});
  CHECK(cache.position(0) == 0);  // a refused step appends nothing
  blocks[1]->eval();
  for (int i = 0; i < 4; ++i) dec.step(h.data());
  testing::check_error([&] { dec.step(h.data()); }, {"exceeds max_len 4"});  // no ring: the cache is full
}
