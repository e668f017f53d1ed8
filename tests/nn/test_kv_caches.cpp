// KV caches through real attention layers: every cache decodes step by step to the full recompute
// (to rounding for contiguous, ring, paged and selective-without-eviction; within a measured bound for
// the quantized ones), plus the paged pool's bookkeeping (random tables, ragged batches, exhaustion,
// reuse, fork + copy-on-write) and the selective cache's eviction rules.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "autograd/functions.h"
#include "nn/attention/gqa.h"
#include "nn/attention/paged_kv_cache.h"
#include "nn/attention/quantized_kv_cache.h"
#include "nn/attention/selective_kv_cache.h"
#include "test_util.h"

using namespace attnlab;
using namespace attnlab::nn;
using testing::max_abs_diff;

namespace {

// Two pre-norm blocks (d_model 16, 4 heads, 2 KV heads: D = 4), eval mode.
struct Stack {
  std::vector<std::shared_ptr<TransformerBlock>> blocks;
  Stack(bool rope, DType dtype, uint64_t seed = 7, int64_t layers = 2) {
    manual_seed(seed);
    for (int64_t l = 0; l < layers; ++l) {
      auto b = std::make_shared<TransformerBlock>(16, 4, 2, 32, 0.0, rope, 0);
      b->to(dtype);
      b->eval();
      blocks.push_back(b);
    }
  }
  Tensor forward(Tensor x, const AttentionMask& mask, KVCache* cache = nullptr) {
    for (size_t l = 0; l < blocks.size(); ++l) x = blocks[l]->forward(x, mask, cache, int64_t(l)).out;
    return x;
  }
};

AttentionMask causal_mask() {
  AttentionMask m;
  m.causal = true;
  return m;
}

// Feeds x [B, T, C] through the cache in chunks of the given sizes (cycled), returns the outputs [B, T, C].
Tensor stream(Stack& s, const Tensor& x, KVCache& cache, const std::vector<int64_t>& chunks) {
  std::vector<Tensor> outs;
  size_t c = 0;
  for (int64_t t = 0; t < x.size(1);) {
    const int64_t n = std::min(chunks[c++ % chunks.size()], x.size(1) - t);
    outs.push_back(s.forward(ops::narrow(x, 1, t, n), causal_mask(), &cache));
    t += n;
  }
  return ops::cat(outs, 1);
}

double rel_error(const Tensor& a, const Tensor& ref) {
  const double num = std::sqrt(ops::sum(ops::unary(ops::UnaryOp::square, ops::sub(a, ref))).item<double>());
  return num / std::sqrt(ops::sum(ops::unary(ops::UnaryOp::square, ref)).item<double>());
}

}  // namespace

