// End to end: a small MLP learns y = sin(3x) on [-1, 1] with plain full-batch gradient descent
// written here (no optimizer dependency). Deterministic: fixed seed, fixed data.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/functions.h"
#include "nn/layers.h"
#include "nn/losses.h"
#include "test_util.h"

using namespace attnlab;
using namespace attnlab::nn;

TEST_CASE("MLP Linear(1,32) -> GELU -> Linear(32,1) fits sin(3x)") {
  manual_seed(2024);
  Sequential model{std::make_shared<Linear>(1, 32, true, DType::f64), std::make_shared<GELU>(),
                   std::make_shared<Linear>(32, 1, true, DType::f64)};
  const int64_t N = 64;
  const Tensor x = reshape(linspace(-1, 1, N, DType::f64), {N, 1});
  const Tensor y = ops::unary(ops::UnaryOp::sin, ops::binary_scalar(ops::BinaryOp::mul, x, 3.0));

  // Plain full-batch gradient descent: p -= lr * dL/dp.
  const double lr = 0.5;
  const double initial = mse_loss(model(x), y).item<double>();
  double loss = initial;
  for (int step = 0; step < 3000; ++step) {
    model.zero_grad();
    const Tensor l = mse_loss(model(x), y);
    loss = l.item<double>();
    backward(l);
    NoGradGuard guard;
    for (const auto& p : model.parameters()) ops::add_(p, p.grad(), -lr);
  }
  MESSAGE("mse: initial " << initial << ", final " << loss);
  CHECK(initial > 0.2);
  CHECK(loss < 0.01);
}
