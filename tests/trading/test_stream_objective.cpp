// The stream objective (trading/train/stream_objective.h): segments tile the training samples without
// leaving the split, move between epochs and cover every target; a segment's loss is the mean of the
// per-window losses (the last n positions of one sequence forward are exactly the windowed model's
// predictions); sequence predictions equal one window per sample; training learns a planted signal and
// resumes bit for bit; configs round-trip and bad ones are refused by name.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "autograd/functions.h"
#include "tests/test_util.h"
#include "trading/data/features.h"
#include "trading/data/synth.h"
#include "trading/train/trader_checkpoint.h"
#include "trading/stream/stream_replay.h"
#include "trading/train/stream_objective.h"
#include "trading/train/evaluate.h"
#include "trading/train/trainer.h"

using namespace attnlab;
using namespace attnlab::trading;
using attnlab::testing::temp_dir;

namespace {

data::SynthResult planted(size_t bars, uint64_t seed) {
  data::SynthConfig sc;
  sc.n_symbols = 1, sc.n_bars = bars, sc.signal = data::SignalKind::OwnMomentum, sc.beta = 0.5, sc.seed = seed;
  return data::generate_synthetic(sc);
}

data::FeatureSet small_features(const data::OhlcvSeries& s) {
  data::FeatureConfig fc;
  fc.features = {"log_return", "volatility", "price_ma_ratio"};
  return data::compute_features(s, fc);
}

// 2 layers, window 4: receptive field 2 * 3 + 1 = 7 rows.
TraderConfig windowed_model(size_t features, double dropout = 0.0) {
  TraderConfig c;
  c.input_dim = int64_t(features), c.d_model = 16, c.n_heads = 4, c.n_kv_heads = 2, c.n_layers = 2, c.d_ff = 32;
  c.max_seq_len = 8, c.dropout = dropout, c.positions = PositionEncoding::rope, c.window = 4;
  c.causal = true;
  return c;
}

TrainConfig stream_train(int epochs) {
  TrainConfig tc;
  tc.lookback = 7, tc.horizon = 1, tc.epochs = epochs, tc.batch_size = 32, tc.lr = 3e-3, tc.seed = 13;
  tc.progress = false, tc.objective = "stream", tc.stream_targets = 16;
  return tc;
}

}  // namespace

TEST_CASE("stream segments: inside the split, consecutive, moving between epochs, covering every target") {
  // Two runs of consecutive samples (a gap between them, as between splits).
  std::vector<size_t> samples;
  for (size_t t = 10; t < 60; ++t) samples.push_back(t);
  for (size_t t = 70; t < 95; ++t) samples.push_back(t);
  const std::set<size_t> in(samples.begin(), samples.end());
  std::set<size_t> covered, phases;
  for (uint64_t epoch = 0; epoch < 30; ++epoch) {
    const std::vector<Segment> segs = stream_segments(samples, 8, epoch);
    CHECK(segs.size() <= max_stream_segments(samples, 8));
    CHECK(segs.size() >= max_stream_segments(samples, 8) - 2);
    std::set<size_t> seen;
    for (const Segment& s : segs) {
      CHECK(s.targets == 8);
      for (size_t j = 0; j < s.targets; ++j) {
        CHECK(in.count(s.first + j) == 1);  // never a sample outside the split, never across the gap
        CHECK(seen.insert(s.first + j).second);  // no target twice in an epoch
        covered.insert(s.first + j);
      }
    }
    phases.insert(segs.empty() ? 0 : *std::min_element(seen.begin(), seen.end()));
    CHECK(stream_segments(samples, 8, epoch).front().first == segs.front().first);  // deterministic
  }
  CHECK(covered == in);   // every target over the epochs
  CHECK(phases.size() > 3);  // the tiling moves
  CHECK(max_stream_segments(samples, 8) == 50 / 8 + 25 / 8);
  CHECK(segments_per_batch(32, 16) == 2);
  CHECK(segments_per_batch(8, 16) == 1);
}