TEST_CASE("contiguous caches: f32/f64 exact, bf16/f16 storage close; errors") {
  NoGradGuard ng;
  Generator g(1);
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    INFO(dtype_name(dt));
    const DType compute = dt == DType::f64 ? DType::f64 : DType::f32;
    Stack s(true, compute);
    const Tensor x = randn({2, 11, 16}, compute, &g);
    const Tensor full = s.forward(x, causal_mask());
    ContiguousKVCache cache(2, 2, 16, 2, 4, dt);
    const Tensor got = stream(s, x, cache, {4, 1, 2});
    const double tol = dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 1e-5 : dt == DType::f16 ? 5e-3 : 3e-2;
    CHECK(max_abs_diff(got, full) < tol);
    CHECK(cache.bytes_used() == 2 * 2 * 2 * 11 * 2 * 4 * int64_t(itemsize(dt)));
    CHECK(cache.bytes_reserved() == 2 * 2 * 2 * 16 * 2 * 4 * int64_t(itemsize(dt)));
  }
  ContiguousKVCache cache(1, 1, 4, 2, 4);
  testing::check_error([&] { cache.append(0, zeros({1, 5, 2, 4}), zeros({1, 5, 2, 4})); }, {"exceed max_len 4"});
  testing::check_error([&] { cache.append(1, zeros({1, 1, 2, 4}), zeros({1, 1, 2, 4})); }, {"layer 1 out of range"});
  testing::check_error([&] { cache.append(0, zeros({1, 1, 3, 4}), zeros({1, 1, 3, 4})); }, {"[1, T_new, 2, 4]"});
  cache.append(0, zeros({1, 1, 2, 4}), zeros({1, 1, 2, 4}));
  testing::check_error([&] { cache.attend(0, zeros({1, 1, 3, 4}), {}); }, {"multiple of 2"});
  // the caches and their decode kernel read host memory: tensors of another device are an Error, not
  // a device pointer read on the host (the test device cpu:1 stands in for a GPU)
  const Tensor off_host = zeros({1, 1, 2, 4}, DType::f32, testing::kTestDevice);
  testing::check_error([&] { cache.append(0, off_host, off_host); }, {"::append", "on cpu:1", "KV caches live on the CPU"});
  testing::check_error([&] { cache.attend(0, zeros({1, 1, 4, 4}, DType::f32, testing::kTestDevice), {}); },
                       {"::attend", "on cpu:1"});
  GradMode::set_enabled(true);
  Tensor q = zeros({1, 1, 4, 4}).set_requires_grad();
  testing::check_error([&] { cache.attend(0, q, {}); }, {"inference", "NoGradGuard"});
  GradMode::set_enabled(false);
}

TEST_CASE("sliding-window ring buffer == full forward with the same window mask (RoPE, 2 layers)") {
  NoGradGuard ng;
  Stack s(true, DType::f64);
  Generator g(2);
  const int64_t T = 40, W = 6;
  const Tensor x = randn({2, T, 16}, DType::f64, &g);
  // Full forward with a banded causal mask: query i sees keys i - W + 1 .. i.
  std::vector<double> allowed(size_t(T * T), 0.0);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = std::max<int64_t>(0, i - W + 1); j <= i; ++j) allowed[size_t(i * T + j)] = 1.0;
  AttentionMask band;
  band.attn_mask = ops::to_dtype(from_vector(allowed, {T, T}, DType::f64), DType::u8);
  const Tensor full = s.forward(x, band);
  for (int64_t slots : {W, W + 3}) {  // the minimal ring (one position per append) and a roomier one
    INFO("slots " << slots);
    ContiguousKVCache ring(2, 2, slots, 2, 4, DType::f64, W);
    const Tensor got = stream(s, x, ring, slots == W ? std::vector<int64_t>{1} : std::vector<int64_t>{4, 1, 3, 2});
    CHECK(max_abs_diff(got, full) < 1e-12);
    CHECK(ring.length(0) == slots);
    CHECK(ring.position(0) == T);
    // get() returns the held positions in order even after wrapping
    auto [k, v] = ring.get(0);
    CHECK(k.size(1) == slots);
  }
  ContiguousKVCache ring(2, 2, W, 2, 4, DType::f64, W);
  testing::check_error([&] { s.forward(ops::narrow(x, 1, 0, 2), causal_mask(), &ring); }, {"at most 1 per append"});
}

