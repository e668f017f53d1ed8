// `attnlab bench attention`: math (materialized scores) vs flash (tiled, online softmax) attention on
// this CPU. FLOPs follow flash-attention's convention: forward 4·B·S²·H·D (halved when causal),
// backward 2.5× the forward. Peak memory is read from the tracker (extra bytes above what was live
// before the call). A cblas_sgemm measured in the same run gives the machine's GEMM GFLOP/s.
#include <cblas.h>

#include <chrono>
#include <iostream>

#include "autograd/functions.h"
#include "nn/attention/gqa.h"
#include "tensor/memory.h"
#include "tools/bench/benches.h"
#include "tools/bench/timing.h"

namespace attnlab::bench {

namespace {

struct Run {
  double fwd_s, fwdbwd_s;
  double fwd_peak_bytes;  // forward only: what the attention itself keeps (P for math; O and LSE for flash)
  double peak_bytes;      // forward + backward, including dQ/dK/dV (the same for both backends)
};

Run run_attention(int64_t B, int64_t S, int64_t H, int64_t D, bool causal, nn::AttentionBackend backend) {
  Generator g(1);
  Tensor q = randn({B, S, H, D}, DType::f32, &g).set_requires_grad();
  Tensor k = randn({B, S, H, D}, DType::f32, &g).set_requires_grad();
  Tensor v = randn({B, S, H, D}, DType::f32, &g).set_requires_grad();
  const Tensor dout = randn({B, S, H, D}, DType::f32, &g);
  nn::AttentionOptions opt;
  opt.causal = causal;
  opt.backend = backend;
  const double min_s = S >= 4096 ? 0.0 : 0.3;  // long sequences: few runs are enough
  const int runs = S >= 4096 ? 2 : 3;
  Run r{};
  {
    NoGradGuard ng;
    r.fwd_s = time_it([&] { nn::scaled_dot_product_attention(q, k, v, opt); }, min_s, runs).median_s;
  }
  r.fwdbwd_s = time_it([&] {
                 const auto out = nn::scaled_dot_product_attention(q, k, v, opt).out;
                 backward(out, dout);
               }, min_s, runs).median_s;
  memory::reset_peak();
  int64_t live = memory::stats().bytes_live;
  {
    NoGradGuard ng;
    const auto out = nn::scaled_dot_product_attention(q, k, v, opt).out;
  }
  r.fwd_peak_bytes = double(memory::stats().bytes_peak - live);
  memory::reset_peak();
  live = memory::stats().bytes_live;
  {
    const auto out = nn::scaled_dot_product_attention(q, k, v, opt).out;
    backward(out, dout);
  }
  r.peak_bytes = double(memory::stats().bytes_peak - live);
  return r;
}

double sgemm_gflops() {
  const int n = 1024;
  Generator g(2);
  const Tensor a = randn({n, n}, DType::f32, &g), b = randn({n, n}, DType::f32, &g);
  Tensor c = Tensor::empty({n, n});
  const auto t = time_it([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data<float>(), n, b.data<float>(), n,
                0.f, c.data<float>(), n);
  });
  return 2.0 * n * n * n / t.median_s / 1e9;
}

}  // namespace

