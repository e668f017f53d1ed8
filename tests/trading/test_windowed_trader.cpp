// Sliding-window GQATraders (config.window = W, RoPE, causal): their function is the full-sequence
// forward with the window mask, and every cache decodes it. For 1, 2 and 6 layers, over a stream eight
// times longer than W: each cached tick equals that forward's prediction at the same row (f64 to 1e-12,
// f32 to float rounding) for contiguous (the model's window applied in attention), ring (W keys per
// layer) and paged caches, and the fused one-position path; quantized caches stay within their bounds.
// A forward of the last receptive_field() rows gives the same prediction (the batch paths rely on it),
// and one row fewer does not.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "autograd/functions.h"
#include "nn/attention/paged_kv_cache.h"
#include "tests/test_util.h"
#include "trading/models/gqa_trader.h"
#include "trading/models/trader_decoder.h"

using namespace attnlab;
using namespace attnlab::trading;
using testing::max_abs_diff;

namespace {

constexpr int64_t kW = 5, kT = 40, kF = 5;

TraderConfig windowed(int64_t layers) {
  TraderConfig c;
  c.input_dim = kF, c.d_model = 16, c.n_heads = 4, c.n_kv_heads = 2, c.n_layers = layers, c.d_ff = 32;
  c.max_seq_len = 8, c.dropout = 0.0, c.positions = PositionEncoding::rope, c.window = kW, c.causal = true;
  return c;
}

std::shared_ptr<GQATrader> model(int64_t layers, DType dt) {
  manual_seed(uint64_t(40 + layers));
  auto m = std::make_shared<GQATrader>(windowed(layers));
  m->to(dt);
  m->eval();
  return m;
}

// Streams x [1, T, F] through the cache: a prefill of `prefill` rows, then one row per tick. Returns the
// prediction after every tick, [T - prefill + 1] (the first is the prefill's).
std::vector<double> stream(GQATrader& m, const Tensor& x, nn::KVCache& cache, int64_t prefill) {
  std::vector<double> out{m.forward(ops::narrow(x, 1, 0, prefill), &cache).pred.item<double>()};
  for (int64_t t = prefill; t < x.size(1); ++t)
    out.push_back(m.forward(ops::narrow(x, 1, t, 1), &cache).pred.item<double>());
  return out;
}

// The largest |cached - full| over the ticks, and the largest |full| (the predictions' scale).
std::pair<double, double> deviation(const std::vector<double>& got, const std::vector<double>& full, int64_t prefill) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double want = full[size_t(prefill - 1) + i];
    worst = std::max(worst, std::abs(got[i] - want));
    scale = std::max(scale, std::abs(want));
  }
  return {worst, scale};
}

}  // namespace

TEST_CASE("windowed trader: cached ticks == the full-sequence sliding-window forward (1, 2, 6 layers)") {
  NoGradGuard ng;
  for (int64_t layers : {1, 2, 6})
    for (DType dt : {DType::f64, DType::f32}) {
      auto m = model(layers, dt);
      Generator g(static_cast<uint64_t>(layers));
      const Tensor x = randn({1, kT, kF}, dt, &g);
      const std::vector<double> full = ops::flatten(m->forward_sequence(x)).to_vector<double>();
      REQUIRE(full.size() == size_t(kT));
      const double tol = dt == DType::f64 ? 1e-12 : 2e-6;
      struct Run {
        std::string what;
        std::unique_ptr<nn::KVCache> cache;
        int64_t prefill;
      };
      std::vector<Run> runs;
      // contiguous, holding everything: the model's window is applied by position in attention; a
      // prefill of 17 rows goes through the flash kernel with the window.
      runs.push_back({"contiguous", std::make_unique<nn::ContiguousKVCache>(layers, 1, kT, 2, 4, DType::f32), 17});
      // the minimal ring: W slots per layer, one position per append from the start
      runs.push_back({"ring of W", std::make_unique<nn::ContiguousKVCache>(layers, 1, kW, 2, 4, DType::f32, kW), 1});
      // a ring with room for a prefill of 3
      runs.push_back({"ring of W + 3", std::make_unique<nn::ContiguousKVCache>(layers, 1, kW + 3, 2, 4, DType::f32, kW), 3});
      nn::CacheSpec paged;
      paged.kind = "paged", paged.max_len = kT, paged.block_size = 4;
      runs.push_back({"paged", m->make_cache(paged, 1), 6});
      for (Run& r : runs) {
        if (dt == DType::f64) {  // the same caches in f64
          if (r.what == "paged") {
            auto pool = std::make_shared<nn::PagedKVPool>(layers, kT / 4, 2, 4, 4, DType::f64);
            r.cache = std::make_unique<nn::PagedKVCache>(pool, std::vector<nn::PagedKVPool::SeqId>{pool->add_sequence()});
          } else {
            auto* c = static_cast<nn::ContiguousKVCache*>(r.cache.get());
            r.cache = std::make_unique<nn::ContiguousKVCache>(layers, 1, c->max_len(), 2, 4, DType::f64, c->window());
          }
        }
        INFO(layers << " layers, " << std::string(dtype_name(dt)) << ", " << r.what);
        const auto [worst, scale] = deviation(stream(*m, x, *r.cache, r.prefill), full, r.prefill);
        CHECK(scale > 0.05);
        CHECK(worst <= tol * std::max(1.0, scale));
        CHECK(r.cache->position(0) == kT);
      }
      // The prediction at row t depends on rows t - R + 1 .. t only: a forward of those R rows from
      // position 0 gives it (what a window of lookback >= R rows computes in the batch paths), and
      // R - 1 rows do not (a multi-layer model's receptive field is exactly R).
      const int64_t R = m->config.receptive_field();
      CHECK(R == layers * (kW - 1) + 1);
      if (R <= kT) {
        double worst = 0, short_diff = 0;
        for (int64_t t = R - 1; t < kT; ++t) {
          worst = std::max(worst, std::abs(m->forward(ops::narrow(x, 1, t - R + 1, R)).pred.item<double>() -
                                           full[size_t(t)]));
          if (R > 1)
            short_diff = std::max(short_diff, std::abs(m->forward(ops::narrow(x, 1, t - R + 2, R - 1))
                                                           .pred.item<double>() - full[size_t(t)]));
        }
        INFO(layers << " layers, " << std::string(dtype_name(dt)) << ": receptive field " << R);
        CHECK(worst <= tol);
        if (layers > 1) CHECK(short_diff > 10 * tol);
      }
    }
}