TEST_CASE("attention sinks, one layer: each step == a fresh forward of the sink rows then the window's (RoPE)") {
  // StreamingLLM's cache: the first k positions and a ring of the last w. With one layer a position's
  // K/V depend only on its own row, so attending the sinks placed just before the window (rotated
  // further by the cache) is exactly a fresh forward of [rows 0..k-1, rows t-w+1..t] at positions
  // 0..k+w-1: the sinks at distances w .. w+k-1 from the query, as in a training window.
  NoGradGuard ng;
  Stack s(true, DType::f64, 9, /*layers=*/1);
  Generator g(13);
  const int64_t T = 30, k = 2, w = 5;
  const Tensor x = randn({2, T, 16}, DType::f64, &g);
  ContiguousKVCache sinks(1, 2, w, 2, 4, DType::f64, w, k, 10000.0);
  for (int64_t t = 0; t < T; ++t) {
    const Tensor step = s.forward(ops::narrow(x, 1, t, 1), causal_mask(), &sinks);
    const Tensor rows = t < k + w ? ops::narrow(x, 1, 0, t + 1)
                                  : ops::cat({ops::narrow(x, 1, 0, k), ops::narrow(x, 1, t - w + 1, w)}, 1);
    const Tensor fresh = s.forward(rows, causal_mask());
    INFO("t " << t);
    CHECK(max_abs_diff(step, ops::narrow(fresh, 1, rows.size(1) - 1, 1)) < 1e-12);
  }
  CHECK(sinks.length(0) == k + w);
  CHECK(sinks.bytes_used() == 2 * 2 * (k + w) * 2 * 4 * 8);
  auto [kk, vv] = sinks.get(0);
  CHECK(kk.size(1) == k + w);
}

TEST_CASE("attention sinks, two layers: full causal until k + w positions; chunked appends == one at a time") {
  NoGradGuard ng;
  Stack s(true, DType::f64);
  Generator g(14);
  const int64_t T = 32, k = 3, w = 6;
  const Tensor x = randn({1, T, 16}, DType::f64, &g);
  ContiguousKVCache one(2, 1, w, 2, 4, DType::f64, w, k, 10000.0), chunked(2, 1, w + 3, 2, 4, DType::f64, w, k, 10000.0);
  const Tensor a = stream(s, x, one, {1}), b = stream(s, x, chunked, {4, 1, 3, 2});
  CHECK(max_abs_diff(a, b) < 1e-12);
  const Tensor full = s.forward(x, causal_mask());
  CHECK(max_abs_diff(ops::narrow(a, 1, 0, k + w), ops::narrow(full, 1, 0, k + w)) < 1e-12);
  CHECK(max_abs_diff(ops::narrow(a, 1, k + w, T - k - w), ops::narrow(full, 1, k + w, T - k - w)) > 1e-3);
  // Without RoPE (rope_base 0) the sinks keep their own positions: a different function once sliding.
  ContiguousKVCache unrotated(2, 1, w, 2, 4, DType::f64, w, k, 0.0);
  CHECK(max_abs_diff(stream(s, x, unrotated, {1}), a) > 1e-6);
  testing::check_error([&] { ContiguousKVCache(2, 1, 8, 2, 4, DType::f32, 0, 2); }, {"sinks need a sliding window"});
  AttentionMask windowed = causal_mask();
  windowed.window = 4;
  ContiguousKVCache c(2, 1, w, 2, 4, DType::f64, w, k, 10000.0);
  testing::check_error([&] { s.forward(ops::narrow(x, 1, 0, 1), windowed, &c); }, {"sinks serve causal attention"});
}

TEST_CASE("one layer: the ring equals recomputing the last window from scratch (RoPE)") {
  // With one layer a position's K/V depend only on its own input, and RoPE scores only on relative
  // positions, so a window of W keys at positions t-W+1..t gives what a fresh forward of those W rows
  // gives. (Two layers would not: docs/kv_cache.md.)
  NoGradGuard ng;
  Stack s(true, DType::f64, 9, /*layers=*/1);
  Generator g(3);
  const int64_t T = 20, W = 5;
  const Tensor x = randn({1, T, 16}, DType::f64, &g);
  ContiguousKVCache ring(1, 1, W, 2, 4, DType::f64, W);
  for (int64_t t = 0; t < T; ++t) {
    const Tensor step = s.forward(ops::narrow(x, 1, t, 1), causal_mask(), &ring);
    const int64_t start = std::max<int64_t>(0, t - W + 1);
    const Tensor fresh = s.forward(ops::narrow(x, 1, start, t - start + 1), causal_mask());
    CHECK(max_abs_diff(step, ops::narrow(fresh, 1, t - start, 1)) < 1e-12);
  }
}

