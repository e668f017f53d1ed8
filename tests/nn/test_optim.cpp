// Optimizers, schedules, clipping and gradient accumulation: hand-computed single steps, param
// groups, skipped parameters, state save/load and its error messages. (Multi-step agreement with
// PyTorch is in test_optim_goldens.cpp; training-state checkpoints in test_checkpoint.cpp.)
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <numbers>

#include "autograd/functions.h"
#include "nn/optim/adam.h"
#include "nn/optim/adamw.h"
#include "nn/optim/clip_grad.h"
#include "nn/optim/grad_accum.h"
#include "nn/optim/schedule.h"
#include "nn/optim/sgd.h"
#include "tensor/creation.h"
#include "tensor/ops.h"
#include "test_util.h"

using namespace attnlab;
using testing::check_close;
using testing::check_error;

namespace {

Tensor param(std::initializer_list<double> v, DType dtype = DType::f64) {
  Tensor t = tensor(v, dtype);
  t.set_requires_grad();
  return t;
}

void set_grad(const Tensor& p, std::initializer_list<double> g) {
  p.set_grad(from_vector(std::vector<double>(g), p.shape(), p.dtype()));
}

// Bitwise equality of two tensors' values (exact resume means exact).
void check_identical(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i) {
    INFO("element " << i);
    CHECK(va[i] == vb[i]);
  }
}

}  // namespace

// ---- SGD ----------------------------------------------------------------------------------------------

TEST_CASE("SGD: plain step, weight decay, momentum with dampening, nesterov — by hand") {
  SUBCASE("plain") {
    Tensor p = param({1, -2});
    optim::SGD opt({p}, 0.1);
    set_grad(p, {0.5, 1});
    opt.step();
    check_close(p, {1 - 0.05, -2 - 0.1}, 1e-15);
  }
  SUBCASE("weight decay adds wd * p to the gradient") {
    Tensor p = param({1, -2});
    optim::SGD opt({p}, 0.1, 0, 0, /*weight_decay=*/0.5);
    set_grad(p, {0.5, 1});
    opt.step();
    check_close(p, {1 - 0.1 * (0.5 + 0.5), -2 - 0.1 * (1 - 1)}, 1e-15);
  }
  SUBCASE("momentum: the first step's buffer is the gradient, undampened") {
    Tensor p = param({1});
    optim::SGD opt({p}, 0.1, /*momentum=*/0.9, /*dampening=*/0.5);
    set_grad(p, {2});
    opt.step();  // buf = 2
    check_close(p, {1 - 0.2}, 1e-15);
    set_grad(p, {4});
    opt.step();  // buf = 0.9 * 2 + 0.5 * 4 = 3.8
    check_close(p, {0.8 - 0.38}, 1e-15);
    CHECK(opt.state_dict().size() == 1);
    CHECK(opt.state_dict()[0].first == "state.0.momentum_buffer");
    check_close(opt.state_dict()[0].second, {3.8}, 1e-15);
  }
  SUBCASE("nesterov: step along g + momentum * buf") {
    Tensor p = param({1});
    optim::SGD opt({p}, 0.1, 0.9, 0, 0, /*nesterov=*/true);
    set_grad(p, {2});
    opt.step();  // buf = 2, d = 2 + 1.8
    check_close(p, {1 - 0.38}, 1e-15);
    set_grad(p, {1});
    opt.step();  // buf = 1.8 + 1 = 2.8, d = 1 + 2.52
    check_close(p, {0.62 - 0.352}, 1e-15);
  }
  SUBCASE("momentum 0 keeps no buffer") {
    Tensor p = param({1});
    optim::SGD opt({p}, 0.1);
    set_grad(p, {1});
    opt.step();
    CHECK(opt.state_dict().empty());
    CHECK(opt.param_step(0) == 1);
  }
}

// ---- Adam / AdamW -------------------------------------------------------------------------------------

namespace {
// Scalar reference of torch's Adam/AdamW for one element, written from the paper's formulas.
struct RefAdam {
  double lr, b1, b2, eps, wd;
  bool decoupled, amsgrad = false;
  double m = 0, v = 0, vmax = 0;
  int t = 0;
  double step(double p, double g) {
    ++t;
    if (decoupled) p *= 1 - lr * wd;
    else g += wd * p;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    vmax = std::max(vmax, v);
    const double mhat = m / (1 - std::pow(b1, t));
    const double vhat = (amsgrad ? vmax : v) / (1 - std::pow(b2, t));
    return p - lr * mhat / (std::sqrt(vhat) + eps);
  }
};
}  // namespace