TEST_CASE("a segment's loss == the mean window loss; sequence predictions == one window per sample") {
  NoGradGuard ng;
  const auto syn = planted(300, 3);
  const TraderDataset ds = make_dataset(small_features(syn.series[0]), syn.series[0].close, 7, 1);
  manual_seed(4);
  GQATrader m(windowed_model(ds.n_features()));
  m.eval();
  REQUIRE(sequence_predictions_exact(m, ds));
  const std::vector<Segment> batch = {{ds.split.train[20], 16}, {ds.split.train[3], 16}};
  const double seq_loss = stream_batch_loss(m, ds, batch, kCPU).item<double>();
  std::vector<size_t> idx;
  for (const Segment& s : batch)
    for (size_t j = 0; j < s.targets; ++j) idx.push_back(s.first + j);
  const Tensor per_window = m.forward(ds.windows(idx)).pred;
  const double window_loss = m.compute_loss(per_window, ds.target_tensor(idx)).item<double>();
  CHECK(seq_loss == doctest::Approx(window_loss).epsilon(1e-5));
  // Predictions over runs (chunks of 10 with overlap) == one window per sample, any order.
  std::vector<size_t> some = {ds.split.val[5], ds.split.train[0], ds.split.train[1], ds.split.test.back()};
  for (size_t t : ds.split.val) some.push_back(t);
  const std::vector<double> seq = predict_sequence(m, ds, some, /*chunk=*/10);
  const std::vector<double> win = select(m.forward(ds.windows(some)).pred, 1, 0).to_vector<double>();
  REQUIRE(seq.size() == win.size());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < seq.size(); ++i) worst = std::max(worst, std::abs(seq[i] - win[i])), scale = std::max(scale, std::abs(win[i]));
  CHECK(worst <= 1e-5 * std::max(1.0, scale));
  // A model whose receptive field exceeds the lookback is not a windowed stream of that dataset.
  TraderConfig wide = windowed_model(ds.n_features());
  wide.window = 5;  // receptive field 9 > lookback 7
  GQATrader w(wide);
  CHECK_FALSE(sequence_predictions_exact(w, ds));
  testing::check_error([&] { predict_sequence(w, ds, some); }, {"receptive", "9", "lookback (7)"});
}

TEST_CASE("stream objective: learns a planted momentum signal; resume is bit for bit") {
  const auto syn = planted(1200, 21);
  const TraderDataset ds = make_dataset(small_features(syn.series[0]), syn.series[0].close, 7, 1);
  const TraderConfig mc = windowed_model(ds.n_features(), /*dropout=*/0.1);
  TrainConfig tc = stream_train(6);
  tc.patience = 0;
  manual_seed(tc.seed);
  GQATrader a(mc);
  const TrainResult ra = train_trader(a, ds, tc);
  REQUIRE(ra.history.size() == 6);
  // A forecast of 0 scores a val loss of about 1 (targets are scaled to unit variance); beta = 0.5
  // makes a quarter of the variance predictable.
  MESSAGE("stream objective: val loss " << ra.history.front().val_loss << " -> " << ra.best_val_loss);
  CHECK(ra.best_val_loss < 0.93);
  const EvalResult ev = evaluate(a, ds, ds.split.test);
  CHECK(ev.mse < ev.zero_mse);

  // Interrupted after epoch 2 and resumed: the same run.
  const auto root = temp_dir("stream_objective_resume");
  TrainConfig full = stream_train(4), first = full;
  full.out_dir = (root / "full").string();
  first.out_dir = (root / "split").string(), first.stop_after_epoch = 2;
  manual_seed(tc.seed);
  GQATrader b(mc);
  const TrainResult rb = train_trader(b, ds, full);
  manual_seed(tc.seed);
  GQATrader c(mc);
  CHECK(train_trader(c, ds, first).interrupted);
  manual_seed(999);
  GQATrader c2(mc);
  TrainConfig rest = stream_train(4);
  rest.out_dir = first.out_dir, rest.resume_from = first.out_dir;
  const TrainResult rc = train_trader(c2, ds, rest);
  REQUIRE(rc.history.size() == rb.history.size());
  for (size_t i = 0; i < rb.history.size(); ++i) {
    CHECK(rc.history[i].train_loss == rb.history[i].train_loss);
    CHECK(rc.history[i].val_loss == rb.history[i].val_loss);
  }
  testing::check_identical(c2.state_dict(), b.state_dict());
}

