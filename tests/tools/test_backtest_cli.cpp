// `attnlab backtest` and `attnlab compare attention` end to end with the built binary (skipped with a
// message when it is not built), plus the library facts they rely on: the report's KV-cache sizes equal
// the cache classes' own byte counts, and a checkpoint recognises its training data. Tiny models on
// synthetic data; a few seconds in all.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/attention/cache_factory.h"
#include "tensor/creation.h"
#include "tests/test_util.h"
#include "tests/tools/cli_runner.h"
#include "trading/data/features.h"
#include "trading/report/kv_size.h"
#include "trading/report/plot.h"
#include "trading/train/trader_checkpoint.h"
#include "trading/train/trainer.h"

using namespace attnlab;
using namespace attnlab::testing::cli;
namespace fs = std::filesystem;

namespace {

size_t lines(const std::string& s) { return size_t(std::count(s.begin(), s.end(), '\n')); }

// Cells of column `name` in a CSV without quoted fields.
std::vector<std::string> csv_column(const std::string& csv, const std::string& name) {
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> head;
  std::stringstream hs(line);
  for (std::string c; std::getline(hs, c, ',');) head.push_back(c);
  const auto col = size_t(std::find(head.begin(), head.end(), name) - head.begin());
  REQUIRE(col < head.size());
  std::vector<std::string> out;
  while (std::getline(in, line)) {
    std::stringstream ls(line);
    std::string c;
    for (size_t i = 0; i <= col; ++i) std::getline(ls, c, ',');
    out.push_back(c);
  }
  return out;
}

}  // namespace

TEST_CASE("KV-cache sizes in the report equal the caches' own bytes_used") {
  const std::vector<std::pair<std::string, std::string>> kinds = {
      {"f32", "contiguous"}, {"bf16", "bf16"}, {"int8", "int8"}, {"int4", "int4"}, {"fp8", "fp8"}};
  for (const int64_t D : {8, 16, 32, 64, 128})
    for (const auto& [report_kind, cache_kind] : kinds) {
      INFO(report_kind << " D=" << D);
      const int64_t layers = 2, kv = 2, S = 5;
      nn::CacheSpec spec;
      spec.kind = cache_kind;
      spec.max_len = 16;
      auto cache = nn::make_kv_cache(spec, layers, 1, kv, D);
      for (int64_t l = 0; l < layers; ++l) cache->append(l, randn({1, S, kv, D}), randn({1, S, kv, D}));
      CHECK(cache->bytes_used() == S * report::kv_bytes_per_position(report_kind, layers, kv, D));
    }
  // f32 is the seed's formula: layers * 2 * Hkv * D * 4.
  CHECK(report::kv_bytes_per_position("f32", 6, 2, 32) == 6 * 2 * 2 * 32 * 4);
  CHECK_THROWS_WITH_AS(report::kv_bytes_per_position("int3", 1, 1, 8), doctest::Contains("int3"), Error);
  // MHA / GQA / MQA variants and the clustered table.
  CHECK(report::middle_kv_heads(4) == 2);
  CHECK(report::middle_kv_heads(8) == 2);
  CHECK(report::middle_kv_heads(16) == 4);
  CHECK(report::middle_kv_heads(12) == 3);
  CHECK(report::middle_kv_heads(3) == 0);
  const report::KvSizeTable t = report::kv_size_table(2, 8, 4, 16, 32);
  REQUIRE(t.variants.size() == 3);
  CHECK(t.variants[0].kv_heads == 8);
  CHECK(t.variants[1].kv_heads == 4);  // the model's own GQA setting
  CHECK(t.variants[1].is_model);
  CHECK(t.variants[2].kv_heads == 1);
  CHECK(t.bytes[0][0] == 32.0 * 2 * 2 * 8 * 16 * 4);
  CHECK(t.bytes[0][0] == 8 * t.bytes[2][0]);  // MQA holds 1/H of MHA's cache
  CHECK(report::kv_size_table(1, 4, 4, 8, 4).variants[1].kv_heads == 2);  // an MHA model still shows a GQA bar
}