TEST_CASE("Adam: the first step moves each weight by about lr against its gradient's sign") {
  Tensor p = param({1, -2, 3});
  optim::Adam opt({p}, 0.1);
  set_grad(p, {0.5, -0.25, 1e-3});
  opt.step();
  // m̂ = g, v̂ = g²: p -= lr * g / (|g| + eps)
  check_close(p, {1 - 0.1 * 0.5 / (0.5 + 1e-8), -2 + 0.1 * 0.25 / (0.25 + 1e-8),
                  3 - 0.1 * 1e-3 / (1e-3 + 1e-8)},
              1e-14);
  CHECK(opt.param_step(0) == 1);
  auto sd = opt.state_dict();
  REQUIRE(sd.size() == 2);
  CHECK(sd[0].first == "state.0.exp_avg");
  CHECK(sd[1].first == "state.0.exp_avg_sq");
  check_close(sd[0].second, {0.05, -0.025, 1e-4}, 1e-15);
}

TEST_CASE("Adam (L2), AMSGrad and AdamW (decoupled) follow the scalar reference for 3 steps") {
  const double grads[3][2] = {{0.5, -1}, {-0.2, 0.3}, {0.1, 2}};
  for (int variant = 0; variant < 3; ++variant) {
    CAPTURE(variant);
    Tensor p = param({1, -2});
    std::unique_ptr<optim::Optimizer> opt;
    RefAdam ref[2];
    for (auto& r : ref) r = RefAdam{0.05, 0.8, 0.9, 1e-6, 0.1, variant == 2};
    if (variant == 0)
      opt = std::make_unique<optim::Adam>(std::vector<Tensor>{p}, 0.05,
                                          optim::Adam::Betas{0.8, 0.9}, 1e-6, 0.1);
    if (variant == 1) {
      opt = std::make_unique<optim::Adam>(std::vector<Tensor>{p}, 0.05,
                                          optim::Adam::Betas{0.8, 0.9}, 1e-6, 0.1, true);
      for (auto& r : ref) r.amsgrad = true;
    }
    if (variant == 2)
      opt = std::make_unique<optim::AdamW>(std::vector<Tensor>{p}, 0.05,
                                           optim::Adam::Betas{0.8, 0.9}, 1e-6, 0.1);
    double expect[2] = {1, -2};
    for (const auto& g : grads) {
      set_grad(p, {g[0], g[1]});
      opt->step();
      for (int i = 0; i < 2; ++i) expect[i] = ref[i].step(expect[i], g[i]);
      check_close(p, {expect[0], expect[1]}, 1e-14, 1e-13);
    }
  }
}

TEST_CASE("AdamW defaults are PyTorch's and its decay is lr * weight_decay per step") {
  Tensor p = param({2});
  optim::AdamW opt(std::vector<Tensor>{p});
  CHECK(opt.lr() == 1e-3);
  CHECK(opt.weight_decay() == 1e-2);
  CHECK(opt.betas() == optim::Adam::Betas{0.9, 0.999});
  CHECK(opt.eps() == 1e-8);
  CHECK(opt.name() == "AdamW");
  set_grad(p, {0});  // a zero gradient: only the decay moves the weight
  opt.step();
  check_close(p, {2 * (1 - 1e-3 * 1e-2)}, 1e-16);
  optim::Adam adam(std::vector<Tensor>{param({1})});
  CHECK(adam.weight_decay() == 0);
  CHECK(adam.name() == "Adam");
}

// ---- groups, skipping, zero_grad ----------------------------------------------------------------------

