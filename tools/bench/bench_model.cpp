// `attnlab bench model`: the seeds' benchmark_inference for GQATrader. For each config and each
// attention variant (MHA: n_kv_heads = n_heads, GQA, MQA: n_kv_heads = 1) it measures
//   - one training step split into forward (+ loss), backward and optimizer (AdamW step + zero_grad),
//   - batch inference (eval, no grad): ms per batch and samples/s,
//   - batch-1 latency (one window, eval, no grad),
// and reports the parameter count and the KV-cache bytes of one sequence of seq positions (f32), plus
// the seed's get_kv_cache_size() figure (f16, which omits the sequence length: bytes per position).
// The seed config is heavy on a few CPU cores: its training step is timed once, without warm-up, and
// its inference twice after one warm-up. --quick runs only the small config.
// Inputs are random N(0, 1) windows [B, T, F]; timings do not depend on the values.
// --device cuda[:N] instead measures training samples/s of the seed config on that GPU per precision
// (f32, bf16 and f16 autocast), and prints a skip message when no GPU is usable.
#include <algorithm>
#include <chrono>
#include <iostream>

#include "autograd/autocast.h"
#include "autograd/functions.h"
#include "kernels/cuda/runtime.h"
#include "nn/optim/adamw.h"
#include "nn/optim/clip_grad.h"
#include "nn/optim/grad_scaler.h"
#include "tensor/creation.h"
#include "tensor/memory.h"
#include "tools/bench/benches.h"
#include "tools/bench/timing.h"
#include "trading/models/gqa_trader.h"