TEST_CASE("stream objective: config round trip and refusals by name") {
  const TrainConfig tc = stream_train(2);
  const TrainConfig back = TrainConfig::from_json(tc.to_json());
  CHECK(back.objective == "stream");
  CHECK(back.stream_targets == 16);
  CHECK(back.to_json() == tc.to_json());
  CHECK_FALSE(TrainConfig().to_json().contains("objective"));  // window-objective files are unchanged
  TrainConfig bad = tc;
  bad.objective = "streaming";
  testing::check_error([&] { bad.validate(); }, {"unknown objective 'streaming'"});
  bad = tc, bad.stream_targets = 0;
  testing::check_error([&] { bad.validate(); }, {"stream_targets must be > 0"});
  testing::check_error([&] { TrainConfig::from_json({{"objective", 3}}); }, {"objective"});

  const auto syn = planted(300, 3);
  const TraderDataset ds = make_dataset(small_features(syn.series[0]), syn.series[0].close, 7, 1);
  TraderConfig full = windowed_model(ds.n_features());
  full.window = 0;
  GQATrader no_window(full);
  testing::check_error([&] { train_trader(no_window, ds, tc); }, {"stream objective", "window"});
  GQATrader m(windowed_model(ds.n_features()));
  const TraderDataset short_lookback = make_dataset(small_features(syn.series[0]), syn.series[0].close, 6, 1);
  TrainConfig six = tc;
  six.lookback = 6;
  testing::check_error([&] { train_trader(m, short_lookback, six); }, {"receptive field", "= 7"});
  TrainConfig huge = tc;
  huge.stream_targets = 100000;
  testing::check_error([&] { train_trader(m, ds, huge); }, {"no run of 100000"});
}

TEST_CASE("stream-trained checkpoints of 1, 2 and 6 layers: the cached streams equal the full-sequence forward") {
  // End to end: train (a few steps), save, load, stream the series bar by bar (features, normalizer, the
  // checkpoint's window) and compare every test-split tick with one forward_sequence over the dataset.
  const auto syn = planted(400, 8);
  const data::OhlcvSeries& series = syn.series[0];
  const auto root = temp_dir("stream_trained");
  for (int64_t layers : {1, 2, 6}) {
    TraderConfig mc = windowed_model(3);
    mc.n_layers = layers;
    TrainConfig tc = stream_train(1);
    tc.lookback = size_t(mc.receptive_field()), tc.max_steps = 3;
    mc.max_seq_len = mc.receptive_field();  // as the CLI sets it: at least the lookback
    tc.out_dir = (root / std::to_string(layers)).string();
    const TraderDataset ds = make_dataset(small_features(series), series.close, tc.lookback, 1);
    manual_seed(tc.seed);
    GQATrader m(mc);
    const TrainResult r = train_trader(m, ds, tc);
    const TraderCheckpoint ck = read_trader_checkpoint(r.checkpoint);
    REQUIRE(full_sequence_semantics(ck));
    std::shared_ptr<GQATrader> loaded = load_trader(ck);
    std::vector<double> want = full_sequence_outputs(*loaded, ds, ds.split.test);
    for (double& v : want) v *= ck.target_std;
    for (const std::string kind : {"contiguous", "paged"}) {
      INFO(layers << " layers, " << kind);
      StreamOptions opt;
      opt.mode = StreamMode::cached, opt.cache = kind;
      SymbolStream stream(loaded, ck, opt);
      const StreamReplay got = replay(stream, series, ds.split.test);
      const StreamDeviation d = deviation(got.prediction, want);
      CHECK(d.relative <= 1e-5);
      CHECK(d.sign_agreement == 1.0);
      CHECK((got.reanchors == 0) == (kind == "contiguous"));
    }
  }
}
