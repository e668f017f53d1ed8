// `attnlab stream` and `attnlab compare caches` end to end on a tiny causal RoPE model trained for one
// epoch on synthetic data (skipped with a message when the binary is not built): options in --help,
// the replay's files, the comparison table and files, and clear errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "tests/tools/cli_runner.h"

using namespace attnlab;
using namespace attnlab::testing::cli;
namespace fs = std::filesystem;

namespace {

// A causal RoPE checkpoint (and a non-causal one) trained on `bars` synthetic daily bars in dir.
void train_models(const fs::path& dir) {
  write_planted_csv(dir / "a.csv", 260, 3);
  const std::string common = "train --data a.csv --epochs 1 --lookback 8 --d-model 16 --n-heads 4 --n-kv-heads 2 "
                             "--n-layers 2 --d-ff 32 --positions rope --quiet --seed 1";
  REQUIRE(run(dir, common + " --causal --out causal").rc == 0);
  REQUIRE(run(dir, common + " --out bidir").rc == 0);
}

}  // namespace

TEST_CASE("stream and compare caches: help, replay files, comparison table, errors") {
  if (!have_binary()) return;
  const auto dir = testing::temp_dir("cli_stream");
  for (const auto& [cmd, options] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"stream", {"--checkpoint", "--data", "--mode", "--cache", "--context", "--sinks", "--threshold", "--every",
                       "--limit", "--out"}},
           {"compare caches", {"--checkpoint", "--data", "--split", "--kinds", "--context", "--sinks", "--cost-bps",
                               "--tanh-scale", "--max-position", "--out", "--json", "--quiet"}},
           {"train", {"--objective", "--window", "--stream-targets"}}}) {
    const Run r = run(dir, cmd + " --help");
    CHECK(r.rc == 0);
    for (const auto& o : options) {
      INFO(cmd << " --help lacks " << o);
      CHECK(contains(r.out, o));
    }
  }
  train_models(dir);

  Run r = run(dir, "stream --checkpoint causal/model.safetensors --data a.csv --mode cached --cache int8 --every 50 "
                   "--out s");
  CHECK(r.rc == 0);
  CHECK(contains(r.out, "ready ticks of 260 bars"));
  CHECK(contains(r.out, "p99"));
  const std::string signals = slurp(dir / "s" / "signals.csv");
  CHECK(contains(signals, "time_ms,ready,prediction,signal"));
  CHECK(std::count(signals.begin(), signals.end(), '\n') == 261);
  CHECK(fs::file_size(dir / "s" / "latency.csv") > 20);

  r = run(dir, "compare caches --checkpoint causal/model.safetensors --data a.csv --split all "
               "--kinds exact,contiguous,int8,selective-recency --quiet --out c");
  CHECK(r.rc == 0);
  for (const char* k : {"exact", "contiguous", "int8", "selective-recency", "deviation"}) CHECK(contains(r.out, k));
  const std::string csv = slurp(dir / "c" / "caches.csv");
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 5);
  CHECK(contains(csv, "exact,"));
  CHECK(fs::exists(dir / "c" / "caches.json"));
  CHECK(contains(r.out, "deviation vs the exact stream"));  // a window-trained model's own semantics

  // A stream-objective model (window 4, 2 layers: lookback = receptive field 7): its cached ring is its
  // function, measured against the full-sequence windowed forward.
  r = run(dir, "train --data a.csv --epochs 1 --objective stream --window 4 --stream-targets 16 --d-model 16 "
               "--n-heads 4 --n-kv-heads 2 --n-layers 2 --d-ff 32 --quiet --seed 1 --out stream");
  REQUIRE(r.rc == 0);
  CHECK(contains(r.out, "\"objective\":\"stream\""));
  CHECK(contains(r.out, "\"lookback\":7"));
  r = run(dir, "compare caches --checkpoint stream/model.safetensors --data a.csv --split all --quiet --out cs");
  CHECK(r.rc == 0);
  CHECK(contains(r.out, "full-sequence forward with its sliding window (W = 4"));
  const nlohmann::json cj = nlohmann::json::parse(slurp(dir / "cs" / "caches.json"));
  CHECK(contains(cj.at("reference").get<std::string>(), "full-sequence"));
  for (const auto& row : cj.at("strategies")) {
    const std::string kind = row.at("kind");
    INFO(kind << ": deviation " << row.at("deviation_vs_exact"));
    const double dev = row.at("deviation_vs_exact").get<double>();
    if (kind == "exact" || kind == "contiguous" || kind == "paged") {
      CHECK(dev <= 1e-5);
      CHECK(row.at("sign_agreement_vs_exact").get<double>() == 1.0);
    }
    if (kind == "int8") CHECK(dev <= 0.02);
    if (kind == "contiguous") CHECK(row.at("reanchors").get<int64_t>() == 0);
  }
  r = run(dir, "stream --checkpoint stream/model.safetensors --data a.csv --mode cached --cache sinks");
  CHECK(r.rc != 0);
  CHECK(contains(r.out, "slides exactly without them"));
  r = run(dir, "train --data a.csv --epochs 1 --objective stream --quiet --out nowindow");
  CHECK(r.rc != 0);
  CHECK(contains(r.out, "--window"));

  // Errors: a non-causal model cannot stream cached; an unknown cache kind; an unknown mode.
  r = run(dir, "stream --checkpoint bidir/model.safetensors --data a.csv --mode cached");
  CHECK(r.rc != 0);
  CHECK(contains(r.out, "causal"));
  r = run(dir, "stream --checkpoint causal/model.safetensors --data a.csv --mode cached --cache int3");
  CHECK(r.rc != 0);
  CHECK(contains(r.out, "int3"));
  r = run(dir, "stream --checkpoint causal/model.safetensors --data a.csv --mode warp");
  CHECK(r.rc != 0);
  CHECK(contains(r.out, "warp"));
  fs::remove_all(dir);
}

