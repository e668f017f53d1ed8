// Shared by tests/trading/test_mixed_precision_training.cpp (CPU), test_device_placement.cpp (the test
// device cpu:1) and tests/trading/cuda/ (GPU): a few training steps of a small GQATrader on a fixed
// batch, on a given device and precision, with the trainer's own step (autocast forward and loss,
// backward, unscale, clip, AdamW, GradScaler for f16). The CPU f32 run is the oracle the other runs are
// compared with.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autocast.h"
#include "autograd/functions.h"
#include "nn/optim/adamw.h"
#include "nn/optim/clip_grad.h"
#include "nn/optim/grad_scaler.h"
#include "tensor/creation.h"
#include "trading/data/features.h"
#include "trading/data/synth.h"
#include "trading/models/gqa_trader.h"
#include "trading/train/trainer.h"

namespace attnlab::testing {

// One small run's settings: every model and step variant the device tests sweep. Designated
// initializers name what a case changes: train_small_trader(dev, {.precision = DType::bf16, .steps = 8}).
struct SmallRun {
  DType precision = DType::f32;
  int steps = 8;
  nn::AttentionBackend backend = nn::AttentionBackend::flash;
  trading::PositionEncoding positions = trading::PositionEncoding::learned;
  trading::OutputType head = trading::OutputType::regression;
  bool causal = false;
  double dropout = 0.0;      // attention and feed-forward dropout
  double init_scale = 1024;  // f16's GradScaler (PyTorch's 2^16 overflows this model's first backward passes)

  std::string str() const {
    return cat(dtype_name(precision), " ", trading::to_string(backend), " ", trading::to_string(positions), " ",
               trading::to_string(head), causal ? " causal" : "", dropout > 0 ? cat(" dropout ", dropout) : "");
  }
};

// Every model variant of the device tests: each head type x learned/RoPE positions x causal or not x
// dropout 0 / 0.1 (24 runs), flash attention, f32.
inline std::vector<SmallRun> every_model_variant(int steps) {
  std::vector<SmallRun> out;
  for (auto head : {trading::OutputType::regression, trading::OutputType::direction, trading::OutputType::allocation})
    for (auto positions : {trading::PositionEncoding::learned, trading::PositionEncoding::rope})
      for (bool causal : {false, true})
        for (double dropout : {0.0, 0.1})
          out.push_back({.steps = steps, .positions = positions, .head = head, .causal = causal, .dropout = dropout});
  return out;
}

// The small model (C32 H4 Hkv2 L2, T16, 5 features, 1 output) of a run.
inline trading::TraderConfig small_trader(const SmallRun& r = {}) {
  trading::TraderConfig c;
  c.input_dim = 5;
  c.d_model = 32;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.n_layers = 2;
  c.d_ff = 64;
  c.max_seq_len = 16;
  c.n_outputs = 1;
  c.output_type = r.head;
  c.dropout = r.dropout;
  c.positions = r.positions;
  c.backend = r.backend;
  c.causal = r.causal;
  return c;
}

struct TrainRun {
  std::vector<double> losses;   // per step, f32 loss before the update
  nn::NamedTensorList weights;  // after the last step, on the CPU
  int64_t skipped = 0;          // steps the GradScaler skipped
};

// CHECKs that every tensor the run holds (parameters, their gradients, the optimizer's state) is on
// `device`: a result or state created on the default device would otherwise only show as a slowdown.
inline void check_all_on(Device device, const trading::GQATrader& model, const optim::Optimizer& opt) {
  for (const auto& [name, t] : model.state_dict()) {
    INFO(name);
    CHECK(t.device() == device);
  }
  for (const Tensor& p : model.parameters())
    if (p.grad().defined()) CHECK(p.grad().device() == device);
  for (const auto& [name, t] : opt.state_dict()) {
    INFO(name);
    CHECK(t.device() == device);
  }
}

// r.steps AdamW steps (lr 1e-3, clip 1.0) on one fixed batch [8, 16, 5] from seed 1, with the trainer's
// own step: autocast forward and loss, backward, unscale, clip, AdamW, GradScaler for f16. The model is
// built from seed 2 on the CPU and then moved to `device`. dropout > 0 draws the same masks on every
// device (the Dropout modules on the host, attention by the counter-based hash).
inline TrainRun train_small_trader(Device device, const SmallRun& r = {}) {
  Generator g(1);
  const Tensor x = randn({8, 16, 5}, DType::f32, &g), y = randn({8, 1}, DType::f32, &g);
  manual_seed(2);
  trading::GQATrader model(small_trader(r));
  model.to(device);
  const std::vector<Tensor> params = model.parameters();
  optim::AdamW opt(params, 1e-3, {0.9, 0.999}, 1e-8, 0.01);
  optim::GradScalerOptions so;
  so.enabled = r.precision == DType::f16;
  so.init_scale = r.init_scale;
  optim::GradScaler scaler(so);
  const Tensor xd = ops::to_device(x, device), yd = ops::to_device(y, device);
  TrainRun run;
  model.train();
  for (int s = 0; s < r.steps; ++s) {
    opt.zero_grad();
    Tensor loss;
    {
      autocast::AutocastGuard ac(r.precision);  // f32: off
      const Tensor pred = model.forward(xd).pred;
      REQUIRE(pred.device() == device);
      loss = model.compute_loss(pred, yd);
    }
    REQUIRE(loss.dtype() == DType::f32);
    REQUIRE(loss.device() == device);
    run.losses.push_back(loss.item<double>());
    backward(scaler.scale(loss));
    scaler.unscale_(params);
    const double norm = optim::clip_grad_norm_(params, 1.0);
    if (scaler.enabled()) {
      if (!scaler.step(opt)) ++run.skipped;
      scaler.update();
    } else if (std::isfinite(norm)) {
      opt.step();
    }
  }
  check_all_on(device, model, opt);
  for (const auto& [name, t] : model.state_dict()) run.weights.emplace_back(name, ops::to_device(t, kCPU));
  return run;
}

// ||(b - start) - (a - start)|| / ||a - start|| over all weights: how far run b's updates are from
// run a's, relative to a's updates (the initial weights are the same in both).
inline double relative_update_error(const TrainRun& a, const TrainRun& b, const nn::NamedTensorList& start) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.weights.size(); ++i) {
    const auto wa = a.weights[i].second.to_vector<double>(), wb = b.weights[i].second.to_vector<double>();
    const auto w0 = start[i].second.to_vector<double>();
    for (size_t k = 0; k < wa.size(); ++k) {
      num += (wb[k] - wa[k]) * (wb[k] - wa[k]);
      den += (wa[k] - w0[k]) * (wa[k] - w0[k]);
    }
  }
  return std::sqrt(num / den);
}

