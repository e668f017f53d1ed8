// The trader dataset (trading/data/trader_dataset.h): windows as views of one normalized matrix, and no
// lookahead from the future into earlier inputs, the normalizer or the targets.
#include <doctest/doctest.h>

#include <vector>

#include "tensor/creation.h"
#include "tests/test_util.h"
#include "trading/data/features.h"
#include "trading/data/synth.h"
#include "trading/data/trader_dataset.h"

using namespace attnlab;
using namespace attnlab::trading;

namespace {

// One series with a planted own-momentum signal: r[t+1] = beta * r[t] + noise.
data::SynthResult planted(size_t bars, uint64_t seed, double beta = 0.5) {
  data::SynthConfig sc;
  sc.n_symbols = 1;
  sc.n_bars = bars;
  sc.signal = data::SignalKind::OwnMomentum;
  sc.beta = beta;
  sc.seed = seed;
  return data::generate_synthetic(sc);
}

data::FeatureSet small_features(const data::OhlcvSeries& s) {
  data::FeatureConfig fc;
  fc.features = {"log_return", "volatility", "price_ma_ratio"};
  return data::compute_features(s, fc);
}

}  // namespace

TEST_CASE("windows are views of the one normalized matrix; a batch stacks them") {
  const auto syn = planted(200, 3);
  const TraderDataset ds = make_dataset(small_features(syn.series[0]), syn.series[0].close, 8, 1);
  const int64_t F = int64_t(ds.n_features()), L = 8;
  REQUIRE(ds.inputs.shape() == Shape{int64_t(ds.features.rows()), F});
  for (size_t t : {ds.split.train.front(), ds.split.val[3], ds.split.test.back()}) {
    INFO("sample " << t);
    const Tensor w = ds.window(t);
    CHECK(w.shape() == Shape{L, F});
    CHECK(w.storage() == ds.inputs.storage());  // the same buffer: no copy
    CHECK(w.offset() == ds.inputs.offset() + (int64_t(t) - L + 1) * F);
    CHECK(w.is_contiguous());
    // equal to the gathered rows (f64 reference, rounded to the model's f32)
    const std::vector<double> ref = data::gather_windows(ds.features, {t}, size_t(L));
    testing::check_close(w, from_vector(ref, {L, F}).to_vector<double>(), 0, 0);
  }
  const std::vector<size_t> idx = {ds.split.train[5], ds.split.train[0], ds.split.val[1]};
  const Tensor batch = ds.windows(idx);
  CHECK(batch.shape() == Shape{3, L, F});
  CHECK(batch.storage() != ds.inputs.storage());  // the batch is the one copy
  const Tensor gathered = from_vector(data::gather_windows(ds.features, idx, size_t(L)), {3, L, F});
  testing::check_close(batch, gathered.to_vector<double>(), 0, 0);
  testing::check_error([&] { ds.window(6); }, {"sample 6", "no window of 8"});
  testing::check_error([&] { ds.window(ds.features.rows()); }, {"no window"});
}

TEST_CASE("no lookahead in the dataset: a different future changes no earlier input, normalizer or target") {
  const auto syn = planted(400, 17);
  const data::OhlcvSeries& base = syn.series[0];
  const size_t L = 8, h = 3;
  const TraderDataset ref = make_dataset(small_features(base), base.close, L, h);
  // Rows up to the last training target (t + h for the last training sample) are what training sees.
  const size_t cut = ref.split.train.back() + h;
  data::OhlcvSeries changed = base;
  for (size_t t = cut + 1; t < changed.size(); ++t) {  // another future, still valid bars
    const double k = t % 2 ? 1.3 : 0.8;
    changed.open[t] *= k, changed.high[t] *= k, changed.low[t] *= k, changed.close[t] *= k;
    changed.volume[t] *= 2.0;
  }
  const TraderDataset alt = make_dataset(small_features(changed), changed.close, L, h);
  CHECK(alt.split.train == ref.split.train);
  CHECK(alt.normalizer.mean == ref.normalizer.mean);  // fitted on training rows only
  CHECK(alt.normalizer.stddev == ref.normalizer.stddev);
  CHECK(alt.target_std == ref.target_std);
  for (size_t t : ref.split.train) {
    CHECK(alt.targets[t] == ref.targets[t]);
    CHECK(alt.window(t).to_vector<double>() == ref.window(t).to_vector<double>());
  }
  // Every sample decided at or before the cut keeps its window (its target may see the new future).
  for (size_t t = ref.split.train.front(); t <= cut; ++t)
    CHECK(alt.window(t).to_vector<double>() == ref.window(t).to_vector<double>());
  bool later_differs = false;
  for (size_t t : ref.split.test)
    later_differs |= alt.window(t).to_vector<double>() != ref.window(t).to_vector<double>();
  CHECK(later_differs);  // the change did reach the later samples
}
