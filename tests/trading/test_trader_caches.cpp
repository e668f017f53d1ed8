// GQATrader with every KV-cache kind: cached decoding against the full forward, ragged batches with
// learned positions, the multi-step forecast loop, and the prefix cache (hits, partial hits, LRU).
#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "nn/attention/paged_kv_cache.h"
#include "nn/attention/prefix_cache.h"
#include "tests/test_util.h"
#include "trading/models/gqa_trader.h"

using namespace attnlab;
using namespace attnlab::trading;
using testing::max_abs_diff;

namespace {

TraderConfig small(PositionEncoding pos, int64_t n_outputs = 1) {
  TraderConfig c;
  c.input_dim = 5, c.d_model = 16, c.n_heads = 4, c.n_kv_heads = 2, c.n_layers = 2, c.d_ff = 32;
  c.max_seq_len = 64, c.n_outputs = n_outputs, c.dropout = 0.0, c.positions = pos;
  c.causal = true;  // cached decoding equals the full forward only for a causal model
  return c;
}

}  // namespace

TEST_CASE("every cache kind: prefill + steps == full forward (exact kinds to rounding, quantized bounded)") {
  NoGradGuard ng;
  for (PositionEncoding pos : {PositionEncoding::learned, PositionEncoding::rope}) {
    manual_seed(3);
    GQATrader m(small(pos));
    m.eval();
    Generator g(4);
    const int64_t T = 40;
    const Tensor x = randn({2, T, 5}, DType::f32, &g);
    for (const std::string& kind : nn::cache_kinds()) {
      INFO(to_string(pos) << " " << kind);
      nn::CacheSpec spec;
      spec.kind = kind;
      spec.max_len = T;
      auto cache = m.make_cache(spec, 2);
      double worst = 0, ref_scale = 0;
      m.forward(narrow(x, 1, 0, 30), cache.get());
      for (int64_t t = 30; t < T; ++t) {
        const Tensor step = m.forward(narrow(x, 1, t, 1), cache.get()).pred;
        const Tensor full = m.forward(narrow(x, 1, 0, t + 1)).pred;
        worst = std::max(worst, max_abs_diff(step, full));
        ref_scale = std::max(ref_scale, ops::amax(ops::unary(ops::UnaryOp::abs, full)).item<double>());
      }
      CHECK(cache->position(0) == T);
      const bool quantized = kind.starts_with("int") || kind.starts_with("fp8");
      const bool half = kind == "bf16" || kind == "f16";
      // selective kinds hold max_len = T positions here: nothing is evicted, so they are exact too
      const double tol = quantized ? (kind.starts_with("int4") ? 0.1 : 0.03) * ref_scale : half ? 1e-2 : 1e-5;
      CHECK(worst <= tol);
    }
  }
}

TEST_CASE("a ragged paged batch with learned positions: each row at its own offset") {
  NoGradGuard ng;
  manual_seed(5);
  GQATrader m(small(PositionEncoding::learned));
  m.eval();
  Generator g(6);
  const Tensor a = randn({1, 9, 5}, DType::f32, &g), b = randn({1, 4, 5}, DType::f32, &g);
  auto pool = std::make_shared<nn::PagedKVPool>(2, 16, 2, 4, 4);
  const auto sa = pool->add_sequence(), sb = pool->add_sequence();
  nn::PagedKVCache ca(pool, {sa}), cb(pool, {sb}), both(pool, {sa, sb});
  m.forward(narrow(a, 1, 0, 8), &ca);
  m.forward(narrow(b, 1, 0, 3), &cb);
  const Tensor step = m.forward(cat({narrow(a, 1, 8, 1), narrow(b, 1, 3, 1)}, 0), &both).pred;
  CHECK(max_abs_diff(narrow(step, 0, 0, 1), m.forward(a).pred) < 1e-5);
  CHECK(max_abs_diff(narrow(step, 0, 1, 1), m.forward(b).pred) < 1e-5);
  testing::check_error([&] { both.position(0); }, {"ragged"});
}

