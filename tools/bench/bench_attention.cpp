// `attnlab bench attention`: the three attention backends on this CPU, through
// nn::scaled_dot_product_attention (autograd included):
//   math      — materialized P on BLAS (kernels/cpu/attention_math.h), the honest baseline
//   flash     — tiled, online softmax, recomputing backward (kernels/cpu/flash_attention.h)
//   reference — the scalar loops (kernels/cpu/attention_reference.h), at short lengths only
// FLOPs follow flash-attention's convention: forward 4·B·S²·H·D (halved when causal), backward 2.5×
// the forward (fwd+bwd 3.5×); flash's recomputation and math's full causal matrix are not credited.
// A cblas_sgemm (1024³, all threads) measured right before each sequence length gives the
// machine's GEMM GFLOP/s for "% sgemm": on a shared machine the load changes during the sweep.
//
// Peak memory is read from the tracker: bytes above what was live before the call (Q, K, V, dO and
// the leaves' .grad from the timing runs are already live). Two figures, labelled apart:
//   peak  — everything the call allocates, including O, LSE and dQ/dK/dV, which every backend
//           must produce (the same bytes for all three);
//   extra — peak minus those outputs: what the algorithm itself holds (P and the backward's
//           scratch for math; for flash only its kernel-internal std::vector scratch, which the
//           tracker cannot see and which is added from flash_attention_scratch_bytes).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "autograd/functions.h"
#include "kernels/cpu/flash_attention.h"
#include "nn/attention/gqa.h"
#include "tensor/memory.h"
#include "trading/models/gqa_trader.h"
#include "tools/bench/benches.h"
#include "tools/bench/timing.h"