TEST_CASE("a checkpoint records its data; the same file rebuilt from it has the same fingerprint") {
  const auto dir = attnlab::testing::temp_dir("ck_data");
  write_planted_csv(dir / "a.csv", 300, 11);
  write_planted_csv(dir / "b.csv", 300, 12);
  auto features = [&](const std::string& f) {
    const data::OhlcvSeries s = data::read_ohlcv_csv((dir / f).string());
    return std::make_pair(data::compute_features(s), s.close);
  };
  auto [fa, ca] = features("a.csv");
  trading::TrainConfig tc;
  tc.lookback = 8;
  tc.epochs = 1;
  tc.progress = false;
  tc.out_dir = (dir / "run").string();
  const trading::TraderDataset ds = trading::make_dataset(fa, ca, tc.lookback, tc.horizon);
  trading::TraderConfig mc;
  mc.input_dim = int64_t(ds.n_features());
  mc.d_model = 8;
  mc.n_heads = 2;
  mc.n_kv_heads = 1;
  mc.n_layers = 1;
  mc.d_ff = 16;
  mc.max_seq_len = 8;
  manual_seed(1);
  trading::GQATrader model(mc);
  const trading::TrainResult r = trading::train_trader(model, ds, tc);
  const trading::TraderCheckpoint ck = trading::read_trader_checkpoint(r.checkpoint);
  const auto& rec = ck.meta.at("data");
  CHECK(rec.at("fingerprint") == trading::data_fingerprint(ds));
  CHECK(rec.at("periods").at("train").at("first_ms") == ds.features.ts_ms[ds.split.train.front()]);
  CHECK(rec.at("periods").at("test").at("last_target_ms") == ds.features.ts_ms[ds.split.test.back() + 1]);
  // Rebuilt with the checkpoint's normalizer and target scale: bit-identical inputs, same fingerprint.
  auto [fa2, ca2] = features("a.csv");
  CHECK(trading::data_fingerprint(trading::checkpoint_dataset(ck, fa2, ca2)) == rec.at("fingerprint"));
  auto [fb, cb] = features("b.csv");
  CHECK(trading::data_fingerprint(trading::checkpoint_dataset(ck, fb, cb)) != rec.at("fingerprint"));
  fs::remove_all(dir);
}