TEST_CASE("windowed trader: quantized and 16-bit caches within their bounds; the fused path to rounding") {
  NoGradGuard ng;
  for (int64_t layers : {2, 6}) {
    auto m = model(layers, DType::f32);
    Generator g(static_cast<uint64_t>(10 + layers));
    const Tensor x = randn({1, kT, kF}, DType::f32, &g);
    const std::vector<double> full = ops::flatten(m->forward_sequence(x)).to_vector<double>();
    for (const char* kind : {"int8", "int4", "fp8", "bf16", "f16"}) {
      INFO(layers << " layers, " << kind);
      nn::CacheSpec spec;
      spec.kind = kind;
      spec.max_len = kT;
      const bool ring = std::string(kind) == "bf16" || std::string(kind) == "f16";
      if (ring) spec.window = kW, spec.max_len = kW + 2;
      auto cache = m->make_cache(spec, 1);
      const auto [worst, scale] = deviation(stream(*m, x, *cache, 3), full, 3);
      // Relative to the largest prediction, the attention-output bounds docs/kv_cache.md states for one
      // layer (int8 1e-2, fp8 5e-2, int4 0.2; bf16 and f16 storage as the contiguous-cache test): the
      // errors of 2 and 6 layers compound to within them (measured 2 / 6 layers: int8 0.004 / 0.007,
      // fp8 0.023 / 0.032, int4 0.10 / 0.17).
      const std::string k = kind;
      const double bound = k == "int8" ? 1e-2 : k == "fp8" ? 5e-2 : k == "int4" ? 0.2 : k == "bf16" ? 3e-2 : 1e-2;
      MESSAGE(layers << " layers, " << kind << ": largest deviation / largest prediction " << worst / scale);
      CHECK(worst <= bound * scale);
    }
    // TraderDecoder (the stream's one-position path) over a ring of W keys per layer.
    nn::ContiguousKVCache ring(layers, 1, kW + 2, 2, 4, DType::f32, kW);
    REQUIRE(TraderDecoder::supports(*m, ring));
    TraderDecoder dec(*m, ring);
    double worst = 0;
    worst = std::abs(m->forward(ops::narrow(x, 1, 0, 3), &ring).pred.item<double>() - full[2]);
    for (int64_t t = 3; t < kT; ++t)
      worst = std::max(worst, std::abs(double(dec.step(ops::narrow(x, 1, t, 1).to_vector<float>().data())[0]) -
                                       full[size_t(t)]));
    CHECK(worst <= 1e-5);  // float rounding (BLAS's sgemv head vs our gemv), as test_trader_decoder.cpp
  }
}

TEST_CASE("windowed trader: config round trip, validation and refusals") {
  TraderConfig c = windowed(2);
  const TraderConfig back = TraderConfig::from_json(c.to_json());
  CHECK(back.window == kW);
  CHECK(back.to_json() == c.to_json());
  TraderConfig full = windowed(2);
  full.window = 0;
  CHECK_FALSE(full.to_json().contains("window"));  // full-attention models' files are unchanged
  TraderConfig bad = windowed(2);
  bad.window = -1;
  testing::check_error([&] { bad.validate(); }, {"window must be >= 0"});
  bad.window = 4, bad.positions = PositionEncoding::learned;
  testing::check_error([&] { bad.validate(); }, {"sliding window", "rope"});
  NoGradGuard ng;
  auto m = model(2, DType::f32);
  bad = windowed(2);
  bad.causal = false;
  testing::check_error([&] { bad.validate(); }, {"sliding window (5)", "causal"});
  // A ring narrower than the model's window no longer holds the keys the model attends.
  nn::ContiguousKVCache narrow_ring(2, 1, 8, 2, 4, DType::f32, kW - 1);
  testing::check_error([&] { m->forward(zeros({1, 3, kF}), &narrow_ring); }, {"wider than the ring's window"});
}
