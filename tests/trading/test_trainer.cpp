// The trainer's run control: exact resume from a training-state checkpoint, uptraining after MHA -> GQA
// conversion, and the checkpoint helpers behind `attnlab predict` (causal setting stored and honoured,
// attention analysis). Tiny models on the math backend, so each case takes well under a second.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "nn/serialization.h"
#include "tensor/creation.h"
#include "tests/test_util.h"
#include "trading/data/features.h"
#include "trading/data/synth.h"
#include "trading/models/gqa_trader.h"
#include "trading/train/trader_checkpoint.h"
#include "trading/train/evaluate.h"
#include "trading/train/trainer.h"

using namespace attnlab;
using namespace attnlab::trading;
using attnlab::testing::temp_dir;

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

TraderConfig tiny_model(size_t features, int64_t n_kv_heads = 2, double dropout = 0.0) {
  TraderConfig c;
  c.input_dim = int64_t(features);
  c.d_model = 16;
  c.n_heads = 4;
  c.n_kv_heads = n_kv_heads;
  c.n_layers = 2;
  c.d_ff = 32;
  c.max_seq_len = 8;
  c.dropout = dropout;
  c.backend = nn::AttentionBackend::math;
  return c;
}

TrainConfig tiny_train(int epochs) {
  TrainConfig tc;
  tc.lookback = 8;
  tc.horizon = 1;
  tc.epochs = epochs;
  tc.batch_size = 32;
  tc.lr = 2e-3;
  tc.seed = 11;
  tc.progress = false;
  return tc;
}

// Bitwise equality of two modules' state dicts, and of every tensor of two safetensors files.
void check_same_weights(const nn::Module& a, const nn::Module& b) {
  testing::check_identical(a.state_dict(), b.state_dict());
}
void check_same_tensors(const std::string& a, const std::string& b) {
  testing::check_identical(nn::load_tensors(a).tensors, nn::load_tensors(b).tensors);
}

}  // namespace

