// `attnlab bench attention --device cuda` arguments: the tier (--variant) and the PyTorch baseline files
// (--baseline, the JSON of tools/bench/sdpa_pytorch.py) are checked before any GPU work, so a bad
// argument is a clear error on any machine; without a GPU a good baseline is read and the bench is
// skipped. Skipped with a message when the binary is not built.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "kernels/cuda/runtime.h"
#include "tests/test_util.h"
#include "tests/tools/cli_runner.h"

using namespace attnlab;
using namespace attnlab::testing::cli;
namespace fs = std::filesystem;

TEST_CASE("bench attention --device cuda: --variant and --baseline are checked first") {
  if (!have_binary()) return;
  const auto dir = testing::temp_dir("cli_bench_attention");
  auto write = [&](const char* name, const char* text) { std::ofstream(dir / name) << text; };
  // Two backends on one configuration (the best of each column counts), a row of another dtype.
  write("sdpa.json", R"([
    {"impl": "torch-sdpa-auto", "device": "GPU", "dtype": "bf16", "causal": false, "headdim": 128,
     "seqlen": 2048, "fwd_tflops": 600.0, "bwd_tflops": 500.0},
    {"impl": "torch-sdpa-cudnn", "device": "GPU", "dtype": "bf16", "causal": false, "headdim": 128,
     "seqlen": 2048, "fwd_tflops": 650.0, "bwd_tflops": 480.0},
    {"impl": "torch-sdpa-auto", "device": "GPU", "dtype": "f16", "causal": true, "headdim": 64,
     "seqlen": 512, "fwd_tflops": 100.0, "bwd_tflops": 90.0}])");
  write("text.json", "sdpa_pytorch: skipped: no GPU (torch.cuda.is_available() is False)\n");
  write("object.json", R"({"impl": "torch-sdpa-auto"})");
  write("norow.json", R"([{"impl": "torch-sdpa-auto", "causal": false}])");
  const std::string base = "bench attention --device cuda ";
  check_failures(dir, {{base + "--variant turbo", "expected reference, optimized, fast or all, got 'turbo'"},
                       {base + "--baseline missing.json", "--baseline missing.json: cannot open"},
                       {base + "--baseline text.json", "text.json: not JSON"},
                       {base + "--baseline object.json", "object.json: expected a JSON array of rows"},
                       {base + "--baseline norow.json", "norow.json: row 0 has no \"dtype\""}});
  if (kernels::cuda::device_count() == 0) {
    const Run r = run(dir, base + "--variant all --baseline sdpa.json --baseline sdpa.json");
    INFO(r.out);
    CHECK(r.rc == 0);
    CHECK(contains(r.out, "PyTorch baseline read: 1 bf16 configurations"));
    CHECK(contains(r.out, "skipped"));
  }
  fs::remove_all(dir);
}
