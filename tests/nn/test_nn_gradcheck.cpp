// Finite-difference gradient checks (autograd/gradcheck.h) through every layer with parameters and
// every loss, in f64, for inputs and parameters alike.
#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "nn/layers.h"
#include "nn/losses.h"
#include "test_util.h"

using namespace attnlab;
using namespace attnlab::nn;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

namespace {
Generator gen(77);

Tensor leaf(const Shape& s, double lo = -1, double hi = 1) {
  Tensor t = uniform(s, lo, hi, DType::f64, &gen);
  t.set_requires_grad(true);
  return t;
}

void check(const char* name, const Fn& f, const std::vector<Tensor>& in) {
  const GradcheckResult r = gradcheck(f, in, 1e-6, 1e-6, 1e-5);
  INFO(std::string(name) << ": " << r.message);
  CHECK(r.ok);
}
}  // namespace

TEST_CASE("gradcheck: Linear in x, weight and bias (batched input)") {
  check("linear", [](auto& v) { return functional::linear(v[0], v[1], v[2]); },
        {leaf({2, 3, 4}), leaf({5, 4}), leaf({5})});
  check("linear no bias, transposed input", [](auto& v) { return functional::linear(transpose(v[0], 0, 1), v[1]); },
        {leaf({4, 3}), leaf({2, 4})});
}

TEST_CASE("gradcheck: LayerNorm in x, weight and bias") {
  LayerNorm ln(5, 1e-5, true, DType::f64);
  check("layer_norm", [&](auto& v) { return layer_norm(v[0], v[1], v[2], 1e-5); },
        {leaf({3, 5}, -2, 2), leaf({5}, 0.5, 1.5), leaf({5})});
  check("LayerNorm module", [&](auto& v) { return ln(v[0]); }, {leaf({2, 2, 5}, -2, 2)});
}

TEST_CASE("gradcheck: RoPE with offset and explicit positions") {
  RotaryEmbedding rope(6);
  check("rope offset", [&](auto& v) { return rope(v[0], 4); }, {leaf({2, 3, 2, 6})});
  const Tensor pos = from_vector_i64({0, 5, 2, 9, 1, 3}, {2, 3});
  check("rope positions", [&](auto& v) { return rope.forward(v[0], pos); }, {leaf({2, 3, 1, 6})});
  // a non-contiguous input (the per-head view of a projection, transposed)
  check("rope strided", [&](auto& v) { return rope(transpose(v[0], 1, 2), 1); }, {leaf({1, 2, 3, 6})});
}

TEST_CASE("gradcheck: Embedding weight, with repeated indices") {
  const Tensor index = from_vector_i64({1, 0, 1, 3, 1, 2}, {2, 3});
  check("embedding", [&](auto& v) { return functional::embedding(v[0], index); }, {leaf({4, 3})});
}

TEST_CASE("gradcheck: Dropout with a fixed mask") {
  check("dropout", [](auto& v) {
    Generator g(5);  // same mask on every evaluation
    return functional::dropout(v[0], 0.3, true, g);
  }, {leaf({4, 5})});
}

TEST_CASE("gradcheck: every loss and reduction, both inputs where differentiable") {
  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    check("mse", [r](auto& v) { return mse_loss(v[0], v[1], r); }, {leaf({3, 4}), leaf({3, 4})});
    check("bce", [r](auto& v) { return binary_cross_entropy_with_logits(v[0], v[1], r); },
          {leaf({3, 4}, -4, 4), leaf({3, 4}, 0, 1)});
    const Tensor target = from_vector_i64({2, 0, 1});
    check("cross_entropy", [r, target](auto& v) { return cross_entropy(v[0], target, r); }, {leaf({3, 4}, -3, 3)});
    // |d| well away from delta: the kink at |d| == delta is not differentiable
    check("huber", [r](auto& v) { return huber_loss(v[0], v[1], 0.7, r); },
          {from_vector({0.1, -0.3, 2.0, -1.5, 0.5, 3.0}, {2, 3}, DType::f64).set_requires_grad(),
           from_vector({0.0, 0.2, 0.1, 0.0, 0.1, -0.5}, {2, 3}, DType::f64).set_requires_grad()});
    check("allocation", [r](auto& v) { return allocation_loss(v[0], v[1], r); }, {leaf({5, 2}), leaf({5, 2})});
  }
}