TEST_CASE("resume: k epochs, stop, resume for the rest == the uninterrupted run, bit for bit") {
  const auto syn = planted(500, 5);
  const TraderDataset ds = make_dataset(small_features(syn.series[0]), syn.series[0].close, 8, 1);
  const TraderConfig mc = tiny_model(ds.n_features(), 2, /*dropout=*/0.1);  // dropout: the RNG states matter
  TrainConfig tc = tiny_train(4);
  tc.patience = 2;
  const auto root = temp_dir("resume");
  const std::string dir_a = (root / "a").string(), dir_b = (root / "b").string(), dir_c = (root / "c").string();

  // A: four epochs straight.
  manual_seed(tc.seed);
  GQATrader a(mc);
  TrainConfig ta = tc;
  ta.out_dir = dir_a;
  const TrainResult ra = train_trader(a, ds, ta);
  REQUIRE(ra.history.size() >= 3);

  // B: the same run interrupted after epoch 2 ...
  manual_seed(tc.seed);
  GQATrader b(mc);
  TrainConfig tb = tc;
  tb.out_dir = dir_b;
  tb.stop_after_epoch = 2;
  const TrainResult rb = train_trader(b, ds, tb);
  CHECK(rb.interrupted);
  REQUIRE(rb.history.size() == 2);
  CHECK(std::filesystem::exists(std::filesystem::path(dir_b) / kTrainStateFile));
  const nlohmann::json info = read_train_state_info(dir_b);
  CHECK(info.at("epoch") == 2);
  CHECK(info.at("finished") == false);
  CHECK(info.at("train") == tc.to_json());

  // ... and continued by a fresh process: a model built from another seed, its weights from the state.
  manual_seed(12345);
  GQATrader b2(mc);
  TrainConfig tb2 = tc;
  tb2.out_dir = dir_b;
  tb2.resume_from = dir_b;
  const TrainResult rb2 = train_trader(b2, ds, tb2);
  CHECK_FALSE(rb2.interrupted);
  CHECK(rb2.start_epoch == 3);

  REQUIRE(rb2.history.size() == ra.history.size());
  for (size_t i = 0; i < ra.history.size(); ++i) {
    INFO("epoch " << i + 1);
    CHECK(rb2.history[i].epoch == ra.history[i].epoch);
    CHECK(rb2.history[i].train_loss == ra.history[i].train_loss);
    CHECK(rb2.history[i].val_loss == ra.history[i].val_loss);
    CHECK(rb2.history[i].lr == ra.history[i].lr);
  }
  CHECK(rb2.steps == ra.steps);
  CHECK(rb2.best_epoch == ra.best_epoch);
  CHECK(rb2.best_val_loss == ra.best_val_loss);
  CHECK(rb2.early_stopped == ra.early_stopped);
  check_same_weights(b2, a);  // the best weights
  // The last epoch's complete state (weights, AdamW moments) is identical too.
  check_same_tensors(dir_a + "/" + kTrainStateFile, dir_b + "/" + kTrainStateFile);
  check_same_tensors(dir_a + "/" + kModelFile, dir_b + "/" + kModelFile);

  {  // resuming a finished run changes nothing; resuming into another directory copies the best model
    manual_seed(1);
    GQATrader c(mc);
    TrainConfig tcc = tc;
    tcc.out_dir = dir_c;
    tcc.resume_from = dir_a + "/" + kTrainStateFile;
    const TrainResult rc = train_trader(c, ds, tcc);
    CHECK(rc.history.size() == ra.history.size());
    CHECK(rc.steps == ra.steps);
    check_same_weights(c, a);
    check_same_tensors(dir_a + "/" + kModelFile, dir_c + "/" + kModelFile);
  }
  {  // a changed setting, other data or a missing state is a clear error
    manual_seed(1);
    GQATrader c(mc);
    TrainConfig changed = tc;
    changed.lr = 1e-3;
    changed.resume_from = dir_b;
    testing::check_error([&] { train_trader(c, ds, changed); }, {"training config differs", "lr"});
    TrainConfig same = tc;
    same.resume_from = dir_b;
    const auto other = planted(500, 6);
    const TraderDataset ds2 = make_dataset(small_features(other.series[0]), other.series[0].close, 8, 1);
    testing::check_error([&] { train_trader(c, ds2, same); }, {"data differ"});
    TraderConfig wider = mc;
    wider.d_ff = 64;
    GQATrader w(wider);
    testing::check_error([&] { train_trader(w, ds, same); }, {"model config differs", "d_ff"});
    testing::check_error([&] { read_train_state_info((root / "nowhere").string()); }, {"no training state"});
    testing::check_error([&] { read_train_state_info(dir_b + "/" + kModelFile); }, {"not a GQATrader training state"});
  }
  std::filesystem::remove_all(root);
}

