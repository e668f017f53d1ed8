// Training pieces on the GPU against the CPU: AdamW (fused kernel and tensor-op path) equals the CPU
// kernel, gradient clipping and the finiteness check read device gradients, autocast's outputs keep
// their dtype and device, GradScaler skips an overflowing step. Skipped (exit 77) without a GPU.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "autograd/autocast.h"
#include "autograd/functions.h"
#include "nn/layers/linear.h"
#include "nn/losses.h"
#include "nn/optim/adamw.h"
#include "nn/optim/clip_grad.h"
#include "nn/optim/grad_scaler.h"
#include "tensor/creation.h"
#include "tests/test_util.h"

using namespace attnlab;
using attnlab::testing::check_close_tensor;

namespace {
const Device kGPU{DeviceType::cuda, 0};
Tensor host(const Tensor& t) { return ops::to_device(t, kCPU); }
}  // namespace

TEST_CASE("AdamW on the GPU (fused kernel, tensor-op path) equals the CPU kernel") {
  for (bool tensor_ops : {false, true}) {
    INFO("use_tensor_ops " << tensor_ops);
    manual_seed(11);
    nn::Linear cpu(48, 40), gpu(48, 40);
    gpu.load_state_dict(cpu.state_dict());
    gpu.to(kGPU);
    optim::AdamW oc(cpu.parameters(), 1e-2, {0.9, 0.99}, 1e-8, 0.05);
    optim::AdamW og(gpu.parameters(), 1e-2, {0.9, 0.99}, 1e-8, 0.05);
    og.use_tensor_ops = tensor_ops;
    const Tensor x = randn({16, 48});
    const Tensor xg = ops::to_device(x, kGPU);
    for (int s = 0; s < 5; ++s) {
      oc.zero_grad();
      og.zero_grad();
      backward(sum(square(cpu(x))));
      backward(sum(square(gpu(xg))));
      CHECK(gpu.weight.grad().device() == kGPU);
      const double norm = optim::grad_norm(cpu.parameters());
      CHECK(optim::grad_norm(gpu.parameters()) == doctest::Approx(norm).epsilon(1e-4));
      oc.step();
      og.step();
    }
    check_close_tensor(host(gpu.weight), cpu.weight, 1e-5, 1e-4);
    check_close_tensor(host(gpu.bias), cpu.bias, 1e-5, 1e-4);
    const auto sc = oc.state_dict(), sg = og.state_dict();
    REQUIRE(sc.size() == sg.size());
    for (size_t i = 0; i < sc.size(); ++i) {
      CHECK(sg[i].second.device() == kGPU);
      check_close_tensor(host(sg[i].second), sc[i].second, 1e-6, 1e-4);
    }
  }
}

TEST_CASE("clip_grad_norm_ and all_finite on device gradients") {
  manual_seed(3);
  nn::Linear cpu(8, 4), gpu(8, 4);
  gpu.load_state_dict(cpu.state_dict());
  gpu.to(kGPU);
  const Tensor x = randn({5, 8});
  backward(sum(cpu(x)) * 10.0);
  backward(sum(gpu(ops::to_device(x, kGPU))) * 10.0);
  for (double p : {1.0, 2.0, 3.0, std::numeric_limits<double>::infinity()}) {
    const double want = optim::grad_norm(cpu.parameters(), p);
    CHECK(optim::grad_norm(gpu.parameters(), p) == doctest::Approx(want).epsilon(1e-4));
  }
  const double n = optim::clip_grad_norm_(gpu.parameters(), 0.5);
  CHECK(n == doctest::Approx(optim::clip_grad_norm_(cpu.parameters(), 0.5)).epsilon(1e-4));
  check_close_tensor(host(gpu.weight.grad()), cpu.weight.grad(), 1e-6, 1e-4);
  CHECK(optim::all_finite(optim::grads_of(gpu.parameters())));
  ops::fill_(gpu.bias.grad(), std::nan(""));
  CHECK(!optim::all_finite(optim::grads_of(gpu.parameters())));
  CHECK(std::isnan(optim::grad_norm(gpu.parameters(), std::numeric_limits<double>::infinity())));
}

TEST_CASE("autocast on GPU tensors: dtypes as on the CPU, results on the device, f32 master gradients") {
  manual_seed(5);
  nn::Linear cpu(32, 16), gpu(32, 16);
  gpu.load_state_dict(cpu.state_dict());
  gpu.to(kGPU);
  const Tensor x = randn({8, 32}), target = randn({8, 16});
  for (DType low : {DType::bf16, DType::f16}) {
    INFO(std::string(dtype_name(low)));
    cpu.zero_grad();
    gpu.zero_grad();
    Tensor yc, yg, lc, lg;
    {
      autocast::AutocastGuard ac(low);
      yc = cpu(x);
      yg = gpu(ops::to_device(x, kGPU));
      lc = nn::mse_loss(yc, target);
      lg = nn::mse_loss(yg, ops::to_device(target, kGPU));
    }
    CHECK(yg.dtype() == low);
    CHECK(yg.device() == kGPU);
    CHECK(lg.dtype() == DType::f32);
    // cuBLAS (f32 accumulation) and the CPU's widened BLAS product differ only in summation order,
    // then both round to the low dtype: at most one unit in the last place apart
    check_close_tensor(host(ops::to_dtype(yg, DType::f32)), ops::to_dtype(yc, DType::f32), 1e-2, 1e-2);
    backward(lc);
    backward(lg);
    CHECK(gpu.weight.grad().dtype() == DType::f32);
    CHECK(gpu.weight.grad().device() == kGPU);
    check_close_tensor(host(gpu.weight.grad()), cpu.weight.grad(), 2e-2, 2e-2);
  }
}

TEST_CASE("GradScaler with GPU gradients: an overflow skips the step and halves the scale") {
  nn::Linear lin(3, 2);
  lin.to(kGPU);
  optim::AdamW opt(lin.parameters(), 1e-2);
  optim::GradScaler scaler;
  backward(scaler.scale(sum(lin(ops::to_device(ones({2, 3}), kGPU)))));
  ops::fill_(lin.bias.grad(), std::numeric_limits<double>::infinity());
  const Tensor before = host(lin.weight);
  CHECK(!scaler.step(opt));
  scaler.update();
  CHECK(scaler.get_scale() == 32768);
  check_close_tensor(host(lin.weight), before, 0, 0);
  CHECK(opt.step_count() == 0);
}
