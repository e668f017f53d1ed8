// Device placement of the whole training path without a GPU (issue 16). The H200's first run failed at
// the first backward with "layer_norm_backward: tensors on different devices: f32[8, 16, 32]@cuda:0 is
// on cuda:0, f32[8, 16, 32] is on cpu": a backward made its result on the default device. Here every
// tensor lives on the test device cpu:1 (tensor/dtype.h): host memory, so the CPU kernels run, but a
// device of its own to every device check. Any creation that forgets its inputs' device meets a cpu:1
// tensor with a cpu:0 one and throws, exactly where it would on a GPU; the results must equal the cpu:0
// run's (the same kernels; only the device paths of clipping and AdamW differ in rounding).
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

namespace {

// cpu:1 and cpu:0 agree to rounding: relative 1e-5 per loss, 1e-4 over the weight updates.
void check_same_run(const TrainRun& dev, const TrainRun& cpu, const nn::NamedTensorList& start) {
  REQUIRE(dev.losses.size() == cpu.losses.size());
  for (size_t s = 0; s < cpu.losses.size(); ++s) {
    INFO("step " << s << ": cpu " << cpu.losses[s] << ", cpu:1 " << dev.losses[s]);
    CHECK(std::abs(dev.losses[s] - cpu.losses[s]) <= 1e-5 * std::abs(cpu.losses[s]) + 1e-7);
  }
  CHECK(dev.skipped == cpu.skipped);
  CHECK(relative_update_error(cpu, dev, start) < 1e-4);
}

}  // namespace

TEST_CASE("the test device cpu:1 is a device of its own: a cpu:0 tensor in one of its ops is an Error") {
  const Tensor a = tensor({1, 2, 3}).to(kTestDevice), b = tensor({1, 2, 3});
  CHECK(a.device() == kTestDevice);
  CHECK(describe(a) == "f32[3]@cpu:1");
  check_error([&] { (void)ops::add(a, b); }, {"add", "f32[3]@cpu:1 is on cpu:1", "f32[3] is on cpu"});
  // a host scalar joins it as it joins a GPU op, and the result stays on the device
  CHECK(ops::mul(a, scalar_tensor(2)).device() == kTestDevice);
  CHECK(ops::binary_scalar(ops::BinaryOp::add, a, 1).to_vector<double>() == std::vector<double>{2, 3, 4});
  // the same backward bug the H200 met, reproduced without a GPU: a gradient made on the default device
  Tensor x = tensor({1, 2}).to(kTestDevice).set_requires_grad();
  const Tensor y = record("made_on_cpu0", ops::clone(x.detach()), {x}, [](const Tensor& g) {
    return Grads{zeros(g.shape(), g.dtype())};  // forgets g.device()
  });
  check_error([&] { backward(sum(y)); }, {"backward of made_on_cpu0", "input 0", "is on cpu", "on cpu:1"});
}

TEST_CASE("training steps on cpu:1 meet no cpu:0 tensor and equal the cpu:0 run: every head, position "
          "encoding, mask and dropout") {
  for (const SmallRun& r : every_model_variant(3)) {
    INFO(r.str());
    check_same_run(train_small_trader(kTestDevice, r), train_small_trader(kCPU, r), small_trader_init(r));
  }
}

TEST_CASE("training steps on cpu:1: every attention backend and autocast precision") {
  for (auto backend : {nn::AttentionBackend::flash, nn::AttentionBackend::math, nn::AttentionBackend::reference})
    for (DType precision : {DType::f32, DType::bf16, DType::f16}) {
      const SmallRun r{.precision = precision, .steps = 3, .backend = backend, .causal = true, .dropout = 0.1};
      INFO(r.str());
      check_same_run(train_small_trader(kTestDevice, r), train_small_trader(kCPU, r), small_trader_init(r));
    }
  // f16 from PyTorch's 2^16: the overflowing steps are found on the device too
  const SmallRun big{.precision = DType::f16, .steps = 6, .init_scale = 65536};
  const TrainRun dev = train_small_trader(kTestDevice, big);
  CHECK(dev.skipped > 0);
  check_same_run(dev, train_small_trader(kCPU, big), small_trader_init(big));
}