TEST_CASE("uptraining after MHA -> MQA conversion does not raise the validation loss") {
  const auto syn = planted(700, 9);
  const TraderDataset ds = make_dataset(small_features(syn.series[0]), syn.series[0].close, 8, 1);
  manual_seed(21);
  GQATrader mha(tiny_model(ds.n_features(), /*n_kv_heads=*/4));
  const auto root = temp_dir("uptrain");
  TrainConfig tc = tiny_train(4);
  tc.out_dir = (root / "mha").string();
  const TrainResult rm = train_trader(mha, ds, tc);

  // What `attnlab convert --kv-heads 1 --uptrain-data CSV` does: the checkpoint's data handling, then
  // the trainer with the converted weights as epoch 0.
  const TraderCheckpoint ck = read_trader_checkpoint(rm.checkpoint);
  const TraderDataset cds = checkpoint_dataset(ck, small_features(syn.series[0]), syn.series[0].close);
  CHECK(cds.normalizer.mean == ds.normalizer.mean);
  CHECK(cds.target_std == ds.target_std);
  CHECK(cds.split.val == ds.split.val);
  const std::shared_ptr<GQATrader> mqa = mha_to_gqa(mha, 1);
  const double converted = evaluate_loss(*mqa, cds, cds.split.val);
  TrainConfig up = ck.train;
  up.epochs = 3;
  up.lr = 1e-3;
  up.start_as_best = true;
  up.progress = false;
  up.out_dir = (root / "up").string();
  const TrainResult ru = train_trader(*mqa, cds, up);
  MESSAGE("val loss: MHA " << rm.best_val_loss << ", converted MQA " << converted << ", uptrained " << ru.best_val_loss
                           << " (best epoch " << ru.best_epoch << ")");
  CHECK(ru.initial_val_loss == converted);
  CHECK(ru.best_val_loss <= converted);
  CHECK(ru.best_val_loss < converted);  // on this planted signal uptraining does help
  CHECK(evaluate_loss(*mqa, cds, cds.split.val) == ru.best_val_loss);  // the model holds the best weights
  const TraderCheckpoint uck = read_trader_checkpoint(ru.checkpoint);
  CHECK(uck.model.n_kv_heads == 1);
  CHECK(uck.meta.at("metrics").at("best_epoch") == ru.best_epoch);

  {  // when no epoch beats the converted weights, they are kept
    const std::shared_ptr<GQATrader> m2 = mha_to_gqa(mha, 1);
    TrainConfig none = up;
    none.epochs = 1;
    none.lr = 5.0;  // far too large: the epoch ends worse than it started
    none.clip_norm = 1e3;
    none.out_dir.clear();
    const TrainResult r2 = train_trader(*m2, cds, none);
    REQUIRE(r2.history.size() == 1);
    CHECK(r2.history[0].val_loss > converted);
    CHECK(r2.best_epoch == 0);
    CHECK(r2.best_val_loss == converted);
    check_same_weights(*m2, *mha_to_gqa(mha, 1));
  }
  std::filesystem::remove_all(root);
}

TEST_CASE("the causal setting is stored in the checkpoint and honoured by predict_latest") {
  const auto syn = planted(300, 13);
  const data::FeatureSet raw = small_features(syn.series[0]);
  const TraderDataset ds = make_dataset(raw, syn.series[0].close, 8, 1);
  const auto root = temp_dir("causal");
  for (bool causal : {true, false}) {
    INFO("causal " << causal);
    manual_seed(4);
    TraderConfig mc = tiny_model(ds.n_features());
    mc.causal = causal;
    GQATrader m(mc);
    TrainConfig tc = tiny_train(1);
    tc.out_dir = (root / (causal ? "c" : "n")).string();
    const TrainResult r = train_trader(m, ds, tc);
    const TraderCheckpoint ck = read_trader_checkpoint(r.checkpoint);
    CHECK(ck.model.causal == causal);
    CHECK(ck.meta.at("model").at("causal") == causal);
    CHECK(ck.train.lookback == 8);
    const auto loaded = load_trader(ck);
    const LatestPrediction p = predict_latest(*loaded, ck, raw, /*attention=*/true);
    CHECK(p.row == raw.rows() - 1);
    CHECK(p.time_ms == raw.ts_ms.back());

    // the same window through the model by hand, with and without the mask
    m.eval();
    NoGradGuard ng;
    const Tensor x = unsqueeze(ds.window(raw.rows() - 1), 0);
    m.config.causal = true;
    const double with_mask = m.forward(x).pred.item<double>() * ds.target_std;
    m.config.causal = false;
    const double without = m.forward(x).pred.item<double>() * ds.target_std;
    m.config.causal = causal;
    CHECK(with_mask != without);  // two layers: the mask changes what the last position sees
    CHECK(p.output == doctest::Approx(causal ? with_mask : without).epsilon(1e-6));
    CHECK(p.log_return == p.output);
    CHECK(p.direction == (p.output > 0 ? "UP" : "DOWN"));

    // attention analysis: rows sum to 1; causal maps have nothing above the diagonal
    REQUIRE(p.attention.size() == 8);
    REQUIRE(p.attention_map.size() == 64);
    double sum = 0;
    for (double a : p.attention) sum += a;
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
    for (size_t i = 0; i < 8; ++i) CHECK(p.attention[i] == doctest::Approx(p.attention_map[7 * 8 + i]));
    double above = 0;
    for (size_t q = 0; q < 8; ++q)
      for (size_t k = q + 1; k < 8; ++k) above += p.attention_map[q * 8 + k];
    if (causal) CHECK(above == 0.0);
    else CHECK(above > 0.1);
  }
  testing::check_error([&] { read_trader_checkpoint((root / "c" / kTrainStateFile).string()); },
                       {"not a GQATrader checkpoint"});
  std::filesystem::remove_all(root);
}

