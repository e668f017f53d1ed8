// Mixed precision on the CPU: autocast's per-op dtypes and numbers, gradients reaching f32 master
// weights, GradScaler (forced overflows), Module::to(device) on the CPU, and AdamW's tensor-op update
// (the path GPU parameters take) against its CPU kernel.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "autograd/autocast.h"
#include "autograd/functions.h"
#include "nn/functional.h"
#include "nn/layers/linear.h"
#include "nn/losses.h"
#include "nn/optim/adamw.h"
#include "nn/optim/clip_grad.h"
#include "nn/optim/grad_scaler.h"
#include "nn/optim/sgd.h"
#include "tensor/creation.h"
#include "tests/test_util.h"

using namespace attnlab;
using attnlab::testing::check_close_tensor;

namespace {

// t rounded through `dt` and back to f32 (what a low-precision tensor holds).
Tensor rounded(const Tensor& t, DType dt) { return ops::to_dtype(ops::to_dtype(t, dt), DType::f32); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

}  // namespace

TEST_CASE("autocast: output dtype of each op class (PyTorch's lists)") {
  manual_seed(3);
  const Tensor a = randn({4, 8}), b = randn({8, 5}), w = randn({5, 8}), bias = randn({5});
  const Tensor lw = ones({8}), lb = zeros({8});
  for (DType low : {DType::bf16, DType::f16}) {
    INFO(dtype_name(low));
    autocast::AutocastGuard ac(low);
    CHECK(autocast::is_enabled());
    CHECK(autocast::dtype() == low);
    // lower precision
    CHECK(matmul(a, b).dtype() == low);
    CHECK(nn::functional::linear(a, w, bias).dtype() == low);
    const Tensor h = matmul(a, ops::transpose(w, 0, 1));  // low
    // f32
    CHECK(layer_norm(ops::to_dtype(a, low), lw, lb).dtype() == DType::f32);
    CHECK(softmax(h, 1).dtype() == DType::f32);
    CHECK(log_softmax(h, 1).dtype() == DType::f32);
    CHECK(logsumexp(h, {1}).dtype() == DType::f32);
    CHECK(sum(h).dtype() == DType::f32);
    CHECK(exp(h).dtype() == DType::f32);
    CHECK(nn::mse_loss(h, zeros({4, 5})).dtype() == DType::f32);
    CHECK(nn::binary_cross_entropy_with_logits(h, zeros({4, 5})).dtype() == DType::f32);
    // promotion of mixed inputs
    CHECK((h + zeros({4, 5})).dtype() == DType::f32);
    CHECK((h * h).dtype() == low);
    CHECK(maximum(h, zeros({5})).dtype() == DType::f32);
    // unlisted: the input's dtype
    CHECK(gelu(h).dtype() == low);
    CHECK(relu(h).dtype() == low);
    // f64 is never cast down
    CHECK(matmul(ops::to_dtype(a, DType::f64), ops::to_dtype(b, DType::f64)).dtype() == DType::f64);
    {
      autocast::AutocastGuard off(low, false);  // an f32 region inside
      CHECK(!autocast::is_enabled());
      CHECK(matmul(a, b).dtype() == DType::f32);
    }
    CHECK(autocast::is_enabled());
  }
  CHECK(!autocast::is_enabled());
  // Outside a guard nothing changes: f32 stays f32 and mixed dtypes stay an error.
  CHECK(matmul(a, b).dtype() == DType::f32);
  CHECK_THROWS_AS(ops::to_dtype(a, DType::bf16) + a, Error);
  CHECK_THROWS_AS(autocast::AutocastGuard(DType::f64), Error);
  {
    autocast::AutocastGuard on(DType::f16);
    autocast::AutocastGuard f32(DType::f32);  // an f32 region: off, the outer dtype kept
    CHECK(!autocast::is_enabled());
    CHECK(matmul(a, b).dtype() == DType::f32);
  }
  CHECK(autocast::parse_precision("bf16") == DType::bf16);
  CHECK(autocast::parse_precision("f16") == DType::f16);
  CHECK(autocast::parse_precision("f32") == DType::f32);
  CHECK_THROWS_WITH_AS(autocast::parse_precision("int8"), doctest::Contains("expected f32, bf16 or f16"), Error);
}

TEST_CASE("autocast: a matmul is the product of the rounded operands, f32-accumulated and rounded") {
  manual_seed(5);
  const Tensor a = randn({16, 64}), b = randn({64, 8});
  Tensor out;
  {
    autocast::AutocastGuard ac(DType::bf16);
    out = matmul(a, b);
  }
  REQUIRE(out.dtype() == DType::bf16);
  const Tensor expect = rounded(ops::matmul(rounded(a, DType::bf16), rounded(b, DType::bf16)), DType::bf16);
  CHECK(max_abs_diff(ops::to_dtype(out, DType::f32), expect) == 0.0);
  // and within bf16's tolerance of the f32 product (8 bits of mantissa: rel. error ~2^-8 per rounding)
  const Tensor exact = ops::matmul(a, b);
  const double scale = ops::amax(ops::unary(ops::UnaryOp::abs, exact)).item<double>();
  CHECK(max_abs_diff(ops::to_dtype(out, DType::f32), exact) < 0.05 * scale);
}

TEST_CASE("autocast: f32 master weights get f32 gradients close to the f32 run's") {
  manual_seed(7);
  nn::Linear l1(16, 32), l2(32, 4);
  const Tensor x = randn({8, 16}), y = randn({8, 4});
  auto loss_of = [&] { return nn::mse_loss(l2(gelu(l1(x))), y); };

  const Tensor loss32 = loss_of();
  backward(loss32);
  const Tensor g1 = l1.weight.grad(), g2 = l2.weight.grad(), gb = l1.bias.grad();
  l1.zero_grad();
  l2.zero_grad();

  Tensor loss16;
  {
    autocast::AutocastGuard ac(DType::bf16);
    loss16 = loss_of();
  }
  CHECK(loss16.dtype() == DType::f32);
  backward(loss16);  // outside the guard, as in PyTorch
  for (const Tensor& p : {l1.weight, l1.bias, l2.weight, l2.bias}) {
    CHECK(p.dtype() == DType::f32);
    REQUIRE(p.grad().defined());
    CHECK(p.grad().dtype() == DType::f32);
  }
  CHECK(std::abs(loss16.item<double>() - loss32.item<double>()) < 0.02 * loss32.item<double>());
  for (const auto& [got, want] : {std::pair{l1.weight.grad(), g1}, {l2.weight.grad(), g2}, {l1.bias.grad(), gb}}) {
    const double scale = ops::amax(ops::unary(ops::UnaryOp::abs, want)).item<double>();
    CHECK(max_abs_diff(got, want) < 0.05 * scale);
  }
}

TEST_CASE("GradScaler: scales the loss, unscales the gradients, steps and grows") {
  nn::Linear lin(4, 2);
  optim::SGD opt(lin.parameters(), 0.1);
  optim::GradScalerOptions so;
  so.init_scale = 1024;
  so.growth_interval = 3;
  optim::GradScaler scaler(so);
  manual_seed(1);
  const Tensor x = randn({3, 4});

  for (int step = 1; step <= 3; ++step) {
    opt.zero_grad();
    const Tensor loss = sum(lin(x));
    backward(loss);
    const Tensor expect = ops::clone(lin.weight.grad());  // the unscaled gradient
    opt.zero_grad();
    backward(scaler.scale(sum(lin(x))));
    const Tensor scaled = ops::binary_scalar(ops::BinaryOp::mul, expect, scaler.get_scale());
    check_close_tensor(lin.weight.grad(), scaled, 1e-3, 1e-6);
    scaler.unscale_(opt);
    check_close_tensor(lin.weight.grad(), expect, 1e-6, 1e-6);  // exact: the scale is a power of two
    CHECK(!scaler.found_inf());
    const Tensor before = ops::clone(lin.weight);
    CHECK(scaler.step(opt));
    CHECK(max_abs_diff(lin.weight, before) > 0);
    CHECK_THROWS_AS(scaler.unscale_(opt), Error);  // once per iteration
    scaler.update();
  }
  CHECK(scaler.get_scale() == 2048);  // grew after growth_interval = 3 good steps
  CHECK(scaler.growth_tracker() == 0);
  CHECK(scaler.skipped_steps() == 0);
}

TEST_CASE("GradScaler: an overflow skips the step and halves the scale; good steps grow it back") {
  nn::Linear lin(3, 1);
  optim::AdamW opt(lin.parameters(), 1e-2);
  optim::GradScalerOptions so;
  so.init_scale = 65536;
  so.growth_interval = 2;
  optim::GradScaler scaler(so);
  const Tensor x = ones({2, 3});
  auto iteration = [&](double inject) {
    opt.zero_grad();
    backward(scaler.scale(sum(lin(x))));
    if (inject != 0) ops::fill_(lin.bias.grad(), inject);  // a forced overflow / NaN
    scaler.unscale_(opt);
    const double norm = optim::clip_grad_norm_(lin.parameters(), 1.0);
    const Tensor before = ops::clone(lin.weight);
    const bool stepped = scaler.step(opt);
    scaler.update();
    CHECK(stepped == std::isfinite(norm));
    CHECK((max_abs_diff(lin.weight, before) > 0) == stepped);
    return stepped;
  };
  CHECK(!iteration(std::numeric_limits<double>::infinity()));
  CHECK(scaler.get_scale() == 32768);
  CHECK(scaler.skipped_steps() == 1);
  CHECK(opt.step_count() == 0);  // AdamW never saw the bad gradient (no moments, no step)
  CHECK(!iteration(std::nan("")));
  CHECK(scaler.get_scale() == 16384);
  CHECK(iteration(0));
  CHECK(scaler.get_scale() == 16384);
  CHECK(scaler.growth_tracker() == 1);
  CHECK(iteration(0));
  CHECK(scaler.get_scale() == 32768);  // two good steps in a row
  CHECK(!iteration(std::numeric_limits<double>::infinity()));
  CHECK(scaler.get_scale() == 16384);
  CHECK(scaler.growth_tracker() == 0);
  CHECK(opt.step_count() == 2);

  // state round trip (training states keep it)
  optim::GradScaler other;
  other.load_state(scaler.state());
  CHECK(other.get_scale() == 16384);
  CHECK(other.skipped_steps() == 3);
  CHECK_THROWS_AS(other.update(), Error);  // update() without unscale_/step in this iteration
}

TEST_CASE("GradScaler: f16 gradients that would underflow survive with scaling") {
  // loss = 1e-4 * sum(w * c), c = 1e-4: dloss/dw = 1e-8, below f16's smallest subnormal (6e-8).
  Tensor w = full({4}, 1.0);
  w.set_requires_grad();
  auto grad_of = [&](bool scaled) {
    w.set_grad(Tensor());
    optim::GradScaler scaler;  // 65536
    optim::GradScalerOptions off;
    off.enabled = false;
    optim::GradScaler none(off);
    optim::GradScaler& s = scaled ? scaler : none;
    Tensor loss;
    {
      autocast::AutocastGuard ac(DType::f16);
      // the product stays in f16, so its backward does too; sum runs in f32 (autocast's f32 list)
      loss = sum(to_dtype(w, DType::f16) * full({4}, 1e-4, DType::f16)) * 1e-4;
    }
    backward(s.scale(loss));
    s.unscale_({w});
    return w.grad().to_vector<double>();
  };
  for (double g : grad_of(false)) CHECK(g == 0.0);                 // flushed to zero in f16
  for (double g : grad_of(true)) CHECK(g == doctest::Approx(1e-8).epsilon(0.01));  // kept
  optim::GradScalerOptions disabled;
  disabled.enabled = false;
  optim::GradScaler off(disabled);
  const Tensor l = full({}, 2.0);
  CHECK(off.scale(l).is_same(l));
  CHECK_THROWS_AS(optim::GradScaler(optim::GradScalerOptions{0.0}), Error);
}

TEST_CASE("Module::to(kCPU) on a CPU model is a no-op; device() reports the CPU") {
  nn::Linear lin(3, 2);
  const void* w = lin.weight.raw_data();
  const Tensor handle = lin.weight;
  lin.to(kCPU);
  CHECK(lin.weight.raw_data() == w);  // nothing copied
  CHECK(lin.weight.is_same(handle));
  CHECK(lin.device() == kCPU);
  CHECK(lin.weight.requires_grad());
}

TEST_CASE("AdamW: the tensor-op update (GPU parameters' path) equals the CPU kernel") {
  for (bool amsgrad : {false, true}) {
    INFO("amsgrad " << amsgrad);
    manual_seed(11);
    nn::Linear a(6, 5), b(6, 5);
    b.load_state_dict(a.state_dict());
    optim::AdamW oa(a.parameters(), 1e-2, {0.9, 0.99}, 1e-8, 0.05, amsgrad);
    optim::AdamW ob(b.parameters(), 1e-2, {0.9, 0.99}, 1e-8, 0.05, amsgrad);
    ob.use_tensor_ops = true;
    const Tensor x = randn({4, 6});
    for (int s = 0; s < 5; ++s) {
      oa.zero_grad();
      ob.zero_grad();
      backward(sum(square(a(x))));
      backward(sum(square(b(x))));
      oa.step();
      ob.step();
    }
    check_close_tensor(b.weight, a.weight, 1e-6, 1e-5);
    check_close_tensor(b.bias, a.bias, 1e-6, 1e-5);
    const auto sa = oa.state_dict(), sb = ob.state_dict();
    REQUIRE(sa.size() == sb.size());
    for (size_t i = 0; i < sa.size(); ++i) check_close_tensor(sb[i].second, sa[i].second, 1e-7, 1e-5);
  }
}