TEST_CASE("train_trader on cpu:1 (what `attnlab train --device cuda` runs): schedule, clipping, evaluation, "
          "checkpoints, GradScaler and resume") {
  const TraderDataset ds = planted_dataset(260);
  TraderConfig mc = small_trader({.positions = PositionEncoding::rope, .head = OutputType::direction, .dropout = 0.1});
  mc.input_dim = int64_t(ds.n_features());
  mc.max_seq_len = 8;
  mc.causal = true;
  const auto dir = temp_dir("device_placement_train");
  for (const std::string precision : {"f32", "f16"}) {
    INFO(precision);
    auto run = [&](Device device, const std::string& out) {
      manual_seed(11);
      auto model = std::make_shared<GQATrader>(mc);
      TrainConfig tc = tiny_train(precision);
      tc.device = device;
      tc.out_dir = out;
      const TrainResult r = train_trader(*model, ds, tc);
      return std::make_pair(model, r);
    };
    const auto [cpu_model, cpu] = run(kCPU, "");
    const std::string out = (dir / precision).string();
    const auto [dev_model, dev] = run(kTestDevice, out);
    CHECK(dev_model->device() == kTestDevice);  // train_trader leaves the model where it trained
    REQUIRE(dev.history.size() == cpu.history.size());
    for (size_t e = 0; e < cpu.history.size(); ++e) {
      INFO("epoch " << e + 1);
      CHECK(dev.history[e].train_loss == doctest::Approx(cpu.history[e].train_loss).epsilon(1e-5));
      CHECK(dev.history[e].val_loss == doctest::Approx(cpu.history[e].val_loss).epsilon(1e-5));
    }
    CHECK(dev.best_epoch == cpu.best_epoch);
    // the test-split evaluation `attnlab train` prints, run on the device model
    const EvalResult ed = evaluate(*dev_model, ds, ds.split.test, 256);
    const EvalResult ec = evaluate(*cpu_model, ds, ds.split.test, 256);
    CHECK(!ed.regression);  // a direction head: the evaluation scores signs, no MSE
    REQUIRE(ed.predictions.size() == ec.predictions.size());
    for (size_t i = 0; i < ed.predictions.size(); ++i)
      CHECK(ed.predictions[i] == doctest::Approx(ec.predictions[i]).epsilon(1e-4));
    CHECK(ed.direction_accuracy == ec.direction_accuracy);
    // the checkpoint written from the device loads on the CPU with the device run's weights
    manual_seed(99);
    GQATrader loaded(mc);
    nn::load_module(dev.checkpoint, loaded);
    const nn::NamedTensorList dev_sd = dev_model->state_dict();
    const nn::NamedTensorList loaded_sd = loaded.state_dict();
    REQUIRE(loaded_sd.size() == dev_sd.size());
    for (size_t i = 0; i < dev_sd.size(); ++i)
      CHECK(loaded_sd[i].second.to_vector<double>() == dev_sd[i].second.to_vector<double>());
    CHECK(evaluate_loss(*dev_model, ds, ds.split.val) == doctest::Approx(evaluate_loss(loaded, ds, ds.split.val)));
  }
  // resume onto the device from a state written there: the optimizer state is loaded onto cpu:1 too
  {
    manual_seed(11);
    GQATrader model(mc);
    TrainConfig tc = tiny_train();
    tc.device = kTestDevice;
    tc.out_dir = (dir / "resume").string();
    tc.stop_after_epoch = 1;
    const TrainResult first = train_trader(model, ds, tc);
    CHECK(first.interrupted);
    tc.stop_after_epoch = 0;
    tc.resume_from = tc.out_dir;
    manual_seed(12);
    GQATrader again(mc);
    const TrainResult rest = train_trader(again, ds, tc);
    CHECK(rest.history.size() == 2);
    CHECK(again.device() == kTestDevice);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("the stream objective on cpu:1: segments, the every-position loss and the sequence evaluation") {
  // A sliding-window model (window 4, 2 layers: receptive field 7 within the lookback 8) trained by the
  // stream objective: its batches are stacked segments, its loss a slice of forward_sequence, its
  // validation one pass per run of samples — all of it on the model's device.
  const TraderDataset ds = planted_dataset(260);
  TraderConfig mc = small_trader({.positions = PositionEncoding::rope, .dropout = 0.1});
  mc.input_dim = int64_t(ds.n_features());
  mc.max_seq_len = 8;
  mc.window = 4;
  mc.causal = true;
  auto run = [&](Device device) {
    manual_seed(11);
    auto model = std::make_shared<GQATrader>(mc);
    TrainConfig tc = tiny_train();
    tc.objective = "stream", tc.stream_targets = 16, tc.device = device;
    const TrainResult r = train_trader(*model, ds, tc);
    return std::make_pair(model, r);
  };
  const auto [cpu_model, cpu] = run(kCPU);
  const auto [dev_model, dev] = run(kTestDevice);
  CHECK(dev_model->device() == kTestDevice);
  REQUIRE(dev.history.size() == cpu.history.size());
  for (size_t e = 0; e < cpu.history.size(); ++e) {
    CHECK(dev.history[e].train_loss == doctest::Approx(cpu.history[e].train_loss).epsilon(1e-5));
    CHECK(dev.history[e].val_loss == doctest::Approx(cpu.history[e].val_loss).epsilon(1e-5));
  }
  const EvalResult ed = evaluate(*dev_model, ds, ds.split.test);
  const EvalResult ec = evaluate(*cpu_model, ds, ds.split.test);
  CHECK(ed.mse == doctest::Approx(ec.mse).epsilon(1e-4));
}