namespace attnlab::bench {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct ModelCase {
  std::string name;
  int64_t d_model, n_heads, gqa_kv, n_layers, d_ff, seq, batch;
  bool heavy;  // one timed training step and two inference runs
};
const ModelCase kSmall{"small", 64, 4, 2, 2, 256, 64, 32, false};
const ModelCase kSeed{"seed", 256, 8, 2, 6, 1024, 512, 32, true};  // issue 8's seed config

struct StepTimes {
  double fwd_s = 0, bwd_s = 0, opt_s = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// `warmup` untimed steps (AdamW allocates its state in the first), then `runs` timed steps; per-phase
// medians.
StepTimes time_train_step(trading::GQATrader& model, const Tensor& x, const Tensor& y, int warmup, int runs) {
  model.train();
  optim::AdamW opt(model.parameters(), 1e-4);
  std::vector<double> f, b, o;
  for (int i = 0; i < warmup + runs; ++i) {
    auto t0 = Clock::now();
    const Tensor loss = model.compute_loss(model.forward(x).pred, y);
    loss.item<double>();
    const double tf = since(t0);
    t0 = Clock::now();
    backward(loss);
    const double tb = since(t0);
    t0 = Clock::now();
    opt.step();
    opt.zero_grad();
    const double to = since(t0);
    if (i < warmup) continue;
    f.push_back(tf);
    b.push_back(tb);
    o.push_back(to);
  }
  return {median(f), median(b), median(o)};
}

// ---- training throughput on a GPU (issue 8) ---------------------------------------------------------
// The seed config (C256 H8 Hkv2 L6 T512 B32; --quick: the small one) trained with the trainer's step:
// autocast forward + loss, backward, clip_grad_norm_(1.0), AdamW (f16 adds the GradScaler). Warm-up
// steps first (the caching allocator and AdamW's state reach their steady state), then timed steps
// closed by a device synchronize. tools/bench/train_pytorch.py runs the same model and step in PyTorch.
nlohmann::json train_throughput(const BenchOptions& opt) {
  namespace cuda = kernels::cuda;
  nlohmann::json skipped;
  const int index = bench_cuda_device(opt.device, "model", &skipped);
  if (index < 0) return skipped;
  const Device dev{DeviceType::cuda, index};
  const ModelCase& c = opt.quick ? kSmall : kSeed;
  const int64_t F = 25, n_out = 5;
  const int warmup = 3, steps = opt.quick ? 5 : 20;
  Generator g(7);
  const Tensor x = ops::to_device(randn({c.batch, c.seq, F}, DType::f32, &g), dev);
  const Tensor y = ops::to_device(randn({c.batch, n_out}, DType::f32, &g), dev);
  Table table({"config", "precision", "params", "step ms", "samples/s", "peak GiB"});
  for (DType precision : {DType::f32, DType::bf16, DType::f16}) {
    trading::TraderConfig mc;
    mc.input_dim = F, mc.d_model = c.d_model, mc.n_heads = c.n_heads, mc.n_kv_heads = c.gqa_kv;
    mc.n_layers = c.n_layers, mc.d_ff = c.d_ff, mc.max_seq_len = c.seq, mc.n_outputs = n_out;
    mc.dropout = 0.0;  // the GPU attention kernels have no dropout (yet); train_pytorch.py's default too
    manual_seed(1);
    trading::GQATrader model(mc);
    model.to(dev);
    model.train();
    const std::vector<Tensor> params = model.parameters();
    optim::AdamW adamw(params, 1e-4);
    optim::GradScalerOptions so;
    so.enabled = precision == DType::f16;
    optim::GradScaler scaler(so);
    auto step = [&] {
      adamw.zero_grad();
      Tensor loss;
      {
        autocast::AutocastGuard ac(precision);  // f32: off
        loss = model.compute_loss(model.forward(x).pred, y);
      }
      backward(scaler.scale(loss));
      scaler.unscale_(params);
      optim::clip_grad_norm_(params, 1.0);  // reads the norm on the host: one sync per step, as the trainer
      scaler.step(adamw);
      scaler.update();
    };
    for (int i = 0; i < warmup; ++i) step();
    cuda::synchronize(index);
    memory::reset_peak(dev);
    const auto t0 = Clock::now();
    for (int i = 0; i < steps; ++i) step();
    cuda::synchronize(index);
    const double s = since(t0) / steps;
    const double peak_gib = double(memory::stats(dev).bytes_peak) / double(1 << 30);
    const std::string cfg = c.name + " (C" + std::to_string(c.d_model) + " H" + std::to_string(c.n_heads) + " Hkv" +
                            std::to_string(c.gqa_kv) + " L" + std::to_string(c.n_layers) + " T" +
                            std::to_string(c.seq) + " B" + std::to_string(c.batch) + ")";
    table.add({cfg, dtype_name(precision), std::to_string(model.num_parameters()), fmt(s * 1e3, 2),
               fmt(double(c.batch) / s, 1), fmt(peak_gib, 2)},
              {{"config", c.name}, {"device", dev.str()}, {"gpu", cuda::device_name(index)},
               {"precision", dtype_name(precision)}, {"d_model", c.d_model}, {"n_heads", c.n_heads},
               {"n_kv_heads", c.gqa_kv}, {"n_layers", c.n_layers}, {"d_ff", c.d_ff}, {"seq", c.seq},
               {"batch", c.batch}, {"params", model.num_parameters()}, {"step_ms", s * 1e3},
               {"train_samples_per_s", double(c.batch) / s}, {"peak_bytes", memory::stats(dev).bytes_peak}});
  }
  if (!opt.json)
    table.print("GQATrader training throughput on " + dev.str() + " = " + cuda::device_name(index) +
                " (step = autocast fwd+loss, backward, clip 1.0, AdamW; " + std::to_string(steps) +
                " timed steps after " + std::to_string(warmup) + " warm-up)");
  return {{"name", "model"}, {"device", dev.str()}, {"rows", table.json()}};
}

}  // namespace

nlohmann::json bench_model(const BenchOptions& opt) {
  if (opt.device != "cpu") return train_throughput(opt);
  const int64_t F = 25, n_out = 5;
  std::vector<ModelCase> cases;
  cases.push_back(kSmall);
  if (!opt.quick) cases.push_back(kSeed);
  Table table({"config", "attn", "kv heads", "params", "fwd ms", "bwd ms", "optim ms", "step ms", "infer ms/batch",
               "samples/s", "B=1 ms", "KV MiB/seq f32", "seed KV B (f16)"});
  const auto t_all = Clock::now();
  for (const ModelCase& c : cases) {
    const std::vector<std::pair<std::string, int64_t>> variants = {
        {"MHA", c.n_heads}, {"GQA", c.gqa_kv}, {"MQA", 1}};
    Generator g(7);
    const Tensor x = randn({c.batch, c.seq, F}, DType::f32, &g);
    const Tensor y = randn({c.batch, n_out}, DType::f32, &g);
    const Tensor x1 = randn({1, c.seq, F}, DType::f32, &g);
    for (const auto& [attn, kv] : variants) {
      trading::TraderConfig mc;
      mc.input_dim = F;
      mc.d_model = c.d_model;
      mc.n_heads = c.n_heads;
      mc.n_kv_heads = kv;
      mc.n_layers = c.n_layers;
      mc.d_ff = c.d_ff;
      mc.max_seq_len = c.seq;
      mc.n_outputs = n_out;
      manual_seed(1);
      trading::GQATrader model(mc);
      auto progress = [&](const char* what) {
        if (c.heavy)
          std::cerr << "[bench model] " << c.name << " " << attn << " (kv " << kv << "): " << what << ", "
                    << fmt(since(t_all), 0) << " s elapsed\n";
      };
      progress("training step");
      const StepTimes st = time_train_step(model, x, y, c.heavy ? 0 : 1, c.heavy ? 1 : 5);
      model.eval();
      Timing inf, one;
      {
        NoGradGuard ng;
        progress("batch inference");
        inf = time_it([&] { model.forward(x).pred; }, c.heavy ? 0.0 : 0.3, c.heavy ? 2 : 5);
        progress("batch-1 latency");
        one = time_it([&] { model.forward(x1).pred; }, c.heavy ? 0.0 : 0.3, c.heavy ? 3 : 10);
      }
      const double step_s = st.fwd_s + st.bwd_s + st.opt_s;
      const int64_t params = model.num_parameters();
      const int64_t kv_seq_f32 = model.kv_cache_bytes_per_token(4) * c.seq;
      const int64_t seed_kv_f16 = model.kv_cache_bytes_per_token(2);
      const std::string cfg = c.name + " (C" + std::to_string(c.d_model) + " H" + std::to_string(c.n_heads) + " L" +
                              std::to_string(c.n_layers) + " T" + std::to_string(c.seq) + " B" +
                              std::to_string(c.batch) + ")";
      table.add({cfg, attn, std::to_string(kv), std::to_string(params), fmt(st.fwd_s * 1e3, 1), fmt(st.bwd_s * 1e3, 1),
                 fmt(st.opt_s * 1e3, 1), fmt(step_s * 1e3, 1), fmt(inf.median_s * 1e3, 1),
                 fmt(double(c.batch) / inf.median_s, 0), fmt(one.median_s * 1e3, 2),
                 fmt(double(kv_seq_f32) / (1 << 20), 2), std::to_string(seed_kv_f16)},
                {{"config", c.name}, {"d_model", c.d_model}, {"n_heads", c.n_heads}, {"n_layers", c.n_layers},
                 {"d_ff", c.d_ff}, {"seq", c.seq}, {"batch", c.batch}, {"input_dim", F}, {"n_outputs", n_out},
                 {"attention", attn}, {"n_kv_heads", kv}, {"params", params}, {"train_fwd_ms", st.fwd_s * 1e3},
                 {"train_bwd_ms", st.bwd_s * 1e3}, {"train_optim_ms", st.opt_s * 1e3}, {"train_step_ms", step_s * 1e3},
                 {"infer_batch_ms", inf.median_s * 1e3}, {"infer_samples_per_s", double(c.batch) / inf.median_s},
                 {"latency_b1_ms", one.median_s * 1e3}, {"kv_bytes_per_seq_f32", kv_seq_f32},
                 {"seed_kv_bytes_f16", seed_kv_f16}});
    }
  }
  if (!opt.json)
    table.print("GQATrader MHA vs GQA vs MQA (F=25 inputs, 5 outputs, flash backend, f32; training step = "
                "fwd+loss / backward / AdamW; inference and B=1 in eval without grad; seed KV = n_layers*2*Hkv*D*2 "
                "bytes, the seed's per-position figure)");
  return {{"name", "model"}, {"rows", table.json()}};
}

}  // namespace attnlab::bench
