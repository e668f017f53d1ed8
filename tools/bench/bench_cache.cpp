// `attnlab bench cache`: KV caches on the seed's model size (d_model 256, 8 heads, 2 KV heads, 6 layers,
// d_ff 1024, 25 inputs, 5 outputs; learned positions; f32), the seed's benchmark_kv_cache and its tables.
//   (a) full recompute of a context vs one cached decode step, contexts 256..4096, and the speedup
//   (b) cache bytes per sequence for f32 / bf16 / int8 / int4 / fp8, MHA vs GQA vs MQA, read from the
//       caches' own bytes_used() after filling them — and the seeds' size tables recomputed exactly
//   (c) the attention-output error of each quantized kind (random N(0,1) q/K/V at the seed's head
//       dims) and the error of the model's cached prediction against the f32 cache
//   (d) decode-step time of every cache kind at one context, against the contiguous f32 cache
// Step times are medians over `steps` consecutive single-position steps after a warm-up step; the
// context grows by that many positions (a few per thousand).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include "autograd/functions.h"
#include "nn/attention/cache_factory.h"
#include "tensor/creation.h"
#include "tools/bench/benches.h"
#include "tools/bench/timing.h"
#include "trading/models/gqa_trader.h"

namespace attnlab::bench {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

constexpr int64_t kInputs = 25;

trading::TraderConfig seed_config(int64_t n_kv_heads, int64_t max_seq_len) {
  trading::TraderConfig c;
  c.input_dim = kInputs, c.d_model = 256, c.n_heads = 8, c.n_kv_heads = n_kv_heads, c.n_layers = 6, c.d_ff = 1024;
  c.n_outputs = 5, c.max_seq_len = max_seq_len, c.dropout = 0.0;
  c.causal = true;  // cached decoding
  return c;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median time of `steps` single-position decode steps (after one warm-up step) from x's rows.
double step_time(trading::GQATrader& m, nn::KVCache& cache, const Tensor& x, int64_t first, int steps) {
  std::vector<double> t;
  for (int s = 0; s <= steps; ++s) {
    const auto t0 = Clock::now();
    m.forward(narrow(x, 1, first + s, 1), &cache).pred;
    if (s > 0) t.push_back(since(t0));
  }
  return median(t);
}

// Fills `cache` with the K/V a contiguous cache holds (same positions), layer by layer.
void copy_into(nn::KVCache& cache, const nn::ContiguousKVCache& from) {
  for (int64_t l = 0; l < from.num_layers(); ++l) {
    const auto [k, v] = from.get(l);
    cache.append(l, k, v);
  }
}

double rel_error(const Tensor& a, const Tensor& ref) {
  const double num = std::sqrt(ops::sum(ops::unary(ops::UnaryOp::square, ops::sub(a, ref))).item<double>());
  return num / std::sqrt(ops::sum(ops::unary(ops::UnaryOp::square, ref)).item<double>());
}

std::string mib(double bytes) { return fmt(bytes / (1 << 20), 2); }

}  // namespace

nlohmann::json bench_cache(const BenchOptions& opt) {
  NoGradGuard ng;
  const std::vector<int64_t> contexts = opt.quick ? std::vector<int64_t>{256, 512}
                                                  : std::vector<int64_t>{256, 512, 1024, 2048, 4096};
  const int steps = opt.quick ? 5 : 20;
  const int64_t max_ctx = contexts.back() + steps + 1;
  manual_seed(1);
  trading::GQATrader model(seed_config(2, max_ctx));
  model.eval();
  Generator g(2);
  const Tensor x = randn({1, max_ctx, kInputs}, DType::f32, &g);
  nlohmann::json out = {{"name", "cache"}};
  const auto t_all = Clock::now();
  auto progress = [&](const std::string& what) {
    if (!opt.json) std::cerr << "[bench cache] " << what << ", " << fmt(since(t_all), 0) << " s elapsed\n";
  };

  // (a) recompute vs cached step
  Table speed({"context", "recompute ms", "cached step ms", "speedup"});
  for (int64_t ctx : contexts) {
    progress("context " + std::to_string(ctx));
    const Tensor window = narrow(x, 1, 0, ctx);
    const int runs = ctx >= 2048 ? 2 : 5;
    const Timing full = time_it([&] { model.forward(window).pred; }, 0.0, runs);
    auto cache = model.make_cache(1, ctx + steps + 1);
    model.forward(narrow(x, 1, 0, ctx - 1), cache.get());
    const double step = step_time(model, *cache, x, ctx - 1, steps);
    speed.add({std::to_string(ctx), fmt(full.median_s * 1e3, 1), fmt(step * 1e3, 3), fmt(full.median_s / step, 0) + "x"},
              {{"context", ctx}, {"recompute_ms", full.median_s * 1e3}, {"cached_step_ms", step * 1e3},
               {"speedup", full.median_s / step}});
  }
  out["speed"] = speed.json();

  // (b) bytes: every kind filled to one context, for MHA / GQA / MQA
  const int64_t bytes_ctx = opt.quick ? 512 : 2048;
  progress("cache sizes");
  Table sizes({"kind", "MHA (8 KV) MiB", "GQA (2 KV) MiB", "MQA (1 KV) MiB", "bytes/position/layer (GQA)", "vs f32"});
  const std::vector<std::string> kinds{"contiguous", "bf16", "int8", "int4", "fp8", "int8-kivi"};
  double f32_gqa = 0;
  for (const std::string& kind : kinds) {
    std::vector<std::string> row{kind == "contiguous" ? "f32" : kind};
    nlohmann::json j = {{"kind", kind}, {"context", bytes_ctx}};
    double gqa_bytes = 0;
    for (int64_t kv : {int64_t(8), int64_t(2), int64_t(1)}) {
      nn::CacheSpec spec;
      spec.kind = kind, spec.max_len = bytes_ctx;
      auto cache = nn::make_kv_cache(spec, 6, 1, kv, 32);
      Generator gk(3);
      for (int64_t l = 0; l < 6; ++l) {
        const Tensor k = randn({1, bytes_ctx, kv, 32}, DType::f32, &gk);
        cache->append(l, k, k);
      }
      const double b = double(cache->bytes_used());
      row.push_back(mib(b));
      j["bytes_kv" + std::to_string(kv)] = cache->bytes_used();
      if (kv == 2) gqa_bytes = b;
    }
    if (kind == "contiguous") f32_gqa = gqa_bytes;
    row.push_back(fmt(gqa_bytes / double(bytes_ctx * 6), 1));
    row.push_back(fmt(f32_gqa / gqa_bytes, 2) + "x");
    sizes.add(row, j);
  }
  out["sizes"] = sizes.json();

  // The seeds' size tables, recomputed: bytes = B * S * layers * 2 (K, V) * Hkv * D * bytes per value.
  Table seeds({"seed table (chapter)", "setting", "seed says", "exact f16 bytes", "exact f16", "note"});
  struct SeedRow {
    std::string chapter, setting, says;
    double B, S, layers, hkv, D;
    std::string note;
  };
  const std::vector<SeedRow> rows = {
      {"59: MHA KV cache size", "Llama-2-7B-like, B 8, S 4096, 32 heads, D 128, per layer", "268 MB", 8, 4096, 1, 32, 128,
       "the seed's product counts values, not bytes (x2 at f16)"},
      {"59: KV comparison", "MHA 8 heads, D 128, S 4096, per layer", "8 MB", 1, 4096, 1, 8, 128, "counts values"},
      {"59: KV comparison", "GQA 4 groups", "4 MB", 1, 4096, 1, 4, 128, "counts values"},
      {"59: KV comparison", "GQA 2 groups", "2 MB", 1, 4096, 1, 2, 128, "counts values"},
      {"59: KV comparison", "MQA", "1 MB", 1, 4096, 1, 1, 128, "counts values"},
      {"59: 50 symbols", "MHA, B 50, S 512, 8 heads, D 128, per layer", "52 MB", 50, 512, 1, 8, 128, "counts values"},
      {"59: 50 symbols", "GQA 2 groups", "13 MB", 50, 512, 1, 2, 128, "counts values"},
      {"60: LLaMA-2 13B", "40 layers, 40 heads, D 128, per token", "819,200 B", 1, 1, 40, 40, 128, "exact"},
      {"60: LLaMA-2 13B", "context 256", "~200 MB", 1, 256, 40, 40, 128, "MB = 10^6 B"},
      {"60: LLaMA-2 13B", "context 1,024", "~800 MB", 1, 1024, 40, 40, 128, "MB = 10^6 B"},
      {"60: LLaMA-2 13B", "context 4,096", "~3.2 GB", 1, 4096, 40, 40, 128, "3.36e9 B"},
      {"60: LLaMA-2 13B", "context 8,760 (1 year hourly)", "~7 GB", 1, 8760, 40, 40, 128, "7.18e9 B"},
  };
  for (const SeedRow& r : rows) {
    const double bytes = r.B * r.S * r.layers * 2 * r.hkv * r.D * 2;
    seeds.add({r.chapter, r.setting, r.says, fmt(bytes, 0), mib(bytes) + " MiB", r.note},
              {{"chapter", r.chapter}, {"setting", r.setting}, {"seed", r.says}, {"bytes_f16", bytes}});
  }
  out["seed_tables"] = seeds.json();

  // (c) quantization error
  progress("quantization error");
  Table err({"kind", "attention rel. error (random q/K/V)", "prediction rel. error (model, context 1024)"});
  const int64_t err_ctx = opt.quick ? 256 : 1024;
  auto f32_cache = model.make_cache(1, err_ctx + 1);
  model.forward(narrow(x, 1, 0, err_ctx - 1), f32_cache.get());
  const Tensor last = narrow(x, 1, err_ctx - 1, 1);
  auto step_cache = model.make_cache(1, err_ctx + 1);  // every kind below gets the same K/V
  copy_into(*step_cache, *f32_cache);
  const Tensor want_pred = model.forward(last, step_cache.get()).pred;
  Generator gq(4);
  const Tensor qk = randn({1, err_ctx, 2, 32}, DType::f32, &gq), qv = randn({1, err_ctx, 2, 32}, DType::f32, &gq);
  const Tensor qq = randn({1, 1, 8, 32}, DType::f32, &gq);
  nn::ContiguousKVCache ref(1, 1, err_ctx, 2, 32);
  ref.append(0, qk, qv);
  const Tensor want_att = ref.attend(0, qq, {}).out;
  for (const std::string kind : {"bf16", "fp8", "fp8-kivi", "int8", "int8-kivi", "int4", "int4-kivi"}) {
    nn::CacheSpec spec;
    spec.kind = kind, spec.max_len = err_ctx + 1;
    auto one = nn::make_kv_cache(spec, 1, 1, 2, 32);
    one->append(0, qk, qv);
    const double e_att = rel_error(one->attend(0, qq, {}).out, want_att);
    auto full = model.make_cache(spec, 1);
    copy_into(*full, *f32_cache);
    const double e_pred = rel_error(model.forward(last, full.get()).pred, want_pred);
    err.add({kind, fmt(e_att, 5), fmt(e_pred, 5)}, {{"kind", kind}, {"attention_rel_error", e_att},
                                                    {"prediction_rel_error", e_pred}, {"context", err_ctx}});
  }
  out["quantization_error"] = err.json();

  // (d) decode-step time per kind at one context
  const int64_t dctx = opt.quick ? 512 : 2048;
  progress("decode step per cache kind at context " + std::to_string(dctx));
  Table decode({"kind", "step ms", "vs contiguous", "bytes used MiB"});
  auto base = model.make_cache(1, dctx + steps + 1);
  model.forward(narrow(x, 1, 0, dctx), base.get());
  double t_contig = 0;
  for (const std::string kind : {"contiguous", "paged", "bf16", "int8", "int4", "fp8", "int8-kivi", "selective-attention"}) {
    nn::CacheSpec spec;
    spec.kind = kind, spec.max_len = dctx + steps + 1;
    if (kind == "selective-attention") spec.max_len = dctx, spec.max_append = dctx;
    auto cache = model.make_cache(spec, 1);
    copy_into(*cache, *base);
    const double t = step_time(model, *cache, x, dctx, steps);
    if (kind == "contiguous") t_contig = t;
    decode.add({kind, fmt(t * 1e3, 3), fmt(t / t_contig, 3), mib(double(cache->bytes_used()))},
               {{"kind", kind}, {"context", dctx}, {"step_ms", t * 1e3}, {"vs_contiguous", t / t_contig},
                {"bytes_used", cache->bytes_used()}});
  }
  out["decode"] = decode.json();

  if (!opt.json) {
    speed.print("(a) seed model (C256 H8 Hkv2 L6 d_ff 1024, f32, learned positions, B=1): full forward of the "
                "context vs one cached decode step (median of " + std::to_string(steps) + ")");
    sizes.print("(b) KV-cache bytes of one sequence of " + std::to_string(bytes_ctx) +
                " positions, 6 layers, D 32 — from each cache's bytes_used() (quantized: codes + f16 scales)");
    seeds.print("(b) the seeds' KV-size tables recomputed (f16, bytes = B*S*layers*2*Hkv*D*2)");
    err.print("(c) quantized caches: relative L2 error of the attention output (8 q heads, 2 KV heads, D 32, " +
              std::to_string(err_ctx) + " keys) and of the model's cached prediction vs the f32 cache");
    decode.print("(d) decode step at context " + std::to_string(dctx) + " per cache kind (K/V copied from one prefill)");
  }
  return out;
}

}  // namespace attnlab::bench