TEST_CASE("param groups: own lr and weight_decay (no decay on biases)") {
  Tensor w = param({1, 1}), bias = param({1});
  optim::AdamW opt({{{w}, std::nullopt, std::nullopt}, {{bias}, 0.01, 0.0}}, /*lr=*/0.1,
                   {0.9, 0.999}, 1e-8, /*weight_decay=*/0.5);
  CHECK(opt.num_groups() == 2);
  CHECK(opt.lr(0) == 0.1);
  CHECK(opt.lr(1) == 0.01);
  CHECK(opt.weight_decay(0) == 0.5);
  CHECK(opt.weight_decay(1) == 0.0);
  set_grad(w, {0, 0});
  set_grad(bias, {0});
  opt.step();
  check_close(w, {1 - 0.1 * 0.5, 1 - 0.1 * 0.5}, 1e-16);
  check_close(bias, {1}, 0);  // not decayed
  opt.set_lr(1, 0.2);
  CHECK(opt.lr(1) == 0.2);
  CHECK(opt.lr(0) == 0.1);
  opt.set_lr(0.3);
  CHECK(opt.lr(0) == 0.3);
  CHECK(opt.lr(1) == 0.3);
  check_error([&] { opt.lr(2); }, {"group 2 out of range", "2 groups"});
  check_error([&] { opt.set_lr(0, -1); }, {"invalid lr"});

  // SGD groups: the per-group lr is used.
  Tensor a = param({1}), c = param({1});
  optim::SGD sgd({{{a}, std::nullopt, std::nullopt}, {{c}, 0.5, std::nullopt}}, 0.1);
  set_grad(a, {1});
  set_grad(c, {1});
  sgd.step();
  check_close(a, {0.9}, 1e-16);
  check_close(c, {0.5}, 1e-16);
}

TEST_CASE("parameters without a gradient are skipped; zero_grad clears gradients") {
  Tensor a = param({1}), b = param({5});
  optim::Adam opt({a, b}, 0.1);
  set_grad(a, {1});
  opt.step();
  check_close(b, {5}, 0);
  CHECK(opt.param_step(0) == 1);
  CHECK(opt.param_step(1) == 0);
  for (const auto& [name, t] : opt.state_dict()) CHECK(name.rfind("state.0.", 0) == 0);
  opt.zero_grad();
  CHECK(!a.grad().defined());
  CHECK(!b.grad().defined());
  // b's first update happens at the optimizer's 2nd step but is b's own step 1 (bias correction
  // per parameter, as PyTorch): again a move of ~lr.
  set_grad(b, {3});
  opt.step();
  check_close(b, {5 - 0.1 * 3 / (3 + 1e-8)}, 1e-14);
  CHECK(opt.param_step(1) == 1);
  CHECK(opt.step_count() == 2);
}

TEST_CASE("optimizers work through autograd on float32 parameters") {
  Tensor w = param({1, 2, 3}, DType::f32);
  optim::SGD opt({w}, 0.25);
  backward(sum(square(w)));  // grad = 2w
  opt.step();
  check_close(w, {0.5, 1, 1.5}, 0);
  CHECK(w.dtype() == DType::f32);
}

TEST_CASE("constructor errors name the problem") {
  Tensor p = param({1, 2});
  check_error([&] { optim::SGD({p, p}, 0.1); }, {"SGD", "parameter 1", "more than once"});
  check_error([&] { optim::SGD({arange(3)}, 0.1); }, {"parameter 0", "i64[3]", "f32 or f64"});
  Tensor m = zeros({2, 3}, DType::f64);
  check_error([&] { optim::SGD({ops::transpose(m, 0, 1)}, 0.1); }, {"not contiguous"});
  check_error([&] { optim::SGD({Tensor()}, 0.1); }, {"undefined"});
  check_error([&] { optim::SGD(std::vector<Tensor>{}, 0.1); }, {"empty parameter list"});
  check_error([&] { optim::SGD({p}, -0.1); }, {"invalid lr -0.1"});
  check_error([&] { optim::SGD({p}, 0.1, 0, 0, 0, true); }, {"nesterov", "momentum > 0"});
  check_error([&] { optim::Adam({p}, 0.1, {1.0, 0.999}); }, {"Adam", "invalid beta1 1"});
  check_error([&] { optim::AdamW({p}, 0.1, {0.9, -0.1}); }, {"AdamW", "invalid beta2"});
  check_error([&] { optim::AdamW({p}, 0.1, {0.9, 0.99}, -1); }, {"invalid eps"});
  check_error([&] {
    optim::SGD opt({p}, 0.1);
    p.set_grad(zeros({3}, DType::f64));
    opt.step();
  }, {"SGD.step", "f64[2]", "f64[3]"});
}

// ---- state save / load --------------------------------------------------------------------------------

