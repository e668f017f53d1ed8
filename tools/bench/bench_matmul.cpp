// `attnlab bench matmul`: our matmul (a Tensor op: shape checks, output allocation, layout dispatch)
// against a direct cblas_sgemm on the same buffers. The ratio is our overhead; target <= 5%.
#include <cblas.h>

#include <iostream>

#include "tensor/creation.h"
#include "tensor/ops.h"
#include "tools/bench/benches.h"
#include "tools/bench/timing.h"

namespace attnlab::bench {

namespace {
struct Case {
  std::string name;
  int64_t batch, M, K, N;  // A [batch, M, K] (batch 0 = plain 2-D) times B
  bool linear;             // B given as a transposed view of a [N, K] weight, as nn::Linear does
};
}  // namespace

nlohmann::json bench_matmul(const BenchOptions& opt) {
  std::vector<Case> cases = {
      {"square 256", 0, 256, 256, 256, false},
      {"square 512", 0, 512, 512, 512, false},
      {"square 1024", 0, 1024, 1024, 1024, false},
      {"square 2048", 0, 2048, 2048, 2048, false},
      {"[B*T,C]x[C,4C] C=256", 0, 4096, 256, 1024, false},
      {"[B*T,C]x[C,4C] C=512", 0, 2048, 512, 2048, false},
      {"Linear [B,T,C]·W^T C=256", 32, 128, 256, 1024, true},
      {"Linear [B,T,C]·W^T C=512", 8, 256, 512, 2048, true},
  };
  if (opt.quick) cases.resize(2);
  Table table({"shape", "ours ms", "cblas ms", "ours GFLOP/s", "cblas GFLOP/s", "ours/cblas time"});
  Generator g(1);
  for (const auto& c : cases) {
    const int64_t rows = (c.batch ? c.batch : 1) * c.M;
    const Tensor A = c.batch ? randn({c.batch, c.M, c.K}, DType::f32, &g) : randn({c.M, c.K}, DType::f32, &g);
    const Tensor W = randn({c.N, c.K}, DType::f32, &g);
    const Tensor Bm = c.linear ? ops::transpose(W, 0, 1) : ops::contiguous(ops::transpose(W, 0, 1));  // [K, N]
    Tensor C = Tensor::empty({rows, c.N});
    const auto ours = time_it([&] { volatile auto r = ops::matmul(A, Bm).numel(); (void)r; });
    const float* pa = A.data<float>();
    const float* pb = c.linear ? W.data<float>() : Bm.data<float>();
    const auto direct = time_it([&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, c.linear ? CblasTrans : CblasNoTrans, int(rows), int(c.N),
                  int(c.K), 1.0f, pa, int(c.K), pb, c.linear ? int(c.K) : int(c.N), 0.0f, C.data<float>(), int(c.N));
    });
    const double flops = 2.0 * double(rows) * double(c.N) * double(c.K);
    const double ratio = ours.median_s / direct.median_s;
    table.add({c.name, fmt(ours.median_s * 1e3, 3), fmt(direct.median_s * 1e3, 3), fmt(flops / ours.median_s / 1e9, 1),
               fmt(flops / direct.median_s / 1e9, 1), fmt(ratio, 3)},
              {{"shape", c.name}, {"ours_ms", ours.median_s * 1e3}, {"cblas_ms", direct.median_s * 1e3},
               {"ours_gflops", flops / ours.median_s / 1e9}, {"cblas_gflops", flops / direct.median_s / 1e9},
               {"time_ratio", ratio}});
  }
  if (!opt.json) table.print("matmul: ours vs direct cblas_sgemm (median of runs; target ours/cblas <= 1.05)");
  return {{"name", "matmul"}, {"rows", table.json()}};
}

}  // namespace attnlab::bench
