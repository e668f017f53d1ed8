// `attnlab bench attention --device cuda[:N] [--variant optimized|fast|reference|all] [--deterministic]
// [--baseline sdpa.json ...]`: the CUDA FlashAttention kernels (kernels/cuda/attention.h) in TFLOP/s
// with flash-attention's benchmark conventions, so the rows line up with tools/bench/sdpa_pytorch.py
// (PyTorch's scaled_dot_product_attention on the same GPU, same sweep, same columns and JSON keys):
//   batch x seq = 16k tokens, hidden 2048 (H = 2048 / D), head dim 64 and 128, seq 512 .. 16k,
//   causal off and on, bf16; forward FLOPs 4·B·S²·H·D (halved when causal), backward 2.5x forward.
// Each figure is the mean of `reps` launches between two CUDA events on the device's stream (after two
// warm-up calls); backward is timed alone, from the forward's O and LSE, with the atomic dQ (the
// default, as flash-attention) unless --deterministic. --variant all times the optimized and the fast
// tier in the same run (reference is slow: use it with --quick). With --baseline (sdpa_pytorch.py --json
// output, one file per SDPA backend) every row also gets ours / PyTorch's best, forward and backward.
// Without a GPU (or in a build without CUDA) the bench says why and returns a "skipped" row; the
// arguments (variant, baseline files) are checked first either way.
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/runtime.h"
#include "kernels/error.h"
#include "tools/bench/benches.h"
#include "tools/bench/sdpa_baseline.h"
#include "tools/bench/timing.h"
#ifdef ATTNLAB_WITH_CUDA
#include "kernels/cuda/check.cuh"
#endif