TEST_CASE("paged == contiguous: scrambled block tables, ragged batch, reuse after free") {
  NoGradGuard ng;
  Stack s(true, DType::f64);
  Generator g(4);
  auto pool = std::make_shared<PagedKVPool>(2, 40, 2, 4, /*block_size=*/4, DType::f64);
  // A throwaway sequence takes and frees blocks first, so the others get a scrambled free list.
  const auto tmp = pool->add_sequence();
  PagedKVCache tmp_cache(pool, {tmp});
  s.forward(randn({1, 13, 16}, DType::f64, &g), causal_mask(), &tmp_cache);
  const int64_t used_by_tmp = pool->num_blocks() - pool->num_free_blocks();
  CHECK(used_by_tmp == 4);
  const std::vector<int64_t> lens{5, 17, 9};
  std::vector<PagedKVPool::SeqId> ids;
  std::vector<Tensor> xs;
  std::vector<std::unique_ptr<ContiguousKVCache>> refs;
  for (size_t i = 0; i < lens.size(); ++i) ids.push_back(pool->add_sequence());
  pool->free_sequence(tmp);
  CHECK(pool->num_free_blocks() == pool->num_blocks());
  // Prefill the three sequences in interleaved chunks so their blocks interleave in the pool.
  for (size_t i = 0; i < lens.size(); ++i) {
    xs.push_back(randn({1, lens[i] + 3, 16}, DType::f64, &g));
    refs.push_back(std::make_unique<ContiguousKVCache>(2, 1, 32, 2, 4, DType::f64));
  }
  for (int64_t t = 0; t < 17; t += 3)
    for (size_t i = 0; i < lens.size(); ++i) {
      if (t >= lens[i]) continue;
      const int64_t n = std::min<int64_t>(3, lens[i] - t);
      PagedKVCache one(pool, {ids[i]});
      const Tensor got = s.forward(ops::narrow(xs[i], 1, t, n), causal_mask(), &one);
      const Tensor want = s.forward(ops::narrow(xs[i], 1, t, n), causal_mask(), refs[i].get());
      CHECK(max_abs_diff(got, want) < 1e-12);
    }
  std::set<int32_t> firsts;
  for (auto id : ids) firsts.insert(pool->block_table(id)[0]);
  CHECK(firsts.size() == 3);
  // One ragged batched step: rows at positions 5, 17 and 9 decode their next position together.
  PagedKVCache batch(pool, ids);
  CHECK(batch.positions(0) == lens);
  std::vector<Tensor> next;
  for (size_t i = 0; i < lens.size(); ++i) next.push_back(ops::narrow(xs[i], 1, lens[i], 1));
  const Tensor got = s.forward(ops::cat(next, 0), causal_mask(), &batch);
  for (size_t i = 0; i < lens.size(); ++i) {
    const Tensor want = s.forward(next[i], causal_mask(), refs[i].get());
    CHECK(max_abs_diff(ops::narrow(got, 0, int64_t(i), 1), want) < 1e-12);
  }
  CHECK(batch.bytes_used() == (2 + 5 + 3) * pool->bytes_per_block());  // ceil(6/4) + ceil(18/4) + ceil(10/4)
  CHECK(pool->bytes_per_block() == 2 * 2 * 2 * 4 * 4 * 8);           // K,V x layers x Hkv x block x D x 8 B
  // Free one sequence: its blocks return and are reused, most recently freed first.
  const std::vector<int32_t> freed = pool->block_table(ids[1]);
  pool->free_sequence(ids[1]);
  const auto again = pool->add_sequence();
  pool->reserve(again, 4);
  CHECK(pool->block_table(again)[0] == freed.back());
}

