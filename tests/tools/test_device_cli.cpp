// `attnlab train --device/--precision` end to end: a GPU asked for where none is usable is a clear error
// before any work (what a CPU-only machine and CI see); bf16 training on the CPU runs and records its
// precision; bad values are rejected. Skipped with a message when the binary is not built.
#include <doctest/doctest.h>

#include <filesystem>

#include "kernels/cuda/runtime.h"
#include "tests/test_util.h"
#include "tests/tools/cli_runner.h"
#include "trading/train/trainer.h"

using namespace attnlab;
using namespace attnlab::testing::cli;
namespace fs = std::filesystem;

TEST_CASE("train --device and --precision") {
  if (!have_binary()) return;
  const auto dir = testing::temp_dir("cli_device");
  write_planted_csv(dir / "d.csv", 160, 3);
  const std::string base = "train --data d.csv --lookback 8 --epochs 1 --d-model 16 --n-heads 2 --n-kv-heads 1 "
                           "--n-layers 1 --d-ff 16 --quiet ";
  if (kernels::cuda::device_count() == 0) {
    for (const char* dev : {"cuda", "cuda:0"}) {
      const Run r = run(dir, base + "--out o --device " + dev);
      INFO(r.out);
      CHECK(r.rc != 0);
      CHECK(contains(r.out, "no usable GPU"));
      CHECK(contains(r.out, kernels::cuda::unavailable_reason()));
      CHECK(!fs::exists(dir / "o" / "model.safetensors"));
    }
  }
  check_failures(dir, {{base + "--out o --device tpu", "unknown device 'tpu'"},
                       {base + "--out o --device cuda:x", "unknown device 'cuda:x'"},
                       {base + "--out o --precision fp8", "--precision"}});
  const Run r = run(dir, base + "--out bf --precision bf16 --device cpu");
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(contains(r.out, "device: cpu, precision bf16"));
  CHECK(trading::read_train_state_info((dir / "bf").string()).at("train").at("precision") == "bf16");
  // the device is not a setting of the run: a resume may name one, the precision may not change
  check_failures(dir, {{"train --resume bf --precision f32", "remove --precision"}});
  fs::remove_all(dir);
}