nlohmann::json bench_attention(const BenchOptions& opt) {
  const int64_t B = 1, H = 4, D = 64;
  const bool causal = false;
  const double gemm = sgemm_gflops();
  std::vector<int64_t> seqs = opt.quick ? std::vector<int64_t>{256, 512} : std::vector<int64_t>{512, 1024, 2048, 4096, 8192, 16384};
  const int64_t math_max = opt.quick ? 512 : 4096;  // the math path's S×S matrix: 4096 -> 256 MiB per call
  Table table({"seq", "backend", "fwd ms", "fwd GFLOP/s", "fwd % sgemm", "fwd+bwd ms", "fwd+bwd GFLOP/s", "fwd peak MiB",
               "fwd+bwd peak MiB", "math/flash time", "math/flash fwd mem", "math/flash fwd+bwd mem"});
  nlohmann::json rows = nlohmann::json::array();
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t si = 0; si < seqs.size(); ++si) {
    const int64_t S = seqs[si];
    std::cerr << "\r[bench attention] seq " << S << " (" << si + 1 << "/" << seqs.size() << "), "
              << fmt(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0)
              << " s elapsed" << std::flush;
    const double fwd_flops = 4.0 * B * double(S) * double(S) * H * D * (causal ? 0.5 : 1.0);
    const Run f = run_attention(B, S, H, D, causal, nn::AttentionBackend::flash);
    Run m{};
    const bool with_math = S <= math_max;
    if (with_math) m = run_attention(B, S, H, D, causal, nn::AttentionBackend::math);
    auto add = [&](const char* name, const Run& r, bool ratios) {
      table.add({std::to_string(S), name, fmt(r.fwd_s * 1e3, 1), fmt(fwd_flops / r.fwd_s / 1e9, 1),
                 fmt(100 * fwd_flops / r.fwd_s / 1e9 / gemm, 0) + "%", fmt(r.fwdbwd_s * 1e3, 1),
                 fmt(3.5 * fwd_flops / r.fwdbwd_s / 1e9, 1), fmt(r.fwd_peak_bytes / (1 << 20), 1),
                 fmt(r.peak_bytes / (1 << 20), 1), ratios ? fmt(m.fwdbwd_s / f.fwdbwd_s, 2) : "",
                 ratios ? fmt(m.fwd_peak_bytes / f.fwd_peak_bytes, 1) : "", ratios ? fmt(m.peak_bytes / f.peak_bytes, 1) : ""},
                {{"seq", S}, {"backend", name}, {"fwd_ms", r.fwd_s * 1e3}, {"fwd_gflops", fwd_flops / r.fwd_s / 1e9},
                 {"fwdbwd_ms", r.fwdbwd_s * 1e3}, {"fwdbwd_gflops", 3.5 * fwd_flops / r.fwdbwd_s / 1e9},
                 {"fwd_peak_bytes", r.fwd_peak_bytes}, {"peak_bytes", r.peak_bytes}});
    };
    if (with_math) add("math", m, false);
    add("flash", f, with_math);
  }
  std::cerr << "\r[bench attention] sweep done in "
            << fmt(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0) << " s          \n";
  // MHA vs GQA vs MQA at equal d_model: the module's forward and its KV bytes per token.
  Table variants({"variant", "n_kv_heads", "params", "fwd ms (B=4,T=1024)", "KV bytes/token/layer (f32)"});
  for (auto [name, kv] : std::vector<std::pair<const char*, int64_t>>{{"MHA", 8}, {"GQA", 2}, {"MQA", 1}}) {
    manual_seed(3);
    nn::GroupedQueryAttention attn(256, 8, kv, 0.0);
    attn.eval();
    Generator g(4);
    const Tensor x = randn({4, opt.quick ? 128 : 1024, 256}, DType::f32, &g);
    NoGradGuard ng;
    const auto t = time_it([&] { attn.forward(x); }, 0.3, 3);
    variants.add({name, std::to_string(kv), std::to_string(attn.num_parameters()), fmt(t.median_s * 1e3, 1),
                  std::to_string(2 * kv * 32 * 4)},
                 {{"variant", name}, {"n_kv_heads", kv}, {"params", attn.num_parameters()}, {"fwd_ms", t.median_s * 1e3},
                  {"kv_bytes_per_token_layer", 2 * kv * 32 * 4}});
  }
  if (!opt.json) {
    table.print("attention: math vs flash (B=1, H=4, D=64, non-causal, f32; sgemm reference " + fmt(gemm, 1) +
                " GFLOP/s; math stops at " + std::to_string(math_max) + ")");
    variants.print("MHA vs GQA vs MQA at d_model 256, 8 query heads (flash backend)");
  }
  return {{"name", "attention"}, {"sgemm_gflops", gemm}, {"rows", table.json()}, {"variants", variants.json()}};
}

}  // namespace attnlab::bench