TEST_CASE("generate: each prediction fed back, cached == recomputed") {
  NoGradGuard ng;
  for (PositionEncoding pos : {PositionEncoding::learned, PositionEncoding::rope}) {
    manual_seed(7);
    GQATrader m(small(pos, /*n_outputs=*/5));  // predicts the next feature vector
    m.eval();
    Generator g(8);
    const Tensor ctx = randn({2, 6, 5}, DType::f32, &g);
    auto cache = m.make_cache(2, 16);
    const Tensor got = m.generate(ctx, 5, *cache);
    CHECK(got.shape() == Shape{2, 5, 5});
    Tensor seq = ctx;  // the same loop by full recompute
    for (int64_t s = 0; s < 5; ++s) {
      const Tensor pred = m.forward(seq).pred;
      CHECK(max_abs_diff(pred, select(got, 1, s)) < 1e-5);
      seq = cat({seq, unsqueeze(pred, 1)}, 1);
    }
  }
  manual_seed(7);
  GQATrader one(small(PositionEncoding::rope));
  auto cache = one.make_cache(1, 8);
  testing::check_error([&] { one.generate(zeros({1, 2, 5}), 2, *cache); }, {"n_outputs == input_dim"});
}

TEST_CASE("prefix cache: hits reuse blocks, outputs equal the uncached forward, LRU under a budget") {
  NoGradGuard ng;
  manual_seed(9);
  GQATrader m(small(PositionEncoding::rope));
  m.eval();
  Generator g(10);
  auto pool = std::make_shared<nn::PagedKVPool>(2, 64, 2, 4, /*block_size=*/4);
  nn::PrefixCache pc(pool, /*byte_budget=*/6 * pool->bytes_per_block());
  const Tensor x = randn({1, 18, 5}, DType::f32, &g);  // 4 full blocks + 2 positions
  const Tensor want = m.forward(x).pred;

  CHECK(max_abs_diff(m.forward_with_prefix(x, pc).pred, want) < 1e-5);  // cold: 4 misses, 4 blocks cached
  CHECK(pc.hit_blocks() == 0);
  CHECK(pc.miss_blocks() == 4);
  CHECK(pc.entries() == 4);
  CHECK(max_abs_diff(m.forward_with_prefix(x, pc).pred, want) < 1e-5);  // warm: all 4 reused
  CHECK(pc.hit_blocks() == 4);

  // Same first 9 rows, different rest: 2 blocks hit, the third misses.
  Tensor y = clone(x);
  copy_(narrow(y, 1, 9, 9), randn({1, 9, 5}, DType::f32, &g));
  CHECK(max_abs_diff(m.forward_with_prefix(y, pc).pred, m.forward(y).pred) < 1e-5);
  CHECK(pc.hit_blocks() == 6);
  CHECK(pc.miss_blocks() == 6);
  // y added 2 new full blocks: 6 entries, exactly the budget.
  CHECK(pc.entries() == 6);
  CHECK(pc.evictions() == 0);

  // A third, unrelated input (3 full blocks) overflows the budget by 3: the least recently used entries
  // go — x's last two blocks, then y's last block (chains lose their tails, never their heads) — and
  // everything still computes correctly.
  const Tensor z = randn({1, 12, 5}, DType::f32, &g);
  CHECK(max_abs_diff(m.forward_with_prefix(z, pc).pred, m.forward(z).pred) < 1e-5);
  CHECK(pc.bytes() <= pc.byte_budget());
  CHECK(pc.evictions() == 3);
  CHECK(max_abs_diff(m.forward_with_prefix(y, pc).pred, m.forward(y).pred) < 1e-5);
  CHECK(pc.hit_blocks() == 6 + 3);  // y's first three blocks survived
  // Only the cache's references remain once requests are done.
  CHECK(pool->num_blocks() - pool->num_free_blocks() == pc.entries());
}