namespace {

// A small least-squares problem; each call to `train` runs `n` full steps.
struct Problem {
  Tensor x = randn({6, 3}, DType::f64), y = randn({6, 2}, DType::f64);
  Problem() {
    Generator g(7);
    x = randn({6, 3}, DType::f64, &g);
    y = randn({6, 2}, DType::f64, &g);
  }
  void train(optim::Optimizer& opt, optim::Scheduler* sched, const Tensor& W, const Tensor& b,
             int n) const {
    for (int i = 0; i < n; ++i) {
      opt.zero_grad();
      backward(mean(square(matmul(x, transpose(W, 0, 1)) + b - y)));
      opt.step();
      if (sched) sched->step();
    }
  }
};

std::pair<Tensor, Tensor> fresh_params() {
  Generator g(3);
  Tensor W = randn({2, 3}, DType::f64, &g), b = randn({2}, DType::f64, &g);
  W.set_requires_grad();
  b.set_requires_grad();
  return {W, b};
}

using Make = std::function<std::unique_ptr<optim::Optimizer>(std::vector<optim::ParamGroup>)>;

}  // namespace

TEST_CASE("optimizer + schedule state round trip: resuming continues identically") {
  const std::vector<std::pair<const char*, Make>> makers = {
      {"SGD", [](auto g) { return std::make_unique<optim::SGD>(g, 0.1, 0.9, 0.1, 0.01); }},
      {"Adam", [](auto g) { return std::make_unique<optim::Adam>(g, 0.05, optim::Adam::Betas{0.9, 0.99}, 1e-8, 0.01, true); }},
      {"AdamW", [](auto g) { return std::make_unique<optim::AdamW>(g, 0.05); }},
  };
  const Problem prob;
  for (const auto& [name, make] : makers) {
    CAPTURE(name);
    // Straight: 7 steps.
    auto [W1, b1] = fresh_params();
    auto opt1 = make({{{W1}, {}, {}}, {{b1}, {}, 0.0}});
    optim::CosineAnnealingLR sched1(*opt1, 7, 1e-3);
    prob.train(*opt1, &sched1, W1, b1, 7);

    // Resumed: 3 steps, save (through json text, as a checkpoint would), restore into fresh
    // objects, 4 more steps.
    auto [W2, b2] = fresh_params();
    auto opt2 = make({{{W2}, {}, {}}, {{b2}, {}, 0.0}});
    optim::CosineAnnealingLR sched2(*opt2, 7, 1e-3);
    prob.train(*opt2, &sched2, W2, b2, 3);
    std::vector<std::pair<std::string, Tensor>> saved;
    for (const auto& [n, t] : opt2->state_dict()) saved.emplace_back(n, ops::clone(t));
    const auto meta = nlohmann::json::parse(opt2->state_meta().dump());
    const auto sched_state = nlohmann::json::parse(sched2.state().dump());
    const Tensor W_saved = ops::clone(W2), b_saved = ops::clone(b2);

    auto [W3, b3] = fresh_params();
    ops::copy_(W3, W_saved);
    ops::copy_(b3, b_saved);
    auto opt3 = make({{{W3}, {}, {}}, {{b3}, {}, 0.0}});
    optim::CosineAnnealingLR sched3(*opt3, 7, 1e-3);
    opt3->load_state(saved, meta);
    sched3.load_state(sched_state);
    CHECK(opt3->step_count() == 3);
    CHECK(opt3->lr(0) == opt2->lr(0));
    CHECK(sched3.t() == 3);
    prob.train(*opt3, &sched3, W3, b3, 4);

    check_identical(W3, W1);
    check_identical(b3, b1);
    CHECK(opt3->lr(1) == opt1->lr(1));
    // The loaded buffers are copies: the saved tensors did not move.
    for (const auto& [n, t] : saved) {
      bool found = false;
      for (const auto& [n3, t3] : opt3->state_dict())
        if (n3 == n) found = !t3.is_same(t) && t3.storage() != t.storage();
      CHECK(found);
    }
  }
}

