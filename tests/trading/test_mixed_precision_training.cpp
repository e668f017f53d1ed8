// Mixed-precision training of a GQATrader on the CPU: bf16 autocast tracks the f32 run within bf16's
// tolerance (loss curve and weight updates), f16 with dynamic loss scaling too, and train_trader's
// precision setting (config round trip, training state, errors). GPU runs of the same cases:
// tests/trading/cuda/test_gqa_trader_cuda.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "nn/serialization.h"
#include "tests/test_util.h"
#include "tests/trading/training_cases.h"
#include "trading/train/evaluate.h"
#include "trading/train/trainer.h"

using namespace attnlab;
using namespace attnlab::trading;
using namespace attnlab::testing;

TEST_CASE("bf16 and f16 autocast training track the f32 run (CPU)") {
  for (auto backend : {nn::AttentionBackend::flash, nn::AttentionBackend::math}) {
    for (auto positions : {PositionEncoding::learned, PositionEncoding::rope}) {
      INFO("backend " << std::string(to_string(backend)) << ", positions " << std::string(to_string(positions)));
      const int steps = 8;
      const SmallRun base{.steps = steps, .backend = backend, .positions = positions};
      const nn::NamedTensorList start = small_trader_init(base);
      const TrainRun f32 = train_small_trader(kCPU, base);
      CHECK(f32.losses.back() < 0.8 * f32.losses.front());  // it learns the fixed batch
      for (DType low : {DType::bf16, DType::f16}) {
        const std::string name = dtype_name(low);
        INFO(name);
        SmallRun low_run = base;
        low_run.precision = low;
        const TrainRun r = train_small_trader(kCPU, low_run);
        CHECK(r.skipped == 0);
        // bf16 keeps 8 significant bits, f16 11: the loss stays within a few percent of the starting loss
        const double tol = (low == DType::bf16 ? 0.03 : 0.01) * f32.losses.front();
        for (int s = 0; s < steps; ++s) {
          INFO("step " << s << ": f32 loss " << f32.losses[size_t(s)] << ", " << name << " " << r.losses[size_t(s)]);
          CHECK(std::abs(r.losses[size_t(s)] - f32.losses[size_t(s)]) <= tol);
        }
        const double err = relative_update_error(f32, r, start);
        MESSAGE(name << " " << std::string(to_string(backend)) << "/" << std::string(to_string(positions))
                     << ": relative weight-update error vs f32 after " << steps << " steps " << err);
        CHECK(err < (low == DType::bf16 ? 0.2 : 0.05));
        for (const auto& [n, t] : r.weights) CHECK(t.dtype() == DType::f32);  // master weights stay f32
      }
    }
  }
}

TEST_CASE("f16 with PyTorch's initial scale 2^16: overflowing steps are skipped, then it trains as f32") {
  const int steps = 10;
  const TrainRun f32 = train_small_trader(kCPU, {.steps = steps});
  const TrainRun r = train_small_trader(kCPU, {.precision = DType::f16, .steps = steps, .init_scale = 65536});
  MESSAGE("f16 from scale 65536: " << r.skipped << " steps skipped");
  REQUIRE(r.skipped > 0);  // 2^16 overflows f16 in this model's backward
  REQUIRE(r.skipped < 6);  // halving finds a working scale within a few steps
  // a skipped step changes nothing: the run is the f32 run delayed by the skipped steps
  for (int s = 0; s + int(r.skipped) < steps; ++s) {
    INFO("step " << s);
    CHECK(std::abs(r.losses[size_t(s + r.skipped)] - f32.losses[size_t(s)]) <= 0.01 * f32.losses.front());
  }
}


TEST_CASE("train_trader: precision bf16/f16 trains like f32; the setting is saved with the run") {
  const TraderDataset ds = planted_dataset();
  TraderConfig mc = small_trader({.backend = nn::AttentionBackend::math});
  mc.input_dim = int64_t(ds.n_features());
  mc.max_seq_len = 8;
  mc.n_outputs = 1;
  auto run = [&](const std::string& precision, const std::string& out = "") {
    manual_seed(11);
    GQATrader model(mc);
    TrainConfig tc = tiny_train(precision);
    tc.out_dir = out;
    const TrainResult r = train_trader(model, ds, tc);
    return std::make_pair(r, evaluate_loss(model, ds, ds.split.val));
  };
  const auto [r32, v32] = run("f32");
  const auto dir = temp_dir("mixed_precision_train");
  for (const std::string p : {"bf16", "f16"}) {
    INFO(p);
    const auto [r, v] = run(p, (dir / p).string());
    REQUIRE(r.history.size() == r32.history.size());
    // f16 starts at scale 2^16 and skips its first overflowing steps (2 here), so it lags f32
    const double tol = p == "bf16" ? 0.05 : 0.5;
    for (size_t e = 0; e < r.history.size(); ++e) {
      CHECK(std::isfinite(r.history[e].train_loss));
      CHECK(std::abs(r.history[e].train_loss - r32.history[e].train_loss) < tol * r32.history[e].train_loss);
    }
    CHECK(std::abs(v - v32) < (p == "bf16" ? 0.05 : 0.3) * v32);
    // the run records its precision (and f16 its loss scale) so a resume continues it the same way
    const nlohmann::json info = read_train_state_info((dir / p).string());
    CHECK(info.at("train").at("precision") == p);
    CHECK(info.contains("grad_scaler") == (p == "f16"));
    if (p == "f16") {
      MESSAGE("f16 run: " << info.at("grad_scaler").dump());
      CHECK(info.at("grad_scaler").at("scale").get<double>() < 65536);  // it backed off
      CHECK(info.at("grad_scaler").at("skipped_steps").get<int64_t>() > 0);
    }
    const nlohmann::json cfg = nn::read_module_config((dir / p / "model.safetensors").string());
    CHECK(cfg.at("train").at("precision") == p);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("TrainConfig.precision: f32 is left out of the json (old files unchanged); bad names fail") {
  TrainConfig tc;
  CHECK(!tc.to_json().contains("precision"));
  tc.precision = "bf16";
  CHECK(tc.to_json().at("precision") == "bf16");
  CHECK(TrainConfig::from_json(tc.to_json()).precision == "bf16");
  CHECK(TrainConfig::from_json({{"precision", "f16"}}).precision == "f16");
  CHECK(TrainConfig::from_json(nlohmann::json::object()).precision == "f32");
  tc.precision = "fp8";
  check_error([&] { tc.validate(); }, {"unknown precision 'fp8'", "f32, bf16 or f16"});
}