TEST_CASE("paged pool: exhaustion is an error that changes nothing") {
  NoGradGuard ng;
  auto pool = std::make_shared<PagedKVPool>(1, 2, 1, 4, 4, DType::f32);
  const auto a = pool->add_sequence();
  pool->append(a, 0, ones({8, 1, 4}), ones({8, 1, 4}));
  CHECK(pool->num_free_blocks() == 0);
  testing::check_error([&] { pool->append(a, 0, ones({1, 1, 4}), ones({1, 1, 4})); },
                       {"pool exhausted", "sequence 0", "needs 1", "0 of 2 are free"});
  CHECK(pool->position(a, 0) == 8);
  const auto b = pool->add_sequence();
  PagedKVCache batch(pool, {a, b});
  testing::check_error([&] { batch.append(0, ones({2, 1, 1, 4}), ones({2, 1, 1, 4})); }, {"pool exhausted"});
  CHECK(pool->position(a, 0) == 8);
  CHECK(pool->position(b, 0) == 0);
  testing::check_error([] { PagedKVPool(1, 4, 1, 4, 6); }, {"power of two"});
  testing::check_error([&] { pool->free_sequence(99); }, {"no sequence 99"});
}

TEST_CASE("paged pool: fork shares blocks, copy-on-write keeps parent and child apart") {
  NoGradGuard ng;
  Stack s(true, DType::f64);
  Generator g(5);
  auto pool = std::make_shared<PagedKVPool>(2, 16, 2, 4, 4, DType::f64);
  const Tensor prefix = randn({1, 6, 16}, DType::f64, &g);  // one full block + a partial one
  const auto parent = pool->add_sequence();
  PagedKVCache pc(pool, {parent});
  s.forward(prefix, causal_mask(), &pc);
  const auto child = pool->fork(parent);
  CHECK(pool->block_table(child) == pool->block_table(parent));
  CHECK(pool->ref_count(pool->block_table(parent)[1]) == 2);
  CHECK(pool->num_free_blocks() == 14);  // nothing copied yet
  const Tensor xc = randn({1, 3, 16}, DType::f64, &g), xp = randn({1, 1, 16}, DType::f64, &g);
  PagedKVCache cc(pool, {child});
  const Tensor child_out = s.forward(xc, causal_mask(), &cc);  // writes into the shared partial block
  CHECK(pool->block_table(child)[0] == pool->block_table(parent)[0]);  // the full block stays shared
  CHECK(pool->block_table(child)[1] != pool->block_table(parent)[1]);  // the partial one was copied
  CHECK(pool->ref_count(pool->block_table(parent)[1]) == 1);
  const Tensor parent_out = s.forward(xp, causal_mask(), &pc);
  auto reference = [&](const Tensor& suffix) {
    ContiguousKVCache c(2, 1, 16, 2, 4, DType::f64);
    s.forward(prefix, causal_mask(), &c);
    return s.forward(suffix, causal_mask(), &c);
  };
  CHECK(max_abs_diff(child_out, reference(xc)) < 1e-12);
  CHECK(max_abs_diff(parent_out, reference(xp)) < 1e-12);
  pool->free_sequence(parent);
  CHECK(pool->ref_count(pool->block_table(child)[0]) == 1);
  pool->free_sequence(child);
  CHECK(pool->num_free_blocks() == 16);
}