TEST_CASE("load_state rejects mismatched or corrupt state with a clear message") {
  auto [W, b] = fresh_params();
  optim::Adam opt({W, b}, 0.1);
  const Problem prob;
  prob.train(opt, nullptr, W, b, 2);
  const auto sd = opt.state_dict();
  const auto meta = opt.state_meta();

  SUBCASE("another optimizer type") {
    optim::AdamW other({W, b});
    check_error([&] { other.load_state(sd, meta); }, {"AdamW::load_state", "saved by Adam"});
  }
  SUBCASE("parameter count") {
    optim::Adam other({W});
    check_error([&] { other.load_state(sd, meta); }, {"param group 0 has 2 parameters", "1 here"});
  }
  SUBCASE("group count") {
    optim::Adam other({{{W}, {}, {}}, {{b}, {}, {}}});
    check_error([&] { other.load_state(sd, meta); }, {"1 param groups", "has 2"});
  }
  SUBCASE("shape") {
    Tensor W2 = zeros({3, 2}, DType::f64);
    optim::Adam other({W2, b});
    check_error([&] { other.load_state(sd, meta); },
                {"parameter 0 has shape [3, 2]", "state is for shape [2, 3]"});
  }
  SUBCASE("dtype") {
    Tensor W2 = zeros({2, 3}, DType::f32);
    optim::Adam other({W2, b});
    check_error([&] { other.load_state(sd, meta); }, {"parameter 0 is f32", "state is for f64"});
  }
  SUBCASE("missing, unexpected, misshapen buffers") {
    optim::Adam other({W, b});
    auto missing = sd;
    missing.pop_back();
    check_error([&] { other.load_state(missing, meta); }, {"missing buffer 'state.1.exp_avg_sq'"});
    auto extra = sd;
    extra.emplace_back("state.0.momentum_buffer", zeros({2, 3}, DType::f64));
    check_error([&] { other.load_state(extra, meta); },
                {"unexpected tensor 'state.0.momentum_buffer'"});
    auto bad = sd;
    bad[0].second = zeros({6}, DType::f64);
    check_error([&] { other.load_state(bad, meta); },
                {"buffer 'state.0.exp_avg' is f64[6]", "parameter 0 is f64[2, 3]"});
    // Nothing was changed by the failed loads.
    CHECK(other.step_count() == 0);
    CHECK(other.state_dict().empty());
  }
  SUBCASE("malformed meta") {
    optim::Adam other({W, b});
    auto m = meta;
    m.erase("param_steps");
    check_error([&] { other.load_state(sd, m); }, {"malformed state meta", "param_steps"});
    check_error([&] { other.load_state(sd, nlohmann::json::array()); }, {"not a json object"});
    m = meta;
    m["version"] = 99;
    check_error([&] { other.load_state(sd, m); }, {"unsupported state version 99"});
  }
}

// ---- clip_grad_norm_ ------------------------------------------------------------------------------------

TEST_CASE("clip_grad_norm_: global L2 norm, scaling by max_norm / (norm + 1e-6)") {
  Tensor a = param({1, 1}), b = param({1}), c = param({1});  // c has no gradient
  set_grad(a, {3, 4});
  set_grad(b, {12});
  const double norm = optim::clip_grad_norm_({a, b, c}, 6.5);
  CHECK(norm == 13.0);
  const double coef = 6.5 / (13.0 + 1e-6);
  check_close(a.grad(), {3 * coef, 4 * coef}, 1e-15);
  check_close(b.grad(), {12 * coef}, 1e-15);
  CHECK(optim::grad_norm({a, b}) == doctest::Approx(6.5).epsilon(1e-6));

  // Below max_norm: returned, untouched.
  set_grad(a, {3, 4});
  set_grad(b, {12});
  CHECK(optim::clip_grad_norm_({a, b}, 20) == 13.0);
  check_close(a.grad(), {3, 4}, 0);
  // No gradients at all: 0.
  CHECK(optim::clip_grad_norm_({c}, 1.0) == 0.0);
}

TEST_CASE("clip_grad_norm_: inf norm and other p") {
  Tensor a = param({1, 1}), b = param({1});
  set_grad(a, {3, -4});
  set_grad(b, {-12});
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(optim::clip_grad_norm_({a, b}, 6, inf) == 12.0);
  const double coef = 6 / (12 + 1e-6);
  check_close(a.grad(), {3 * coef, -4 * coef}, 1e-15);
  check_close(b.grad(), {-12 * coef}, 1e-15);
  set_grad(a, {3, -4});
  set_grad(b, {-12});
  CHECK(optim::grad_norm({a, b}, 1.0) == 19.0);
  CHECK(optim::grad_norm({a, b}, 3.0) == doctest::Approx(std::cbrt(27 + 64 + 1728.0)));
  check_error([&] { optim::grad_norm({a}, 0.0); }, {"norm_type must be > 0"});
  // float32 gradients accumulate in double.
  Tensor f = param({0, 0}, DType::f32);
  set_grad(f, {3, 4});
  CHECK(optim::clip_grad_norm_({f}, 10) == 5.0);
}