TEST_CASE("attnlab backtest: every report file, honest about training bars, config file, errors") {
  if (!have_binary()) return;
  const auto dir = attnlab::testing::temp_dir("cli_backtest");
  write_planted_csv(dir / "p.csv", 400, 7);
  write_planted_csv(dir / "other.csv", 400, 8);
  const Run tr = run(dir, "train --data p.csv --out m --d-model 16 --n-heads 4 --n-kv-heads 2 --n-layers 1 --d-ff 32 "
                          "--lookback 8 --epochs 1 --seed 3 --quiet");
  REQUIRE_MESSAGE(tr.rc == 0, tr.out);
  const trading::TraderCheckpoint ck = trading::read_trader_checkpoint((dir / "m" / "model.safetensors").string());

  const Run b = run(dir, "backtest --checkpoint m/model.safetensors --data p.csv --out rep --quiet");
  REQUIRE_MESSAGE(b.rc == 0, b.out);
  CHECK(contains(b.out, "This is the data the checkpoint was trained on"));
  CHECK(contains(b.out, "Sharpe"));
  CHECK(contains(b.out, "p99"));
  CHECK(contains(b.out, "rep/report.html"));
  const fs::path rep = dir / "rep";
  for (const char* f : {"metrics.json", "equity.csv", "trades.csv", "round_trips.csv", "latency.csv",
                        "predictions.csv", "report.html"}) {
    INFO(f);
    REQUIRE(fs::exists(rep / f));
    CHECK(fs::file_size(rep / f) > 0);
  }
  const bool gp = report::Gnuplot::detected().available();
  std::set<std::string> pngs;
  for (const auto& e : fs::directory_iterator(rep))
    if (e.path().extension() == ".png") pngs.insert(e.path().filename().string());
  if (gp) {
    for (const char* f : {"equity.png", "drawdown.png", "returns_hist.png", "latency_hist.png", "kv_cache.png",
                          "heatmap.png"}) {
      INFO(f);
      CHECK(pngs.count(f) == 1);
    }
  } else {
    MESSAGE("gnuplot not found: PNGs not checked");
  }
  const std::string html = slurp(rep / "report.html");
  for (const std::string& png : pngs) {
    INFO(png << " is not referenced by report.html");
    CHECK(contains(html, "src=\"" + png + "\""));
  }
  for (const char* part : {"Bars and training data", "Forecast quality", "KV-cache bytes per sequence", "Latency",
                           "predictions.csv"})
    CHECK(contains(html, part));
  const nlohmann::json mj = nlohmann::json::parse(slurp(rep / "metrics.json"));
  const size_t n_test = size_t(mj.at("extra").at("training_data").at("bars").get<int>());
  CHECK(mj.at("latency").at("count").get<size_t>() == n_test);
  CHECK(mj.at("extra").at("training_data").at("same_data") == true);
  CHECK(mj.at("extra").at("training_data").at("bars_in_training") == 0);  // the test split
  CHECK(mj.at("charts").at("kv_cache").at("categories").size() == 5);
  CHECK(mj.at("config").at("execution") == "next_open");
  CHECK(mj.at("config").at("tanh_scale") == 10.0);  // the seeds' sizing by default
  CHECK(mj.at("config").at("market") == "crypto");  // synthetic daily bars include weekends
  CHECK(lines(slurp(rep / "latency.csv")) == n_test + 1);
  CHECK(lines(slurp(rep / "predictions.csv")) == n_test + 1);
  CHECK(lines(slurp(rep / "equity.csv")) == n_test + 2);  // header + decisions + the bar the last one fills in

  // --split all: the training bars are marked as such, one per training sample.
  const Run all = run(dir, "backtest --checkpoint m/model.safetensors --data p.csv --out all --split all "
                           "--no-attention --quiet");
  REQUIRE_MESSAGE(all.rc == 0, all.out);
  const std::string pc = slurp(dir / "all" / "predictions.csv");
  const auto split = csv_column(pc, "split"), seen = csv_column(pc, "in_training");
  const nlohmann::json aj = nlohmann::json::parse(slurp(dir / "all" / "metrics.json"));
  const auto n_train = aj.at("extra").at("training_data").at("bars_in_training").get<size_t>();
  CHECK(n_train > 0);
  CHECK(size_t(std::count(split.begin(), split.end(), "train")) == n_train);
  CHECK(size_t(std::count(seen.begin(), seen.end(), "1")) == n_train);
  CHECK(std::count(split.begin(), split.end(), "gap") > 0);  // horizon gaps and the last bars
  CHECK(contains(all.out, std::to_string(n_train) + " are training samples"));
  CHECK_FALSE(fs::exists(dir / "all" / "heatmap.png"));

  // Other data: the overlap is judged by the training period's dates.
  const Run o = run(dir, "backtest --checkpoint m/model.safetensors --data other.csv --out o --quiet");
  REQUIRE_MESSAGE(o.rc == 0, o.out);
  CHECK(contains(o.out, "differs from the checkpoint's training data"));

  // A config file, and a command-line option over it.
  std::ofstream(dir / "bt.json") << R"({"backtest": {"execution": "next_close", "cost_bps": 0, "sizing": "threshold",
                                       "threshold": 0.002, "threshold_full": 0.004, "split": "val"}})";
  const Run c = run(dir, "backtest --checkpoint m/model.safetensors --data p.csv --out c --config bt.json "
                         "--cost-bps 5 --quiet");
  REQUIRE_MESSAGE(c.rc == 0, c.out);
  const nlohmann::json cj = nlohmann::json::parse(slurp(dir / "c" / "metrics.json"));
  CHECK(cj.at("config").at("execution") == "next_close");
  CHECK(cj.at("config").at("sizing") == "threshold");
  CHECK(cj.at("config").at("threshold_full") == 0.004);
  CHECK(cj.at("config").at("cost_bps") == 5.0);
  CHECK(cj.at("extra").at("split") == "val");
  CHECK(cj.at("extra").at("training_data").at("bars_in_validation").get<size_t>() ==
        cj.at("extra").at("training_data").at("bars").get<size_t>());

  // Bad options and files: a clear error, a non-zero exit.
  std::ofstream(dir / "typo.json") << R"({"backtest": {"cost": 5}})";
  std::ofstream(dir / "type.json") << R"({"backtest": {"split": 3}})";
  std::ofstream(dir / "enum.json") << R"({"backtest": {"execution": "tomorrow"}})";
  std::ofstream(dir / "section.json") << R"({"model": {}})";
  std::ofstream(dir / "full.json") << R"({"backtest": {"sizing": "threshold", "threshold": 0.01, "threshold_full": 0.001}})";
  const std::string base = "backtest --checkpoint m/model.safetensors --data p.csv --out bad --quiet ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {base + "--config typo.json", "unknown key 'cost'"},
      {base + "--config type.json", "split must be a string"},
      {base + "--config enum.json", "execution must be one of next_open, next_close"},
      {base + "--config section.json", "unknown section 'model'"},
      {base + "--config full.json", "threshold_full"},
      {base + "--split sideways", "sideways"},
      {base + "--cost-bps -1", "--cost-bps"},
      {"backtest --checkpoint missing.safetensors --data p.csv", "missing.safetensors"},
      {"backtest --checkpoint p.csv --data p.csv", "p.csv"},
      {"backtest --data p.csv", "--checkpoint is required"},
  };
  check_failures(dir, cases);
  fs::remove_all(dir);
}