TEST_CASE("quantized caches: attention output error within the stated bounds; windows exact") {
  NoGradGuard ng;
  Generator g(6);
  const int64_t B = 2, L = 100, Hkv = 2, D = 32, H = 8;
  const Tensor k = randn({B, L, Hkv, D}, DType::f32, &g), v = randn({B, L, Hkv, D}, DType::f32, &g);
  const Tensor q = randn({B, 1, H, D}, DType::f32, &g);
  ContiguousKVCache ref(1, B, L, Hkv, D);
  ref.append(0, k, v);
  const Tensor want = ref.attend(0, q, {}).out;
  // Relative L2 error of the attention output over random N(0, 1) K/V (measured with this seed: int8
  // 7.2e-3, int8-kivi 7.3e-3, fp8 3.2e-2, fp8-kivi 3.3e-2, int4 0.123, int4-kivi 0.126). The error is
  // about the values' own quantization error relative to their spread (a weighted average does not
  // shrink it), so int8's bound is the 1e-2, fp8's (3 mantissa bits) 5e-2, int4's 0.2.
  const std::map<std::string, double> bound{{"int8", 1e-2},      {"int8-kivi", 1e-2}, {"fp8", 5e-2},
                                            {"fp8-kivi", 5e-2},  {"int4", 0.2},       {"int4-kivi", 0.2}};
  for (const auto& [name, tol] : bound) {
    QuantizedKVConfig c = parse_quantized_kv(name);
    QuantizedKVCache cache(1, B, L, Hkv, D, c);
    for (int64_t t = 0; t < L; t += 25) cache.append(0, ops::narrow(k, 1, t, 25), ops::narrow(v, 1, t, 25));
    const double err = rel_error(cache.attend(0, q, {}).out, want);
    MESSAGE(name << ": relative error " << err);
    CHECK(err < tol);
    CHECK(err > 0);
    // A window that covers everything keeps it all in f32: exact.
    c.window = L;
    QuantizedKVCache exact(1, B, L, Hkv, D, c);
    exact.append(0, k, v);
    CHECK(exact.quantized_length(0) == 0);
    CHECK(max_abs_diff(exact.attend(0, q, {}).out, want) < 1e-6);
  }
  // Bytes, exactly: per position and KV head 2 * codes + 2 * 2 * groups of scales.
  QuantizedKVCache i8(1, B, L, Hkv, D, parse_quantized_kv("int8"));
  i8.append(0, k, v);
  CHECK(i8.bytes_used() == B * Hkv * L * (2 * 32 + 2 * 2));
  QuantizedKVCache i4(1, B, L, Hkv, D, parse_quantized_kv("int4"));
  i4.append(0, k, v);
  CHECK(i4.bytes_used() == B * Hkv * L * (2 * 16 + 2 * 2));
  QuantizedKVConfig kivi = parse_quantized_kv("int8-kivi");
  kivi.window = 10;
  QuantizedKVCache kv(1, B, L, Hkv, D, kivi);
  kv.append(0, k, v);
  CHECK(kv.quantized_length(0) == 64);  // whole blocks of 32 once 10 + 32 positions are waiting
  CHECK(kv.bytes_used() == B * Hkv * (64 * (2 * 32 + 2) + 2 * 32 * 2 + 36 * 2 * 32 * 4));
  testing::check_error([] { parse_quantized_kv("int3"); }, {"int3", "int8, int4 or fp8"});
}

TEST_CASE("quantized cache through attention layers: decode close to full recompute") {
  NoGradGuard ng;
  Stack s(true, DType::f32);
  Generator g(7);
  const Tensor x = randn({2, 30, 16}, DType::f32, &g);
  const Tensor full = s.forward(x, causal_mask());
  QuantizedKVCache cache(2, 2, 30, 2, 4, parse_quantized_kv("int8"));
  CHECK(rel_error(stream(s, x, cache, {10, 1}), full) < 1e-2);
}

TEST_CASE("selective cache: without eviction it is the contiguous cache") {
  NoGradGuard ng;
  Stack s(true, DType::f64);
  Generator g(8);
  const Tensor x = randn({2, 12, 16}, DType::f64, &g);
  const Tensor full = s.forward(x, causal_mask());
  SelectiveKVConfig c;
  c.max_size = 12;
  SelectiveKVCache cache(2, 2, 2, 4, c, DType::f64);
  CHECK(max_abs_diff(stream(s, x, cache, {5, 1}), full) < 1e-12);
}