TEST_CASE("clip_grad_norm_: non-finite norms leave gradients untouched or throw") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  Tensor a = param({1, 1}), b = param({1});
  set_grad(a, {3, nan});
  set_grad(b, {100});
  CHECK(std::isnan(optim::clip_grad_norm_({a, b}, 1.0)));
  check_close(b.grad(), {100}, 0);  // not scaled
  CHECK(!optim::all_finite(optim::grads_of({a, b})));
  check_error([&] { optim::clip_grad_norm_({a, b}, 1.0, 2.0, true); },
              {"clip_grad_norm_", "non-finite", "nan"});
  CHECK(std::isnan(optim::grad_norm({a, b}, inf)));  // max does not swallow NaN

  set_grad(a, {inf, 1});
  CHECK(std::isinf(optim::clip_grad_norm_({a, b}, 1.0)));
  CHECK(std::isinf(optim::grad_norm({a, b}, inf)));
  check_close(b.grad(), {100}, 0);

  set_grad(a, {1, 2});
  CHECK(optim::all_finite(optim::grads_of({a, b})));
  CHECK(optim::all_finite({Tensor(), a.grad()}));
  CHECK(!optim::all_finite({tensor({1, inf}, DType::f32)}));
}

// ---- schedules ------------------------------------------------------------------------------------------

TEST_CASE("schedules: values by hand, per group, and state round trip") {
  Tensor p = param({0}), q = param({0});
  SUBCASE("CosineAnnealingLR") {
    optim::SGD opt({{{p}, 1.0, {}}, {{q}, 0.5, {}}}, 0.1);
    optim::CosineAnnealingLR s(opt, 4, 0.1);
    CHECK(opt.lr(0) == 1.0);
    s.step();
    CHECK(opt.lr(0) == doctest::Approx(0.1 + 0.9 * (1 + std::cos(std::numbers::pi / 4)) / 2));
    CHECK(opt.lr(1) == doctest::Approx(0.1 + 0.4 * (1 + std::cos(std::numbers::pi / 4)) / 2));
    s.step();
    CHECK(opt.lr(0) == doctest::Approx(0.55));
    s.step();
    s.step();
    CHECK(opt.lr(0) == doctest::Approx(0.1));
    CHECK(s.last_lr() == std::vector<double>{opt.lr(0), opt.lr(1)});
    CHECK(s.base_lrs() == std::vector<double>{1.0, 0.5});
  }
  SUBCASE("LinearWarmupCosine") {
    optim::SGD opt({p}, 2.0);
    optim::LinearWarmupCosine s(opt, 4, 8, 0.0);
    std::vector<double> got{opt.lr()};
    for (int i = 0; i < 10; ++i) {
      s.step();
      got.push_back(opt.lr());
    }
    const std::vector<double> want{0, 0.5, 1, 1.5, 2, 1 + std::cos(std::numbers::pi / 4), 1,
                                   1 - std::cos(std::numbers::pi / 4), 0, 0, 0};
    for (size_t i = 0; i < want.size(); ++i)
      CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-14));
    check_error([&] { optim::LinearWarmupCosine(opt, 5, 5); }, {"0 <= warmup_steps < total_steps"});
  }
  SUBCASE("StepLR") {
    optim::SGD opt({p}, 1.0);
    optim::StepLR s(opt, 2, 0.1);
    std::vector<double> got{opt.lr()};
    for (int i = 0; i < 5; ++i) {
      s.step();
      got.push_back(opt.lr());
    }
    const std::vector<double> want{1, 1, 0.1, 0.1, 0.01, 0.01};
    for (size_t i = 0; i < want.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]));
  }
  SUBCASE("state round trip and mismatches") {
    optim::SGD opt({p}, 1.0);
    optim::LinearWarmupCosine s(opt, 2, 10, 0.01);
    for (int i = 0; i < 5; ++i) s.step();
    const auto st = nlohmann::json::parse(s.state().dump());
    optim::SGD opt2({q}, 1.0);
    optim::LinearWarmupCosine s2(opt2, 2, 10, 0.01);
    s2.load_state(st);
    CHECK(opt2.lr() == opt.lr());
    s.step();
    s2.step();
    CHECK(opt2.lr() == opt.lr());
    CHECK(s2.t() == 6);

    optim::LinearWarmupCosine other(opt2, 3, 10, 0.01);
    check_error([&] { other.load_state(st); }, {"saved parameters", "warmup_steps"});
    optim::StepLR step(opt2, 2);
    check_error([&] { step.load_state(st); }, {"StepLR::load_state", "saved by LinearWarmupCosine"});
    check_error([&] { s2.load_state(nlohmann::json{{"scheduler", "LinearWarmupCosine"}}); },
                {"malformed state"});
  }
}