TEST_CASE("checkpoints and training states that keep causal in \"train\" (older versions) still load") {
  const auto syn = planted(300, 13);
  const data::FeatureSet raw = small_features(syn.series[0]);
  const TraderDataset ds = make_dataset(raw, syn.series[0].close, 8, 1);
  const auto root = temp_dir("legacy_causal");
  TraderConfig mc = tiny_model(ds.n_features());
  mc.causal = true;
  manual_seed(4);
  GQATrader m(mc);
  TrainConfig tc = tiny_train(2);
  tc.out_dir = (root / "new").string();
  tc.stop_after_epoch = 1;
  train_trader(m, ds, tc);

  // The checkpoint as an older attnlab wrote it: "causal" in "train", none in "model".
  nlohmann::json meta = nn::read_module_config(tc.out_dir + "/" + kModelFile);
  meta.at("train")["causal"] = true;
  meta.at("model").erase("causal");
  const std::string old_ck = (root / "old.safetensors").string();
  nn::save_module(old_ck, m, meta);
  const TraderCheckpoint ck = read_trader_checkpoint(old_ck);
  CHECK(ck.model.causal);
  CHECK(!ck.meta.at("train").contains("causal"));
  CHECK(load_trader(ck)->config.causal);

  // The training state likewise: the old run resumes (the configs compare equal after the move).
  const std::string state = tc.out_dir + "/" + kTrainStateFile;
  nn::LoadedTensors file = nn::load_tensors(state);
  nlohmann::json extra = nlohmann::json::parse(file.metadata.at("extra"));
  extra.at("train")["causal"] = true;
  extra.at("model").erase("causal");
  file.metadata["extra"] = extra.dump();
  nn::save_tensors(state, file.tensors, file.metadata);
  const nlohmann::json info = read_train_state_info(tc.out_dir);
  CHECK(info.at("model").at("causal") == true);
  CHECK(!info.at("train").contains("causal"));
  manual_seed(99);
  GQATrader resumed(TraderConfig::from_json(info.at("model")));
  TrainConfig more = tc;
  more.stop_after_epoch = 0;
  more.resume_from = tc.out_dir;
  CHECK(train_trader(resumed, ds, more).history.size() == 2);

  nlohmann::json model = {{"causal", false}}, train = {{"causal", true}};
  testing::check_error([&] { move_legacy_causal(model, train); }, {"causal is given twice"});
  std::filesystem::remove_all(root);
}

TEST_CASE("TrainConfig json: round trip; unknown keys and bad values are named") {
  TrainConfig c = tiny_train(3);
  c.max_steps = 17;
  CHECK(TrainConfig::from_json(c.to_json()).to_json() == c.to_json());
  testing::check_error([] { TrainConfig::from_json({{"lookbak", 8}}); }, {"unknown key 'lookbak'", "lookback"});
  testing::check_error([] { TrainConfig::from_json({{"lr", "fast"}}); }, {"'lr'", "\"fast\""});
  testing::check_error([] { TrainConfig::from_json({{"lookback", -3}}); }, {"'lookback' must be >= 0"});
}
