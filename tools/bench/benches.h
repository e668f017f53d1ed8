// Every `attnlab bench <name>` entry point. Each prints a table (or nothing with --json) and returns
// its results as JSON rows.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace attnlab::bench {

struct BenchOptions {
  bool json = false;   // machine-readable output only
  bool quick = false;  // a reduced sweep (smoke test)
  std::string device = "cpu";  // bench model: "cuda[:N]" measures training samples/s on that GPU
  // bench attention --device cuda: the kernel tier(s) (reference, optimized, fast, or all = optimized
  // and fast in one run), the deterministic backward, and PyTorch's SDPA JSON rows to print ratios to.
  std::string variant = "optimized";
  bool deterministic = false;
  std::vector<std::string> baselines;
};

nlohmann::json bench_matmul(const BenchOptions& opt);
nlohmann::json bench_attention(const BenchOptions& opt);
// --device cuda[:N]: the CUDA FlashAttention kernels in TFLOP/s (bench_attention_cuda.cpp); skips without a GPU
nlohmann::json bench_attention_cuda(const BenchOptions& opt);
nlohmann::json bench_backtest(const BenchOptions& opt);
nlohmann::json bench_model(const BenchOptions& opt);  // GQATrader MHA/GQA/MQA: train step, inference, KV bytes
nlohmann::json bench_cache(const BenchOptions& opt);  // KV caches: recompute vs cached step, bytes, errors, decode
nlohmann::json bench_stream(const BenchOptions& opt);  // streaming tick latency percentiles, seed model size

}  // namespace attnlab::bench