// ---- gradient accumulation ------------------------------------------------------------------------------

TEST_CASE("GradAccumulator: k micro-batches of n equal one batch of k*n (mean loss)") {
  Generator g(11);
  const Tensor x = randn({12, 3}, DType::f64, &g), y = randn({12, 1}, DType::f64, &g);
  const Tensor W0 = randn({1, 3}, DType::f64, &g);
  auto loss = [](const Tensor& W, const Tensor& xs, const Tensor& ys) {
    return mean(square(matmul(xs, transpose(W, 0, 1)) - ys));
  };
  for (int k : {1, 3, 4}) {
    CAPTURE(k);
    const int n = 12 / k;
    Tensor Wa = ops::clone(W0), Wb = ops::clone(W0);
    Wa.set_requires_grad();
    Wb.set_requires_grad();
    optim::SGD big({Wa}, 0.1, 0.9);
    optim::SGD small({Wb}, 0.1, 0.9);
    int clipped_calls = 0;
    optim::GradAccumulator acc(small, k, [&] {
      ++clipped_calls;
      return optim::all_finite(optim::grads_of({Wb}));
    });
    for (int step = 0; step < 3; ++step) {
      big.zero_grad();
      backward(loss(Wa, x, y));
      big.step();
      for (int j = 0; j < k; ++j) {
        const bool stepped = acc.accumulate(loss(Wb, ops::narrow(x, 0, j * n, n),
                                                 ops::narrow(y, 0, j * n, n)));
        CHECK(stepped == (j == k - 1));
      }
      CHECK(acc.pending() == 0);
      CHECK(!Wb.grad().defined());  // zero_grad ran
    }
    CHECK(clipped_calls == 3);
    testing::check_close_tensor(Wb, Wa, 1e-14, 1e-13);
  }
}

TEST_CASE("GradAccumulator: pre_step can skip a step") {
  Tensor w = param({1});
  optim::SGD opt({w}, 0.1);
  optim::GradAccumulator acc(opt, 2, [] { return false; });
  CHECK(!acc.accumulate(sum(w * 3.0)));
  CHECK(acc.pending() == 1);
  check_close(w.grad(), {1.5}, 0);  // loss / k
  CHECK(!acc.accumulate(sum(w * 3.0)));
  CHECK(acc.skipped() == 1);
  check_close(w, {1}, 0);
  CHECK(!w.grad().defined());
  check_error([&] { optim::GradAccumulator(opt, 0); }, {"k must be >= 1"});
  check_error([&] { acc.accumulate(w * 2.0 + tensor({1, 2}, DType::f64)); }, {"single element"});
}

TEST_CASE("large parameters take the OpenMP path and match the scalar reference") {
  // 300k elements: above the kernels' parallel thresholds (65536 for SGD, 32768 for Adam).
  const int64_t n = 300000;
  Generator g(5);
  Tensor p = randn({n}, DType::f64, &g), grad = randn({n}, DType::f64, &g);
  const auto p0 = p.to_vector<double>(), g0 = grad.to_vector<double>();
  optim::AdamW opt({p}, 0.01);
  p.set_grad(grad);
  opt.step();
  opt.step();
  const auto got = p.to_vector<double>();
  for (int64_t i = 0; i < n; i += 997) {
    RefAdam r{0.01, 0.9, 0.999, 1e-8, 1e-2, true};
    const double want = r.step(r.step(p0[size_t(i)], g0[size_t(i)]), g0[size_t(i)]);
    CHECK(got[size_t(i)] == doctest::Approx(want).epsilon(1e-13));
  }
}