namespace attnlab::bench {

namespace {

using nn::AttentionBackend;

struct Run {
  double fwd_s = 0, fwdbwd_s = 0;
  double fwd_peak = 0, fwdbwd_peak = 0;    // tracker, bytes above the live baseline
  double fwd_extra = 0, fwdbwd_extra = 0;  // minus O + LSE (+ dQ, dK, dV), plus untracked scratch
  double untracked = 0;                    // flash's kernel-internal scratch in backward, bytes
};

// Bytes the tracker cannot see: flash's std::vector tiles, Delta and dQ accumulators.
double untracked_bytes(AttentionBackend backend, int64_t B, int64_t S, int64_t H, int64_t D, bool causal,
                       bool backward) {
  // math: P and its scratch are tensors allocated in sdpa.cpp; reference: two rows per thread.
  if (backend != AttentionBackend::flash) return 0;
  std::vector<float> x(1);
  auto p = kernels::attention_params<float>(B, S, S, H, H, D, x.data(), x.data(), x.data());
  p.causal = causal;
  return double(kernels::flash_attention_scratch_bytes(p, backward));
}

Run run_attention(int64_t B, int64_t S, int64_t H, int64_t D, bool causal, AttentionBackend backend) {
  Generator g(1);
  Tensor q = randn({B, S, H, D}, DType::f32, &g).set_requires_grad();
  Tensor k = randn({B, S, H, D}, DType::f32, &g).set_requires_grad();
  Tensor v = randn({B, S, H, D}, DType::f32, &g).set_requires_grad();
  const Tensor dout = randn({B, S, H, D}, DType::f32, &g);
  nn::AttentionOptions opt;
  opt.causal = causal;
  opt.backend = backend;
  const bool slow = S >= 4096 || backend == AttentionBackend::reference;
  const double min_s = slow ? 0.0 : 0.3;  // long sequences and the loops: few runs are enough
  const int runs = slow ? 2 : 3;
  Run r;
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
  r.fwd_peak = double(memory::stats().bytes_peak - live);
  memory::reset_peak();
  live = memory::stats().bytes_live;
  {
    const auto out = nn::scaled_dot_product_attention(q, k, v, opt).out;
    backward(out, dout);
  }
  r.fwdbwd_peak = double(memory::stats().bytes_peak - live);
  const double o_lse = 4.0 * (B * S * H * D + B * H * S), grads = 4.0 * 3 * B * S * H * D;
  r.untracked = untracked_bytes(backend, B, S, H, D, causal, true);
  r.fwd_extra = r.fwd_peak - o_lse + untracked_bytes(backend, B, S, H, D, causal, false);
  r.fwdbwd_extra = r.fwdbwd_peak - o_lse - grads + r.untracked;
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

std::string ratio(double num, double den, int precision = 2) { return den > 0 ? fmt(num / den, precision) : ""; }
double mib(double bytes) { return bytes / (1 << 20); }

}  // namespace

nlohmann::json bench_attention(const BenchOptions& opt) {
  if (opt.device != "cpu") return bench_attention_cuda(opt);
  const int64_t B = 1, H = 4, D = 64;
  const bool causal = false;
  std::vector<int64_t> seqs = opt.quick ? std::vector<int64_t>{256, 512} : std::vector<int64_t>{512, 1024, 2048, 4096, 8192, 16384};
  const int64_t math_max = opt.quick ? 512 : 4096;       // the S×S matrix: 4096 -> 256 MiB per call
  const int64_t reference_max = opt.quick ? 256 : 1024;  // the loops run at 4-10 GFLOP/s
  double gemm_lo = 1e30, gemm_hi = 0;
  Table speed({"seq", "backend", "sgemm GFLOP/s", "fwd ms", "fwd GFLOP/s", "fwd % sgemm", "fwd+bwd ms", "fwd+bwd GFLOP/s",
               "math/this fwd", "math/this fwd+bwd"});
  Table mem({"seq", "backend", "fwd peak MiB", "fwd+bwd peak MiB", "fwd+bwd extra MiB", "untracked MiB",
             "math/this fwd peak", "math/this fwd+bwd peak", "math/this fwd extra", "math/this fwd+bwd extra"});
  nlohmann::json rows = nlohmann::json::array();
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t si = 0; si < seqs.size(); ++si) {
    const int64_t S = seqs[si];
    std::cerr << "\r[bench attention] seq " << S << " (" << si + 1 << "/" << seqs.size() << "), "
              << fmt(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0)
              << " s elapsed" << std::flush;
    const double fwd_flops = 4.0 * B * double(S) * double(S) * H * D * (causal ? 0.5 : 1.0);
    const double gemm = sgemm_gflops();
    gemm_lo = std::min(gemm_lo, gemm), gemm_hi = std::max(gemm_hi, gemm);
    std::vector<AttentionBackend> backends;
    if (S <= math_max) backends.push_back(AttentionBackend::math);
    if (S <= reference_max) backends.push_back(AttentionBackend::reference);
    backends.push_back(AttentionBackend::flash);
    Run m;
    for (AttentionBackend backend : backends) {
      const Run r = run_attention(B, S, H, D, causal, backend);
      if (backend == AttentionBackend::math) m = r;
      const bool vs = S <= math_max && backend != AttentionBackend::math;  // ratio columns
      const double fwd_gf = fwd_flops / r.fwd_s / 1e9, fwdbwd_gf = 3.5 * fwd_flops / r.fwdbwd_s / 1e9;
      speed.add({std::to_string(S), trading::to_string(backend), fmt(gemm, 1), fmt(r.fwd_s * 1e3, 1), fmt(fwd_gf, 1),
                 fmt(100 * fwd_gf / gemm, 0) + "%", fmt(r.fwdbwd_s * 1e3, 1), fmt(fwdbwd_gf, 1),
                 vs ? ratio(m.fwd_s, r.fwd_s) : "", vs ? ratio(m.fwdbwd_s, r.fwdbwd_s) : ""},
                {});
      mem.add({std::to_string(S), trading::to_string(backend), fmt(mib(r.fwd_peak), 1), fmt(mib(r.fwdbwd_peak), 1),
               fmt(mib(r.fwdbwd_extra), 1), fmt(mib(r.untracked), 2), vs ? ratio(m.fwd_peak, r.fwd_peak, 1) : "",
               vs ? ratio(m.fwdbwd_peak, r.fwdbwd_peak, 1) : "", vs ? ratio(m.fwd_extra, r.fwd_extra, 1) : "",
               vs ? ratio(m.fwdbwd_extra, r.fwdbwd_extra, 1) : ""},
              {});
      rows.push_back({{"seq", S}, {"backend", trading::to_string(backend)}, {"sgemm_gflops", gemm},
                      {"fwd_ms", r.fwd_s * 1e3}, {"fwd_gflops", fwd_gf},
                      {"fwd_pct_sgemm", 100 * fwd_gf / gemm}, {"fwdbwd_ms", r.fwdbwd_s * 1e3},
                      {"fwdbwd_gflops", fwdbwd_gf}, {"fwd_peak_bytes", r.fwd_peak}, {"peak_bytes", r.fwdbwd_peak},
                      {"fwd_extra_bytes", r.fwd_extra}, {"fwdbwd_extra_bytes", r.fwdbwd_extra},
                      {"untracked_scratch_bytes", r.untracked}});
      if (vs) {
        auto& row = rows.back();
        row["math_over_this_fwd_time"] = m.fwd_s / r.fwd_s;
        row["math_over_this_fwdbwd_time"] = m.fwdbwd_s / r.fwdbwd_s;
        row["math_over_this_fwd_peak"] = m.fwd_peak / r.fwd_peak;
        row["math_over_this_fwdbwd_peak"] = m.fwdbwd_peak / r.fwdbwd_peak;
        row["math_over_this_fwd_extra"] = m.fwd_extra / r.fwd_extra;
        row["math_over_this_fwdbwd_extra"] = m.fwdbwd_extra / r.fwdbwd_extra;
      }
    }
  }
  std::cerr << "\r[bench attention] sweep done in "
            << fmt(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0) << " s          \n";
  // MHA vs GQA vs MQA at equal d_model: the module's forward and its KV bytes per token.
  Table variants({"variant", "n_kv_heads", "params", "fwd ms (B=4,T=1024)", "KV bytes/token/layer (f32)"});
  for (auto [vname, kv] : std::vector<std::pair<const char*, int64_t>>{{"MHA", 8}, {"GQA", 2}, {"MQA", 1}}) {
    manual_seed(3);
    nn::GroupedQueryAttention attn(256, 8, kv, 0.0);
    attn.eval();
    Generator g(4);
    const Tensor x = randn({4, opt.quick ? 128 : 1024, 256}, DType::f32, &g);
    NoGradGuard ng;
    const auto t = time_it([&] { attn.forward(x); }, 0.3, 3);
    variants.add({vname, std::to_string(kv), std::to_string(attn.num_parameters()), fmt(t.median_s * 1e3, 1),
                  std::to_string(2 * kv * 32 * 4)},
                 {{"variant", vname}, {"n_kv_heads", kv}, {"params", attn.num_parameters()}, {"fwd_ms", t.median_s * 1e3},
                  {"kv_bytes_per_token_layer", 2 * kv * 32 * 4}});
  }
  if (!opt.json) {
    const std::string shape = "B=1, H=4, D=64, non-causal, f32";
    speed.print("attention speed (" + shape + "; sgemm 1024^3 measured before each length; math up to " +
                std::to_string(math_max) + ", reference up to " + std::to_string(reference_max) +
                "; math/this > 1: this backend is faster than math)");
    mem.print("attention peak memory, MiB (" + shape + ").\n  peak: all the call allocates, incl. O, LSE and "
              "dQ/dK/dV (identical for every backend); extra: peak minus those outputs, plus untracked scratch.\n"
              "  untracked: flash's kernel-internal std::vector scratch in backward, invisible to the tracker, "
              "counted in extra only");
    variants.print("MHA vs GQA vs MQA at d_model 256, 8 query heads (flash backend)");
  }
  return {{"name", "attention"}, {"sgemm_gflops_min", gemm_lo}, {"sgemm_gflops_max", gemm_hi}, {"rows", rows},
          {"variants", variants.json()}};
}

}  // namespace attnlab::bench
