// `attnlab train --device cuda` end to end on the embedded S&P 500 data (issue 16): bf16 and f32 runs
// on cuda:0 finish, write their checkpoint, training state and history, follow the CPU run of the same
// command (f32: within summation-order rounding), and the checkpoint predicts on the CPU. Also
// `--device cuda:N` past the last GPU is a clear error. Skipped (exit 77) without a GPU; the binary is
// found beside the test (the GPU pack's bin/) or in <build>/tools.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "kernels/cuda/runtime.h"
#include "tests/test_util.h"
#include "tests/tools/cli_runner.h"
#include "trading/train/trainer.h"

using namespace attnlab;
using namespace attnlab::testing::cli;
namespace fs = std::filesystem;

namespace {
const std::string kData = std::string(ATTNLAB_SOURCE_DIR) + "/data/sp500_daily_2000_2020.csv";
// A small model and two epochs of the whole series: a few seconds on either device.
const std::string kTrain = "train --data " + kData + " --lookback 32 --epochs 2 --batch-size 64 --d-model 32 "
                           "--n-heads 4 --n-kv-heads 2 --n-layers 2 --d-ff 64 --positions rope --causal --quiet ";

std::vector<double> val_losses(const fs::path& run_dir) {
  std::vector<double> out;
  for (const auto& e : trading::read_train_state_info(run_dir.string()).at("history"))
    out.push_back(e.at("val_loss").get<double>());
  return out;
}
}  // namespace

TEST_CASE("attnlab train --device cuda on the embedded data: bf16 and f32, checkpoint usable on the CPU") {
  REQUIRE(have_binary());  // a GPU machine runs this from the pack, which ships attnlab beside the tests
  REQUIRE(fs::exists(kData));
  const auto dir = testing::temp_dir("cli_train_cuda");
  for (const std::string precision : {"bf16", "f32"}) {
    INFO(precision);
    const Run r = run(dir, kTrain + "--out gpu_" + precision + " --device cuda --precision " + precision);
    INFO(r.out);
    REQUIRE(r.rc == 0);
    CHECK(contains(r.out, "device: cuda:0, precision " + precision));
    for (const char* f : {"model.safetensors", "train_state.safetensors", "history.csv", "eval.json"})
      CHECK(fs::exists(dir / ("gpu_" + precision) / f));
    for (double v : val_losses(dir / ("gpu_" + precision))) CHECK(std::isfinite(v));
  }
  // f32 on the GPU follows the same command on the CPU (cuBLAS without TF32: only summation order differs)
  const Run c = run(dir, kTrain + "--out cpu_f32 --device cpu");
  INFO(c.out);
  REQUIRE(c.rc == 0);
  const auto g = val_losses(dir / "gpu_f32"), h = val_losses(dir / "cpu_f32");
  REQUIRE(g.size() == h.size());
  for (size_t e = 0; e < g.size(); ++e) CHECK(g[e] == doctest::Approx(h[e]).epsilon(1e-2));
  // the checkpoint is device-free: predict loads it on the CPU
  const Run p = run(dir, "predict --checkpoint gpu_bf16/model.safetensors --data " + kData + " --no-plot");
  INFO(p.out);
  CHECK(p.rc == 0);
  const int n = kernels::cuda::device_count();
  check_failures(dir, {{kTrain + "--out x --device cuda:" + std::to_string(n), "GPU(s) present"}});
  fs::remove_all(dir);
}
