// `attnlab bench matmul`: our matmul (a Tensor op: shape checks, output allocation, layout dispatch)
// against a direct cblas_sgemm on the same buffers. The ratio is our overhead; target <= 5%.
// `--device cuda[:N]`: ops::matmul on the GPU against the raw cuBLAS call it makes
// (kernels::cuda::gemm_strided_batched = one cublasGemmStridedBatchedEx) on preallocated buffers, f32 and
// bf16, in TFLOP/s; each timed run queues 10 products and waits for the GPU once.
#include <cblas.h>

#include <iostream>

#include "kernels/cuda/ops.h"
#include "kernels/cuda/runtime.h"
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

namespace {
nlohmann::json bench_matmul_cuda(const BenchOptions& opt) {
  namespace cuda = kernels::cuda;
  nlohmann::json skipped;
  const int index = bench_cuda_device(opt.device, "matmul", &skipped);
  if (index < 0) return skipped;
  const Device dev{DeviceType::cuda, index};
  std::vector<Case> cases = {
      {"square 1024", 0, 1024, 1024, 1024, false},
      {"square 4096", 0, 4096, 4096, 4096, false},
      {"square 8192", 0, 8192, 8192, 8192, false},
      {"[B*T,C]x[C,4C] C=256", 0, 16384, 256, 1024, false},
      {"Linear [B,T,C]·W^T C=256", 32, 512, 256, 1024, true},
      {"Linear [B,T,4C]·W^T C=256", 32, 512, 1024, 256, true},
  };
  if (opt.quick) cases.resize(2);
  constexpr int kReps = 10;
  Table table({"shape", "dtype", "ours ms", "cuBLAS ms", "ours TFLOP/s", "cuBLAS TFLOP/s", "ours/cuBLAS time"});
  Generator g(1);
  for (const auto& c : cases)
    for (DType dt : {DType::f32, DType::bf16}) {
      const int64_t rows = (c.batch ? c.batch : 1) * c.M;
      const Tensor A = ops::to_dtype(randn({rows, c.K}, DType::f32, &g), dt).to(dev);
      const Tensor W = ops::to_dtype(randn({c.N, c.K}, DType::f32, &g), dt).to(dev);
      const Tensor A3 = c.batch ? ops::reshape(A, {c.batch, c.M, c.K}) : A;
      const Tensor Bm = c.linear ? ops::transpose(W, 0, 1) : ops::contiguous(ops::transpose(W, 0, 1));  // [K, N]
      Tensor C = Tensor::empty({rows, c.N}, dt, dev);
      const auto ours = time_it([&] {
        for (int r = 0; r < kReps; ++r) (void)ops::matmul(A3, Bm);
        cuda::synchronize(index);
      });
      const auto direct = time_it([&] {
        for (int r = 0; r < kReps; ++r)
          cuda::gemm_strided_batched(dt, false, c.linear, rows, c.N, c.K, A.raw_data(), c.K, 0,
                                     (c.linear ? W : Bm).raw_data(), c.linear ? c.K : c.N, 0, C.raw_data(), c.N, 0,
                                     1, index);
        cuda::synchronize(index);
      });
      const double flops = 2.0 * double(rows) * double(c.N) * double(c.K) * kReps;
      const double ratio = ours.median_s / direct.median_s;
      table.add({c.name, dtype_name(dt), fmt(ours.median_s * 1e3 / kReps, 3), fmt(direct.median_s * 1e3 / kReps, 3),
                 fmt(flops / ours.median_s / 1e12, 1), fmt(flops / direct.median_s / 1e12, 1), fmt(ratio, 3)},
                {{"shape", c.name}, {"dtype", dtype_name(dt)}, {"ours_ms", ours.median_s * 1e3 / kReps},
                 {"cublas_ms", direct.median_s * 1e3 / kReps}, {"ours_tflops", flops / ours.median_s / 1e12},
                 {"cublas_tflops", flops / direct.median_s / 1e12}, {"time_ratio", ratio}});
    }
  if (!opt.json)
    table.print("matmul on " + cuda::device_name(index) + ": ops::matmul vs the raw cuBLAS call (median of runs)");
  return {{"name", "matmul"}, {"device", opt.device}, {"rows", table.json()}};
}
}  // namespace

nlohmann::json bench_matmul(const BenchOptions& opt) {
  if (opt.device != "cpu") return bench_matmul_cuda(opt);
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
