// The attnlab binary end to end (build/tools/attnlab, found beside this test's build directory; the
// cases are skipped with a message when it has not been built): every option in --help, bad options
// and files give a clear error and a non-zero exit, options from a JSON config file, train interrupted
// and resumed == train straight, predict's attention CSV and plots, convert with uptraining.
// Tiny models on synthetic data: a few seconds in all. No network.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "tests/tools/cli_runner.h"
#include "trading/data/csv.h"
#include "trading/data/synth.h"
#include "trading/report/plot.h"
#include "trading/train/trader_checkpoint.h"

using namespace attnlab;
using namespace attnlab::testing::cli;
namespace fs = std::filesystem;

TEST_CASE("every option is in --help") {
  if (!have_binary()) return;
  const auto dir = testing::temp_dir("cli_help");
  const Run top = run(dir, "--help");
  CHECK(top.rc == 0);
  for (const char* c : {"train", "predict", "convert", "data", "demo", "bench", "info", "backtest", "compare"})
    CHECK(contains(top.out, c));
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"train", {"--data", "--out", "--config", "--resume", "--stop-after-epoch", "--causal", "--lookback",
                 "--horizon", "--epochs", "--batch-size", "--lr", "--weight-decay", "--patience", "--seed",
                 "--max-steps", "--clip-norm", "--train-frac", "--val-frac", "--d-model", "--n-heads", "--n-kv-heads",
                 "--n-layers", "--d-ff", "--dropout", "--positions", "--backend", "--output-type", "--precision",
                 "--device", "--quiet", "--window", "--objective", "--stream-targets"}},
      {"predict", {"--checkpoint", "--data", "--attention-csv", "--no-plot"}},
      {"convert", {"--checkpoint", "--out", "--kv-heads", "--uptrain-data", "--uptrain-epochs", "--uptrain-lr",
                   "--uptrain-dir", "--seed", "--quiet"}},
      {"backtest", {"--checkpoint", "--data", "--out", "--config", "--split", "--execution", "--capital", "--cost-bps",
                    "--slippage-bps", "--sizing", "--tanh-scale", "--max-position", "--threshold", "--threshold-full",
                    "--gross-limit", "--rebalance-band", "--market", "--annualization", "--title", "--no-attention",
                    "--quiet"}},
      {"compare attention", {"--data", "--out", "--split", "--epochs", "--max-steps", "--seed", "--d-model",
                             "--n-heads", "--gqa-kv-heads", "--n-layers", "--d-ff", "--dropout", "--lookback",
                             "--batch-size", "--lr", "--positions", "--backend", "--causal", "--cost-bps",
                             "--tanh-scale", "--max-position", "--json", "--quiet"}},
      {"compare objectives", {"--data", "--out", "--split", "--epochs", "--seed", "--d-model", "--n-heads",
                              "--n-kv-heads", "--n-layers", "--d-ff", "--dropout", "--lookback", "--window",
                              "--stream-targets", "--batch-size", "--lr", "--cost-bps", "--tanh-scale", "--max-position",
                              "--json", "--quiet"}},
      {"demo", {"--out", "--data", "--epochs", "--seed", "--backend", "--tanh-scale", "--max-position", "--quiet",
                "--stream-epochs", "--no-stream"}},
  };
  for (const auto& [cmd, options] : cases) {
    const Run r = run(dir, cmd + " --help");
    CHECK(r.rc == 0);
    for (const auto& o : options) {
      INFO(cmd << " --help lacks " << o);
      CHECK(contains(r.out, o));
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("bad options and files: a clear error and a non-zero exit") {
  if (!have_binary()) return;
  const auto dir = testing::temp_dir("cli_errors");
  write_planted_csv(dir / "a.csv", 200, 1);
  std::ofstream(dir / "typo.json") << R"({"train": {"lookbak": 8}})";
  std::ofstream(dir / "type.json") << R"({"model": {"d_model": "wide"}})";
  std::ofstream(dir / "broken.json") << R"({"train": )";
  std::ofstream(dir / "section.json") << R"({"optim": {}})";
  std::ofstream(dir / "not_a_model.safetensors") << "not a safetensors file";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train --data a.csv --out r --bogus 1", "--bogus"},
      {"train --data missing.csv --out r", "missing.csv"},
      {"train --data a.csv", "--out is required"},
      {"train --data a.csv --out r --positions sideways", "sideways"},
      {"train --data a.csv --out r --config typo.json", "unknown key 'lookbak'"},
      {"train --data a.csv --out r --config type.json", "d_model must be a number"},
      {"train --data a.csv --out r --config broken.json", "not valid JSON"},
      {"train --data a.csv --out r --config section.json", "unknown section 'optim'"},
      {"train --resume nowhere", "nowhere"},
      {"train --resume . --lr 0.1", "remove --lr"},
      {"predict --checkpoint not_a_model.safetensors --data a.csv", "not_a_model.safetensors"},
      {"convert --checkpoint not_a_model.safetensors --out b.safetensors --kv-heads 1", "not_a_model.safetensors"},
      {"nonsense", "A subcommand is required"},
      {"compare", "A subcommand is required"},
  };
  check_failures(dir, cases);
  fs::remove_all(dir);
}

TEST_CASE("train from a config file, interrupted and resumed == straight; predict plots; convert uptrains") {
  if (!have_binary()) return;
  const auto dir = testing::temp_dir("cli_flow");
  write_planted_csv(dir / "planted.csv", 500, 3);
  std::ofstream(dir / "tiny.json") << R"({
    "model": {"d_model": 16, "n_heads": 4, "n_kv_heads": 4, "n_layers": 2, "d_ff": 32, "dropout": 0.1,
              "backend": "math", "causal": true},
    "train": {"lookback": 8, "epochs": 3, "lr": 0.002, "patience": 0}
  })";
  // The same as older versions wrote it, with the model's causal setting in "train".
  std::ofstream(dir / "tiny_old.json") << R"({
    "model": {"d_model": 16, "n_heads": 4, "n_kv_heads": 4, "n_layers": 2, "d_ff": 32, "dropout": 0.1,
              "backend": "math"},
    "train": {"lookback": 8, "epochs": 3, "lr": 0.002, "patience": 0, "causal": true}
  })";
  const std::string common = "train --data planted.csv --config tiny.json --seed 5 --quiet";

  const Run a1 = run(dir, common + " --out a --stop-after-epoch 1");
  REQUIRE_MESSAGE(a1.rc == 0, a1.out);
  CHECK(contains(a1.out, "continue with: attnlab train --resume a"));
  CHECK_FALSE(fs::exists(dir / "a" / "eval.json"));
  const Run a2 = run(dir, "train --resume a --quiet");  // data path and settings from the saved state
  REQUIRE_MESSAGE(a2.rc == 0, a2.out);
  CHECK(contains(a2.out, "resumed at epoch 2"));
  const Run b = run(dir, common + " --out b");
  REQUIRE_MESSAGE(b.rc == 0, b.out);
  CHECK(fs::exists(dir / "a" / "eval.json"));
  // Same weights, metrics and config in the best checkpoint, byte for byte; same losses per epoch.
  CHECK(slurp(dir / "a" / "model.safetensors") == slurp(dir / "b" / "model.safetensors"));
  auto losses = [](const std::string& csv) {  // history.csv without the seconds column
    std::string out, line;
    std::istringstream in(csv);
    while (std::getline(in, line)) out += line.substr(0, line.rfind(',')) + "\n";
    return out;
  };
  const std::string ha = losses(slurp(dir / "a" / "history.csv"));
  CHECK(ha == losses(slurp(dir / "b" / "history.csv")));
  CHECK(std::count(ha.begin(), ha.end(), '\n') == 4);  // header + 3 epochs
  // The config file's settings and the causal flag reached the checkpoint.
  const trading::TraderCheckpoint ck = trading::read_trader_checkpoint((dir / "a" / "model.safetensors").string());
  CHECK(ck.model.causal);
  CHECK(ck.train.lookback == 8);
  CHECK(ck.model.d_model == 16);
  CHECK(ck.model.dropout == 0.1);
  // A command-line option overrides the file; the file's other settings stay (an older file's too).
  const Run c = run(dir, "train --data planted.csv --config tiny_old.json --seed 5 --quiet --out c --epochs 1 "
                         "--lookback 6");
  REQUIRE_MESSAGE(c.rc == 0, c.out);
  const trading::TraderCheckpoint cc = trading::read_trader_checkpoint((dir / "c" / "model.safetensors").string());
  CHECK(cc.train.lookback == 6);
  CHECK(cc.train.epochs == 1);
  CHECK(cc.model.causal);
  CHECK(cc.model.d_model == 16);

  const Run p = run(dir, "predict --checkpoint a/model.safetensors --data planted.csv --attention-csv attn/last.csv");
  REQUIRE_MESSAGE(p.rc == 0, p.out);
  CHECK(contains(p.out, "causal mask"));
  CHECK(contains(p.out, "direction  : "));
  const std::string csv = slurp(dir / "attn" / "last.csv");
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 9);  // header + lookback rows
  for (const char* f : {"last.dat", "last.gp", "last_map.dat", "last_map.gp"}) CHECK(fs::exists(dir / "attn" / f));
  if (report::Gnuplot::detected().available()) {
    CHECK(fs::exists(dir / "attn" / "last.png"));
    CHECK(fs::exists(dir / "attn" / "last_map.png"));
  }
  const Run q = run(dir, "predict --checkpoint a/model.safetensors --data planted.csv --attention-csv q.csv --no-plot");
  CHECK(q.rc == 0);
  CHECK_FALSE(fs::exists(dir / "q.dat"));

  const Run u = run(dir, "convert --checkpoint a/model.safetensors --kv-heads 1 --out conv/mqa.safetensors "
                         "--uptrain-data planted.csv --uptrain-epochs 2 --quiet");
  REQUIRE_MESSAGE(u.rc == 0, u.out);
  CHECK(contains(u.out, "validation loss: converted"));
  CHECK(fs::exists(dir / "conv" / "mqa_uptrain" / "converted.safetensors"));
  const trading::TraderCheckpoint uk = trading::read_trader_checkpoint((dir / "conv" / "mqa.safetensors").string());
  CHECK(uk.model.n_kv_heads == 1);
  CHECK(uk.model.causal);  // uptraining keeps the checkpoint's causal setting
  const auto& up = uk.meta.at("converted_from").at("uptrain");
  MESSAGE("convert --uptrain-data: val loss " << up.at("val_loss_before") << " -> " << up.at("val_loss_after"));
  CHECK(up.at("val_loss_after").get<double>() <= up.at("val_loss_before").get<double>());
  const Run pu = run(dir, "predict --checkpoint conv/mqa.safetensors --data planted.csv");
  CHECK(pu.rc == 0);
  fs::remove_all(dir);
}