TEST_CASE("compare objectives: equal compute, the table and files, the stream model's ring at float rounding") {
  if (!have_binary()) return;
  const auto dir = testing::temp_dir("cli_objectives");
  write_planted_csv(dir / "a.csv", 400, 5);
  const Run r = run(dir, "compare objectives --data a.csv --epochs 1 --lookback 9 --d-model 16 --n-heads 4 "
                         "--n-kv-heads 2 --n-layers 2 --d-ff 32 --stream-targets 16 --quiet --out o");
  REQUIRE(r.rc == 0);
  for (const char* k : {"window", "stream", "GFLOP", "cached dev", "full-sequence forward", "the exact stream"})
    CHECK(contains(r.out, k));
  const nlohmann::json j = nlohmann::json::parse(slurp(dir / "o" / "compare_objectives.json"));
  REQUIRE(j.at("results").size() == 2);
  const auto& w = j.at("results")[0];
  const auto& s = j.at("results")[1];
  CHECK(w.at("objective") == "window");
  CHECK(s.at("objective") == "stream");
  CHECK(s.at("window") == 5);  // the widest window whose receptive field 2 * (W - 1) + 1 fits in 9
  // equal budgets to within one stream epoch
  const double gw = w.at("train_gflop").get<double>(), gs = s.at("train_gflop").get<double>();
  CHECK(std::abs(gs - gw) <= gs / s.at("epochs").get<double>());
  CHECK(s.at("cached_deviation").get<double>() <= 1e-5);
  CHECK(s.at("cached_sign_agreement").get<double>() == 1.0);
  CHECK(w.at("cached_deviation").get<double>() > 1e-3);  // a window-trained model's ring is another function
  CHECK(fs::exists(dir / "o" / "compare_objectives.csv"));
  CHECK(fs::exists(dir / "o" / "stream" / "model.safetensors"));
  fs::remove_all(dir);
}
