// TraderDecoder (one bar through a GQATrader without tensors) against GQATrader::forward through the
// same cache state, for every head (regression, direction, allocation's tanh), both position encodings,
// f32 and bf16 rings; and a multi-layer stream whose fused ticks equal the tensor ticks. To float
// rounding, not bit for bit: the tensor path sends the one-output head ([1, C] x [C, 1]) to BLAS's sgemv,
// the decoder to our gemv, and the two sum in different orders.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/functions.h"
#include "tests/test_util.h"
#include "trading/data/synth.h"
#include "trading/models/trader_decoder.h"
#include "trading/stream/symbol_stream.h"

using namespace attnlab;
using namespace attnlab::trading;

namespace {

TraderConfig config(OutputType out, PositionEncoding pos) {
  TraderConfig c;
  c.input_dim = 5, c.d_model = 16, c.n_heads = 4, c.n_kv_heads = 2, c.n_layers = 2, c.d_ff = 24;
  c.max_seq_len = 40, c.dropout = 0.0, c.output_type = out, c.positions = pos, c.causal = true;
  c.n_outputs = out == OutputType::allocation ? 3 : 1;
  return c;
}

}  // namespace

TEST_CASE("TraderDecoder::step == GQATrader::forward of one position through the same cache") {
  NoGradGuard ng;
  for (OutputType out : {OutputType::regression, OutputType::direction, OutputType::allocation})
    for (PositionEncoding pos : {PositionEncoding::rope, PositionEncoding::learned})
      for (DType dt : {DType::f32, DType::bf16}) {
        INFO(std::string(to_string(out)) << ", " << std::string(to_string(pos)) << ", cache " << std::string(dtype_name(dt)));
        manual_seed(5);
        GQATrader m(config(out, pos));
        m.eval();
        // RoPE: a ring of 16 slots attending 10 (it wraps); learned positions: a plain cache of 40.
        const bool rope = pos == PositionEncoding::rope;
        nn::ContiguousKVCache ref(2, 1, rope ? 16 : 40, 2, 4, dt, rope ? 10 : 0);
        nn::ContiguousKVCache fused(2, 1, rope ? 16 : 40, 2, 4, dt, rope ? 10 : 0);
        REQUIRE(TraderDecoder::supports(m, fused));
        TraderDecoder dec(m, fused);
        Generator g(8);
        const int64_t prefill = 6, steps = 30;
        const Tensor x = randn({1, prefill + steps, 5}, DType::f32, &g);
        m.forward(ops::narrow(x, 1, 0, prefill), &ref);
        m.forward(ops::narrow(x, 1, 0, prefill), &fused);
        for (int64_t t = prefill; t < prefill + steps; ++t) {
          const Tensor row = ops::narrow(x, 1, t, 1);
          const std::vector<float> want = m.forward(row, &ref).pred.to_vector<float>();
          const std::vector<float> got = dec.step(row.to_vector<float>().data());
          REQUIRE(got.size() == want.size());
          for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-5).scale(1e-5));
        }
      }
}

TEST_CASE("TraderDecoder: which caches it takes, and the learned positions' end") {
  NoGradGuard ng;
  manual_seed(5);
  GQATrader m(config(OutputType::regression, PositionEncoding::learned));
  m.eval();
  nn::CacheSpec paged;
  paged.kind = "paged", paged.max_len = 16;
  CHECK_FALSE(TraderDecoder::supports(m, *m.make_cache(paged, 1)));
  CHECK_FALSE(TraderDecoder::supports(m, *m.make_cache(2, 16)));  // batch 2
  auto cache = m.make_cache(1, 64);  // more slots than the 40 learned positions
  REQUIRE(TraderDecoder::supports(m, *cache));
  TraderDecoder dec(m, *cache);
  const std::vector<float> x(5, 0.1f);
  for (int i = 0; i < 40; ++i) dec.step(x.data());
  testing::check_error([&] { dec.step(x.data()); }, {"position 40 exceeds max_seq_len 40"});
}

TEST_CASE("a 2-layer cached stream: fused ticks == tensor ticks (the ring past the window included)") {
  data::SynthConfig sc;
  sc.n_symbols = 1, sc.n_bars = 120, sc.seed = 4, sc.signal = data::SignalKind::OwnMomentum;
  const data::OhlcvSeries s = data::generate_synthetic(sc).series[0];
  TraderCheckpoint ck;
  ck.features = {"log_return", "volatility", "rsi"};
  ck.train.lookback = 10, ck.train.horizon = 1, ck.model.causal = true;
  ck.model = config(OutputType::regression, PositionEncoding::rope);
  ck.model.input_dim = 3;
  ck.target_std = 0.01;
  data::FeatureSet fs = data::compute_features(s, ck.feature_config());
  ck.normalizer.fit(fs, fs.first_valid, fs.rows());
  manual_seed(2);
  auto m = std::make_shared<GQATrader>(ck.model);
  m->eval();
  StreamOptions fused, plain;
  fused.mode = plain.mode = StreamMode::cached;
  plain.fused = false;
  SymbolStream a(m, ck, fused), b(m, ck, plain);
  int compared = 0;
  for (size_t t = 0; t < s.size(); ++t) {
    const TickResult ra = a.process_tick(s.bar(t)), rb = b.process_tick(s.bar(t));
    REQUIRE(ra.ready == rb.ready);
    if (!ra.ready) continue;
    CHECK(ra.prediction == doctest::Approx(rb.prediction).epsilon(1e-5).scale(1e-7));
    CHECK(ra.context == rb.context);
    ++compared;
  }
  CHECK(compared > 60);  // well past the 10-bar window: the ring has wrapped
}

TEST_CASE("TraderDecoder with attention sinks == GQATrader::forward through the same sink cache") {
  NoGradGuard ng;
  manual_seed(6);
  GQATrader m(config(OutputType::regression, PositionEncoding::rope));
  m.eval();
  nn::CacheSpec spec;
  spec.kind = "sinks", spec.max_len = 10, spec.sinks = 3, spec.max_append = 6;
  auto ref = m.make_cache(spec, 1), fused = m.make_cache(spec, 1);
  REQUIRE(TraderDecoder::supports(m, *fused));
  TraderDecoder dec(m, static_cast<nn::ContiguousKVCache&>(*fused));
  Generator g(9);
  const int64_t prefill = 6, steps = 30;
  const Tensor x = randn({1, prefill + steps, 5}, DType::f32, &g);
  m.forward(ops::narrow(x, 1, 0, prefill), ref.get());
  m.forward(ops::narrow(x, 1, 0, prefill), fused.get());
  for (int64_t t = prefill; t < prefill + steps; ++t) {
    const Tensor row = ops::narrow(x, 1, t, 1);
    const float want = m.forward(row, ref.get()).pred.item<float>();
    CHECK(dec.step(row.to_vector<float>().data())[0] == doctest::Approx(want).epsilon(1e-5).scale(1e-5));
  }
  CHECK(fused->length(0) == 3 + 12);  // 3 sinks + a ring of 12 slots (a window of 7 and room for appends of 6)
}