TEST_CASE("attnlab compare attention: MHA, GQA and MQA on the same data, budget and seed") {
  if (!have_binary()) return;
  const auto dir = attnlab::testing::temp_dir("cli_compare");
  write_planted_csv(dir / "p.csv", 300, 5);
  const Run r = run(dir, "compare attention --data p.csv --epochs 1 --d-model 16 --n-heads 4 --n-layers 1 --d-ff 32 "
                         "--lookback 8 --seed 2 --quiet --json --out cmp", /*stdout_only=*/true);
  REQUIRE_MESSAGE(r.rc == 0, r.out);
  const nlohmann::json j = nlohmann::json::parse(r.out);  // stdout is pure JSON with --json
  CHECK(j.at("split") == "val");
  const auto& res = j.at("results");
  REQUIRE(res.size() == 3);
  CHECK(res[0].at("attention") == "MHA");
  CHECK(res[1].at("attention") == "GQA");
  CHECK(res[2].at("attention") == "MQA");
  CHECK(res[0].at("kv_heads") == 4);
  CHECK(res[1].at("kv_heads") == 2);
  CHECK(res[2].at("kv_heads") == 1);
  // KV bytes per sequence scale with the KV heads; fewer K/V projection weights with fewer KV heads.
  CHECK(res[0].at("kv_bytes_per_sequence").get<int64_t>() == 8 * 1 * 2 * 4 * 4 * 4);
  CHECK(res[0].at("kv_bytes_per_sequence").get<int64_t>() == 4 * res[2].at("kv_bytes_per_sequence").get<int64_t>());
  CHECK(res[0].at("parameters").get<int64_t>() > res[1].at("parameters").get<int64_t>());
  CHECK(res[1].at("parameters").get<int64_t>() > res[2].at("parameters").get<int64_t>());
  for (const auto& x : res) {
    CHECK(x.at("mse").is_number());
    CHECK(x.at("direction_accuracy").get<double>() >= 0.0);
    CHECK(x.at("inference_ms").at("count").get<int64_t>() == j.at("bars").get<int64_t>());
  }
  for (const char* f : {"compare_attention.csv", "compare_attention.json", "compare_attention.dat",
                        "compare_attention.gp", "mha/model.safetensors", "gqa/model.safetensors",
                        "mqa/model.safetensors"}) {
    INFO(f);
    CHECK(fs::exists(dir / "cmp" / f));
  }
  if (report::Gnuplot::detected().available()) CHECK(fs::file_size(dir / "cmp" / "compare_attention.png") > 0);
  CHECK(lines(slurp(dir / "cmp" / "compare_attention.csv")) == 4);
  // The same seed and budget give the same numbers again (inference times aside).
  const Run t = run(dir, "compare attention --data p.csv --epochs 1 --d-model 16 --n-heads 4 --n-layers 1 --d-ff 32 "
                         "--lookback 8 --seed 2 --quiet");
  REQUIRE_MESSAGE(t.rc == 0, t.out);
  CHECK(contains(t.out, "MQA"));
  CHECK(contains(t.out, "buy & hold Sharpe"));
  char mse[32];
  std::snprintf(mse, sizeof mse, "%.4e", res[1].at("mse").get<double>());
  CHECK(contains(t.out, mse));
  fs::remove_all(dir);
}
