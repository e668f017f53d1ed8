// Initialisers (PyTorch's bounds and standard deviations for given fans, seeded determinism) and
// dropout (keep rate, inverted scaling, seeding, eval and edge probabilities).
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/functions.h"
#include "nn/functional.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "test_util.h"

using namespace attnlab;
using namespace attnlab::nn;
using attnlab::testing::check_error;

namespace {
struct Stats {
  double min, max, mean, std;
};
Stats stats(const Tensor& t) {
  const auto v = t.to_vector<double>();
  Stats s{v[0], v[0], 0, 0};
  for (double x : v) {
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
    s.mean += x;
  }
  s.mean /= double(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(s.std / double(v.size() - 1));
  return s;
}
}  // namespace

TEST_CASE("init: fans and gains as PyTorch") {
  CHECK(init::fans(zeros({5, 3})) == std::pair<int64_t, int64_t>{3, 5});
  CHECK(init::fans(zeros({4, 3, 2, 2})) == std::pair<int64_t, int64_t>{12, 16});
  check_error([] { init::fans(zeros({5})); }, {"at least 2 dims", "f32[5]"});
  CHECK(init::calculate_gain(init::Nonlinearity::linear) == 1.0);
  CHECK(init::calculate_gain(init::Nonlinearity::tanh) == doctest::Approx(5.0 / 3.0));
  CHECK(init::calculate_gain(init::Nonlinearity::relu) == doctest::Approx(std::sqrt(2.0)));
  CHECK(init::calculate_gain(init::Nonlinearity::leaky_relu) == doctest::Approx(std::sqrt(2.0 / 1.0001)));
  CHECK(init::calculate_gain(init::Nonlinearity::leaky_relu, std::sqrt(5.0)) ==
        doctest::Approx(std::sqrt(1.0 / 3.0)));
  CHECK(init::calculate_gain(init::Nonlinearity::selu) == 0.75);
}

TEST_CASE("init: bounds and standard deviations for given fans") {
  Generator gen(11);
  const Tensor w = zeros({200, 300}, DType::f64);  // fan_in 300, fan_out 200, 60000 samples

  init::xavier_uniform_(w, 2.0, &gen);
  double b = 2.0 * std::sqrt(6.0 / 500.0);
  Stats s = stats(w);
  CHECK(s.min >= -b);
  CHECK(s.max <= b);
  CHECK(s.max > 0.99 * b);
  CHECK(s.std == doctest::Approx(b / std::sqrt(3.0)).epsilon(0.01));

  init::xavier_normal_(w, 1.0, &gen);
  CHECK(stats(w).std == doctest::Approx(std::sqrt(2.0 / 500.0)).epsilon(0.01));
  CHECK(std::abs(stats(w).mean) < 3e-4);

  init::kaiming_uniform_(w, 0.0, init::FanMode::fan_in, init::Nonlinearity::relu, &gen);
  b = std::sqrt(2.0) * std::sqrt(3.0 / 300.0);
  s = stats(w);
  CHECK(s.min >= -b);
  CHECK(s.max <= b);
  CHECK(s.std == doctest::Approx(b / std::sqrt(3.0)).epsilon(0.01));

  init::kaiming_normal_(w, 0.0, init::FanMode::fan_out, init::Nonlinearity::relu, &gen);
  CHECK(stats(w).std == doctest::Approx(std::sqrt(2.0 / 200.0)).epsilon(0.01));

  init::normal_(w, 3.0, 0.5, &gen);
  CHECK(stats(w).mean == doctest::Approx(3.0).epsilon(0.001));
  CHECK(stats(w).std == doctest::Approx(0.5).epsilon(0.01));
  init::uniform_(w, 2.0, 4.0, &gen);
  CHECK(stats(w).min >= 2.0);
  CHECK(stats(w).max < 4.0);
  init::constant_(w, 1.5);
  CHECK(stats(w).min == 1.5);
  CHECK(stats(w).max == 1.5);
  init::zeros_(w);
  CHECK(stats(w).max == 0.0);
  init::ones_(w);
  CHECK(stats(w).min == 1.0);
}

TEST_CASE("init: PyTorch's Linear init is U(-1/sqrt(in), 1/sqrt(in)) for weight and bias") {
  manual_seed(5);
  Linear lin(400, 300);
  const double b = 1.0 / std::sqrt(400.0);
  const Stats w = stats(lin.weight), bias = stats(lin.bias);
  CHECK(w.min >= -b);
  CHECK(w.max <= b);
  CHECK(w.max > 0.99 * b);
  CHECK(w.std == doctest::Approx(b / std::sqrt(3.0)).epsilon(0.01));
  CHECK(bias.min >= -b);
  CHECK(bias.max <= b);
  Embedding emb(500, 100);
  CHECK(stats(emb.weight).std == doctest::Approx(1.0).epsilon(0.02));
  CHECK(stats(make_positional_parameter(100, 500)).std == doctest::Approx(0.02).epsilon(0.02));
}

TEST_CASE("init: seeded determinism, in-place on parameters, every float dtype") {
  Linear a(8, 4), b(8, 4);
  Generator g1(42), g2(42);
  a.reset_parameters(&g1);
  b.reset_parameters(&g2);
  CHECK(a.weight.to_vector<float>() == b.weight.to_vector<float>());
  CHECK(a.bias.to_vector<float>() == b.bias.to_vector<float>());
  CHECK(a.weight.requires_grad());  // works on parameters (under NoGradGuard) and keeps them leaves
  CHECK(a.weight.is_leaf());

  manual_seed(9);
  Linear c(8, 4);
  manual_seed(9);
  Linear d(8, 4);
  CHECK(c.weight.to_vector<float>() == d.weight.to_vector<float>());

  // the same draws land in f32 and bf16 tensors (rounded)
  const Tensor f = zeros({3, 3}), h = zeros({3, 3}, DType::bf16);
  Generator g3(1), g4(1);
  init::xavier_uniform_(f, 1.0, &g3);
  init::xavier_uniform_(h, 1.0, &g4);
  testing::check_close_tensor(ops::to_dtype(h, DType::f32), f, 1e-2, 1e-2);
  check_error([] { init::normal_(zeros({2}, DType::i64)); }, {"normal_", "floating"});
}

TEST_CASE("dropout: keep rate, inverted scaling, expectation") {
  Generator gen(123);
  const double p = 0.3;
  const Tensor x = ones({100000}, DType::f64);
  const Tensor y = functional::dropout(x, p, true, gen);
  int64_t kept = 0, other = 0;
  for (double v : y.to_vector<double>()) {
    kept += v != 0.0;
    other += v != 0.0 && std::abs(v - 1.0 / (1.0 - p)) > 1e-12;
  }
  CHECK(other == 0);  // every element is 0 or 1 / (1 - p)
  // binomial: std of the keep fraction is sqrt(p(1-p)/n) ~ 0.00145; allow 5 sigma
  CHECK(std::abs(double(kept) / 1e5 - (1 - p)) < 0.0073);
  CHECK(std::abs(mean(y).item<double>() - 1.0) < 0.011);
}

TEST_CASE("dropout: gradient uses the same mask") {
  Generator gen(4);
  Tensor x = uniform({50}, 1, 2, DType::f64, &gen);
  x.set_requires_grad(true);
  const Tensor y = functional::dropout(x, 0.5, true, gen);
  backward(sum(y));
  const auto yv = y.to_vector<double>(), gv = x.grad().to_vector<double>();
  for (size_t i = 0; i < yv.size(); ++i) CHECK(gv[i] == (yv[i] == 0 ? 0.0 : 2.0));
}

TEST_CASE("Dropout module: seeding, eval identity, p = 0 and p = 1") {
  const Tensor x = ones({8, 16});
  Dropout a(0.5, 7), b(0.5, 7), c(0.5, 8);
  const auto ya = a(x).to_vector<float>();
  CHECK(ya == b(x).to_vector<float>());        // same seed, same mask
  CHECK(ya != c(x).to_vector<float>());        // other seed
  CHECK(ya != a(x).to_vector<float>());        // the generator advances
  a.manual_seed(7);
  CHECK(ya == a(x).to_vector<float>());        // reseeding replays

  a.eval();
  CHECK(a(x).is_same(x));
  a.train();
  Dropout none(0.0);
  CHECK(none(x).is_same(x));
  Dropout all(1.0);
  Tensor xg = ones({3});
  xg.set_requires_grad(true);
  const Tensor z = all(xg);
  CHECK(z.to_vector<float>() == std::vector<float>(3, 0.0f));
  backward(sum(z));
  CHECK(xg.grad().to_vector<float>() == std::vector<float>(3, 0.0f));
  check_error([] { Dropout(1.5); }, {"Dropout", "[0, 1]", "1.5"});
}