// The initial weights train_small_trader starts from.
inline nn::NamedTensorList small_trader_init(const SmallRun& r = {}) {
  manual_seed(2);
  trading::GQATrader model(small_trader(r));
  nn::NamedTensorList out;
  for (const auto& [name, t] : model.state_dict()) out.emplace_back(name, ops::clone(t.detach()));
  return out;
}

// For train_trader tests: one synthetic series with a planted own-momentum signal (r[t+1] = 0.5 r[t] +
// noise), three features, lookback 8, horizon 1.
inline trading::TraderDataset planted_dataset(size_t bars = 300) {
  data::SynthConfig sc;
  sc.n_symbols = 1;
  sc.n_bars = bars;
  sc.signal = data::SignalKind::OwnMomentum;
  sc.beta = 0.5;
  sc.seed = 5;
  const auto syn = data::generate_synthetic(sc);
  data::FeatureConfig fc;
  fc.features = {"log_return", "volatility", "price_ma_ratio"};
  return trading::make_dataset(data::compute_features(syn.series[0], fc), syn.series[0].close, 8, 1);
}

// Two epochs of batch 32 at lr 2e-3 (seed 11, no progress bar) for planted_dataset().
inline trading::TrainConfig tiny_train(const std::string& precision = "f32") {
  trading::TrainConfig tc;
  tc.lookback = 8;
  tc.epochs = 2;
  tc.batch_size = 32;
  tc.lr = 2e-3;
  tc.seed = 11;
  tc.progress = false;
  tc.precision = precision;
  return tc;
}

}  // namespace attnlab::testing