TEST_CASE("selective cache: recency with sinks keeps the sinks and the newest, in order") {
  NoGradGuard ng;
  Stack s(true, DType::f64);
  Generator g(9);
  SelectiveKVConfig c;
  c.max_size = 6, c.sinks = 2, c.strategy = RetentionStrategy::recency;
  SelectiveKVCache cache(2, 1, 2, 4, c, DType::f64);
  stream(s, randn({1, 10, 16}, DType::f64, &g), cache, {1});
  CHECK(cache.held_positions(1, 0, 1) == std::vector<int64_t>{0, 1, 6, 7, 8, 9});
  CHECK(cache.length(0) == 6);
  CHECK(cache.position(0) == 10);
  CHECK(cache.bytes_used() == 2 * 6 * 2 * 2 * 4 * 8);
}

TEST_CASE("selective cache: attention / entropy / hybrid scores pooled per KV head; lowest evicted") {
  NoGradGuard ng;
  Generator g(10);
  const int64_t L = 12, Hkv = 2, H = 4, D = 4, G = H / Hkv;
  const Tensor k = randn({1, L, Hkv, D}, DType::f64, &g), v = randn({1, L, Hkv, D}, DType::f64, &g);
  const Tensor q = ops::mul(randn({1, L, H, D}, DType::f64, &g), from_vector({3.0}, {}, DType::f64));  // peaky rows
  for (auto strategy : {RetentionStrategy::attention, RetentionStrategy::entropy, RetentionStrategy::hybrid}) {
    INFO(to_string(strategy));
    SelectiveKVConfig c;
    c.max_size = 7, c.sinks = 1, c.recent = 1, c.strategy = strategy, c.max_append = L;
    SelectiveKVCache cache(1, 1, Hkv, D, c, DType::f64);
    cache.append(0, k, v);
    CacheAttentionOptions opt;
    opt.return_weights = true;
    const Tensor w = cache.attend(0, q, opt).weights;  // [1, H, L, L] over the 12 keys before eviction
    const auto p = w.to_vector<double>();
    for (int64_t kv = 0; kv < Hkv; ++kv) {
      std::vector<double> score(size_t(L), 0.0);
      for (int64_t hh = 0; hh < G; ++hh)
        for (int64_t i = 0; i < L; ++i)
          for (int64_t j = 0; j < L; ++j) {
            const double pij = p[size_t(((kv * G + hh) * L + i) * L + j)];
            if (strategy == RetentionStrategy::entropy) score[size_t(i)] -= pij > 0 ? pij * std::log(pij) / G : 0;
            else score[size_t(j)] += pij / G;
          }
      std::vector<double> imp = score;
      if (strategy == RetentionStrategy::hybrid) {
        const double mx = *std::max_element(score.begin(), score.end());
        for (int64_t j = 0; j < L; ++j) imp[size_t(j)] = 0.7 * score[size_t(j)] / mx + 0.3 * double(j) / double(L - 1);
      }
      // Expected: position 0 (sink) and 11 (recent) stay; of 1..10 the 5 best stay.
      std::vector<int64_t> mid{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
      std::stable_sort(mid.begin(), mid.end(), [&](int64_t a, int64_t b) { return imp[size_t(a)] < imp[size_t(b)]; });
      std::vector<int64_t> keep{0, 11};
      keep.insert(keep.end(), mid.begin() + 5, mid.end());
      std::sort(keep.begin(), keep.end());
      CHECK(cache.held_positions(0, 0, kv) == keep);
      const auto held_scores = cache.scores(0, 0, kv);
      for (size_t i = 0; i < keep.size(); ++i) CHECK(held_scores[i] == doctest::Approx(score[size_t(keep[i])]).epsilon(1e-12));
    }
  }
  testing::check_error([] { SelectiveKVConfig c; c.max_size = 4, c.sinks = 3, c.recent = 2; SelectiveKVCache(1, 1, 1, 4, c); },
                       {"sinks + recent <= max_size"});
  testing::check_error([] { parse_retention("random"); }, {"random", "attention, recency, entropy or hybrid"});
}
