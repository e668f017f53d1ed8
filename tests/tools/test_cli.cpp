// The library paths behind `attnlab data synth|features` and `attnlab convert`, exercised as the
// commands use them (no binary is run and no network is touched).
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <unistd.h>

#include "autograd/functions.h"
#include "nn/serialization.h"
#include "tensor/creation.h"
#include "tests/test_util.h"
#include "trading/data/csv.h"
#include "trading/data/features.h"
#include "trading/data/synth.h"
#include "trading/models/gqa_trader.h"

using namespace attnlab;
using attnlab::testing::temp_dir;

TEST_CASE("data synth: the written CSVs read back as the generated series; features warm up as documented") {
  data::SynthConfig sc;
  sc.n_symbols = 2;
  sc.n_bars = 200;
  sc.bar_ms = data::kMsPerDay;
  const data::SynthResult r = data::generate_synthetic(sc);
  CHECK(r.beta == doctest::Approx(0.3));
  const auto dir = temp_dir("synth");
  for (const auto& s : r.series) {
    const std::string path = (dir / (s.symbol + ".csv")).string();
    data::write_ohlcv_csv(path, s);
    const data::OhlcvSeries back = data::read_ohlcv_csv(path);
    REQUIRE(back.size() == s.size());
    CHECK(back.ts_ms == s.ts_ms);
    for (size_t i = 0; i < s.size(); ++i) CHECK(back.close[i] == s.close[i]);
    data::FeatureConfig fc;
    fc.volatility_window = fc.volume_ma_window = fc.price_ma_window = 10;
    fc.momentum_lag = 12;
    const data::FeatureSet fs = data::compute_features(back, fc);
    CHECK(fs.rows() == s.size());
    CHECK(fs.cols() == 6);
    CHECK(fs.first_valid == 14);  // RSI period 14 is the longest warm-up here
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("convert: an MHA checkpoint converted to MQA reloads from its own updated config") {
  trading::TraderConfig c;
  c.input_dim = 5;
  c.d_model = 16;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.n_layers = 2;
  c.d_ff = 32;
  c.max_seq_len = 16;
  c.dropout = 0.0;
  manual_seed(5);
  trading::GQATrader mha(c);
  const auto dir = temp_dir("convert");
  const std::string in = (dir / "in.safetensors").string(), out = (dir / "out.safetensors").string();
  nlohmann::json meta{{"model", c.to_json()}, {"features", {"a", "b"}}};
  nn::save_module(in, mha, meta);

  // what `attnlab convert --kv-heads 1` does
  nlohmann::json m = nn::read_module_config(in);
  trading::GQATrader src(trading::TraderConfig::from_json(m.at("model")));
  nn::load_module(in, src);
  const auto mqa = trading::mha_to_gqa(src, 1);
  m["model"] = mqa->config.to_json();
  nn::save_module(out, *mqa, m);
  CHECK(mqa->kv_cache_bytes_per_token(4) * 4 == src.kv_cache_bytes_per_token(4));
  CHECK(mqa->num_parameters() < src.num_parameters());

  const nlohmann::json m2 = nn::read_module_config(out);
  CHECK(m2.at("features") == meta.at("features"));
  trading::GQATrader back(trading::TraderConfig::from_json(m2.at("model")));
  CHECK(back.config.n_kv_heads == 1);
  nn::load_module(out, back);
  back.eval();
  mqa->eval();
  const Tensor x = randn({2, 8, 5});
  NoGradGuard ng;
  testing::check_close_tensor(back.forward(x).pred, mqa->forward(x).pred, 0, 0);
  std::filesystem::remove_all(dir);
}
