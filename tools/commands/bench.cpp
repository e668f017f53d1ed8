// `attnlab bench <name> [--json] [--quick]`
#include <iostream>
#include <map>

#include "tools/bench/benches.h"
#include "tools/commands/commands.h"

namespace attnlab::cli {

void add_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Run a benchmark (ratios against a baseline measured in the same run)");
  bench->require_subcommand(1);
  static bench::BenchOptions opt;
  using Fn = nlohmann::json (*)(const bench::BenchOptions&);
  static const std::map<std::string, std::pair<Fn, std::string>> benches = {
      {"matmul", {&bench::bench_matmul, "our matmul vs a direct cblas_sgemm (GFLOP/s and overhead ratio)"}},
      {"attention", {&bench::bench_attention, "math vs flash attention: time, GFLOP/s, peak memory; MHA/GQA/MQA"}},
      {"backtest", {&bench::bench_backtest, "the backtest engine alone, in asset-bars per second"}},
      {"cache", {&bench::bench_cache, "KV caches: recompute vs cached step, bytes per kind (and the seeds' tables), "
                                      "quantization error, decode time per kind"}},
      {"stream", {&bench::bench_stream, "streaming tick latency (p50/p90/p99/max) for the seed model size at context 512"}},
      {"model", {&bench::bench_model, "GQATrader MHA vs GQA vs MQA: training step (fwd/bwd/AdamW), inference, KV bytes"}},
  };
  auto run = [](Fn fn) {
    const nlohmann::json r = fn(opt);
    if (opt.json) std::cout << r.dump(2) << "\n";
  };
  for (const auto& [name, entry] : benches) {
    auto* sub = bench->add_subcommand(name, entry.second);
    sub->add_flag("--json", opt.json, "print results as JSON instead of a table");
    sub->add_flag("--quick", opt.quick, "a reduced sweep (smoke test)");
    if (name == "model")
      sub->add_option("--device", opt.device, "cpu, or cuda[:N]: training samples/s of the seed config on that GPU "
                      "(f32, bf16, f16; compare with tools/bench/train_pytorch.py)")->capture_default_str();
    if (name == "attention") {
      sub->add_option("--device", opt.device, "cpu, or cuda[:N]: FlashAttention forward/backward TFLOP/s on that GPU "
                      "(bf16; compare with tools/bench/sdpa_pytorch.py)")->capture_default_str();
      sub->add_option("--variant", opt.variant, "with --device cuda: the kernel tier, reference, optimized, fast, or "
                      "all (optimized and fast in one run)")->capture_default_str();
      sub->add_flag("--deterministic", opt.deterministic, "with --device cuda: time the deterministic backward");
      sub->add_option("--baseline", opt.baselines, "with --device cuda: JSON of tools/bench/sdpa_pytorch.py --json "
                      "(repeatable, one per SDPA backend): adds ours / PyTorch's best per row");
    }
    if (name == "matmul")
      sub->add_option("--device", opt.device, "cpu, or cuda[:N]: ops::matmul vs the raw cuBLAS call in TFLOP/s "
                      "(f32, bf16)")->capture_default_str();
    sub->callback([fn = entry.first, run] { run(fn); });
  }
  auto* all = bench->add_subcommand("all", "run every benchmark");
  all->add_flag("--json", opt.json, "print results as JSON instead of a table");
  all->add_flag("--quick", opt.quick, "a reduced sweep (smoke test)");
  all->callback([run] {
    for (const auto& [name, entry] : benches) run(entry.first);
  });
}

}  // namespace attnlab::cli