namespace attnlab::bench {

#ifdef ATTNLAB_WITH_CUDA
namespace {

namespace cuda = kernels::cuda;

// Mean milliseconds per call of fn over `reps` calls, by CUDA events around the batch.
template <class Fn>
double time_ms(int device, int reps, Fn&& fn) {
  cudaStream_t s = cuda::current_stream(device);
  fn(), fn();  // warm-up (and the first call's cudaFuncSetAttribute)
  cudaEvent_t start, stop;
  ATTNLAB_CUDA_CHECK(cudaEventCreate(&start));
  ATTNLAB_CUDA_CHECK(cudaEventCreate(&stop));
  ATTNLAB_CUDA_CHECK(cudaEventRecord(start, s));
  for (int r = 0; r < reps; ++r) fn();
  ATTNLAB_CUDA_CHECK(cudaEventRecord(stop, s));
  ATTNLAB_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  ATTNLAB_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  ATTNLAB_CUDA_CHECK(cudaEventDestroy(start));
  ATTNLAB_CUDA_CHECK(cudaEventDestroy(stop));
  return double(ms) / reps;
}

struct DeviceBuffer {
  void* ptr;
  size_t bytes;
  int device;
  DeviceBuffer(size_t n, int dev) : ptr(cuda::device_alloc(n, dev)), bytes(n), device(dev) {}
  ~DeviceBuffer() { cuda::device_free(ptr, bytes, device); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

}  // namespace
#endif

namespace {

std::vector<kernels::cuda::Variant> parse_variants(const std::string& v) {
  using kernels::cuda::Variant;
  if (v == "reference") return {Variant::reference};
  if (v == "optimized") return {Variant::optimized};
  if (v == "fast") return {Variant::fast};
  if (v == "all") return {Variant::optimized, Variant::fast};
  throw Error(cat("bench attention --variant: expected reference, optimized, fast or all, got '", v, "'"));
}

}  // namespace

nlohmann::json bench_attention_cuda(const BenchOptions& opt) {
  const auto variants = parse_variants(opt.variant);
  SdpaBaseline baseline;
  for (const std::string& f : opt.baselines) baseline.add_file(f);
  nlohmann::json skipped;
  const int device = bench_cuda_device(opt.device, "attention", &skipped);
  if (!opt.baselines.empty() && device < 0)
    std::cerr << "bench attention: PyTorch baseline read: " << baseline.size() << " bf16 configurations\n";
  if (device < 0) return skipped;
#ifdef ATTNLAB_WITH_CUDA
  const int64_t tokens = 16384, hidden = 2048;
  const std::vector<int64_t> seqs = opt.quick ? std::vector<int64_t>{512, 2048}
                                              : std::vector<int64_t>{512, 1024, 2048, 4096, 8192, 16384};
  const int reps = opt.quick ? 3 : 10;
  const auto dtype = cuda::ElemType::bf16;
  const size_t n = size_t(tokens * hidden), bytes = n * size_t(cuda::elem_size(dtype));

  // Every configuration holds 16k tokens x 2048 channels per tensor: one set of buffers serves all.
  DeviceBuffer q(bytes, device), k(bytes, device), v(bytes, device), o(bytes, device), dout(bytes, device);
  DeviceBuffer dq(bytes, device), dk(bytes, device), dv(bytes, device);
  DeviceBuffer lse(size_t(tokens * (hidden / 64)) * sizeof(float), device);  // B*H*S at the largest H
  {
    std::mt19937_64 rng(1);
    std::normal_distribution<float> N(0.f, 1.f);
    std::vector<uint16_t> host(n);
    for (void* dst : {q.ptr, k.ptr, v.ptr, dout.ptr}) {
      for (auto& x : host) x = kernels::f32_to_bf16(N(rng));
      cuda::copy_to_device(dst, host.data(), bytes, device);
    }
  }

  std::vector<std::string> columns = {"device", "dtype", "variant", "causal", "D",      "seq",
                                      "batch",  "fwd ms", "fwd TFLOP/s", "bwd ms", "bwd TFLOP/s"};
  if (!opt.baselines.empty())
    columns.insert(columns.end(), {"torch fwd TFLOP/s", "fwd ours/torch", "torch bwd TFLOP/s", "bwd ours/torch"});
  Table table(columns);
  const std::string name = cuda::device_name(device);
  for (bool causal : {false, true})
    for (int64_t D : {64, 128})
      for (int64_t S : seqs)
        for (cuda::Variant variant : variants) {
          const int64_t B = tokens / S, H = hidden / D;
          auto a = cuda::flash_args(dtype, B, S, S, H, H, D, q.ptr, k.ptr, v.ptr);
          a.causal = causal;
          float* l = static_cast<float*>(lse.ptr);
          const double fwd_ms = time_ms(device, reps, [&] { cuda::flash_forward(a, o.ptr, l, device, variant); });
          const double bwd_ms = time_ms(device, reps, [&] {
            cuda::flash_backward(a, o.ptr, dout.ptr, l, dq.ptr, dk.ptr, dv.ptr, device, variant, opt.deterministic);
          });
          const double fwd_flops = 4.0 * double(B) * double(S) * double(S) * double(H) * double(D) / (causal ? 2 : 1);
          const double bwd_flops = 2.5 * fwd_flops;
          const double fwd_tf = fwd_flops / (fwd_ms * 1e-3) / 1e12, bwd_tf = bwd_flops / (bwd_ms * 1e-3) / 1e12;
          std::vector<std::string> cells = {name,          "bf16",        cuda::variant_name(variant),
                                            causal ? "yes" : "no",        std::to_string(D),
                                            std::to_string(S),            std::to_string(B),
                                            fmt(fwd_ms, 3), fmt(fwd_tf, 1), fmt(bwd_ms, 3), fmt(bwd_tf, 1)};
          nlohmann::json row = {{"impl", std::string("attnlab-") + cuda::variant_name(variant)},
                                {"device", name}, {"dtype", "bf16"}, {"causal", causal}, {"headdim", D},
                                {"seqlen", S}, {"batch", B}, {"nheads", H}, {"deterministic", opt.deterministic},
                                {"fwd_ms", fwd_ms}, {"fwd_tflops", fwd_tf}, {"bwd_ms", bwd_ms}, {"bwd_tflops", bwd_tf}};
          if (!opt.baselines.empty()) {
            const SdpaFigures* t = baseline.find(causal, D, S);
            if (t && t->fwd_tflops > 0 && t->bwd_tflops > 0) {
              cells.insert(cells.end(), {fmt(t->fwd_tflops, 1), fmt(fwd_tf / t->fwd_tflops, 2), fmt(t->bwd_tflops, 1),
                                         fmt(bwd_tf / t->bwd_tflops, 2)});
              row["torch_fwd_tflops"] = t->fwd_tflops, row["torch_fwd_impl"] = t->fwd_impl;
              row["torch_bwd_tflops"] = t->bwd_tflops, row["torch_bwd_impl"] = t->bwd_impl;
              row["fwd_ratio"] = fwd_tf / t->fwd_tflops, row["bwd_ratio"] = bwd_tf / t->bwd_tflops;
              if (!t->device.empty() && t->device != name)
                std::cerr << "bench attention: the baseline ran on " << t->device << ", this run on " << name << "\n";
            } else {
              cells.insert(cells.end(), {"-", "-", "-", "-"});
            }
          }
          table.add(cells, row);
        }
  if (!opt.json)
    table.print("attention on " + name + ": attnlab FlashAttention (" + opt.variant +
                (opt.deterministic ? ", deterministic backward" : "") +
                "), 16k tokens, hidden 2048; PyTorch: tools/bench/sdpa_pytorch.py (--baseline its --json)");
  return table.json();
#else
  return {};  // unreachable: device_count() is 0 without CUDA
#endif
}

}  // namespace attnlab::bench
