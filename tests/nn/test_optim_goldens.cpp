// Ten optimizer steps of SGD, Adam (+AMSGrad) and AdamW with clip_grad_norm_ and CosineAnnealingLR,
// checked against torch 1.13 (tests/fixtures/make_optim_goldens.py -> tests/data/optim/goldens.json),
// and the schedules' values against their formulas and torch's schedulers.
#include <doctest/doctest.h>

#include <fstream>
#include <functional>
#include <memory>

#include <nlohmann/json.hpp>

#include "autograd/functions.h"
#include "nn/optim/adam.h"
#include "nn/optim/adamw.h"
#include "nn/optim/clip_grad.h"
#include "nn/optim/schedule.h"
#include "nn/optim/sgd.h"
#include "tensor/creation.h"
#include "test_util.h"

using namespace attnlab;
using testing::check_close;
using nlohmann::json;

namespace {

const json& goldens() {
  static const json j = [] {
    std::ifstream f(std::string(ATTNLAB_TEST_DATA_DIR) + "/optim/goldens.json");
    REQUIRE(f.good());
    return json::parse(f);
  }();
  return j;
}

Tensor leaf(const json& values, Shape shape, DType dtype) {
  Tensor t = from_vector(values.get<std::vector<double>>(), std::move(shape), dtype);
  t.set_requires_grad();
  return t;
}

using MakeOpt = std::function<std::unique_ptr<optim::Optimizer>(const std::vector<Tensor>&)>;

// Replays the golden problem: loss = mean((x Wᵀ + b - y)²), clip to 1, step, schedule.
void replay(const char* key, const MakeOpt& make, DType dtype, double rtol) {
  const json& g = goldens();
  const json& ref = g.at(key);
  Tensor W = leaf(g["W0"], {3, 4}, dtype), b = leaf(g["b0"], {3}, dtype);
  const Tensor x = from_vector(g["x"].get<std::vector<double>>(), {8, 4}, dtype);
  const Tensor y = from_vector(g["y"].get<std::vector<double>>(), {8, 3}, dtype);
  auto opt = make({W, b});
  optim::CosineAnnealingLR sched(*opt, /*T_max=*/10, /*eta_min=*/1e-4);
  const int steps = g["steps"].get<int>();
  for (int s = 0; s < steps; ++s) {
    INFO(std::string(key) << " step " << s);
    opt->zero_grad();
    backward(mean(square(matmul(x, transpose(W, 0, 1)) + b - y)));
    const double norm = optim::clip_grad_norm_({W, b}, 1.0);
    CHECK(norm == doctest::Approx(ref["norm"][s].get<double>()).epsilon(rtol));
    CHECK(opt->lr() == doctest::Approx(ref["lr"][s].get<double>()).epsilon(1e-13));
    opt->step();
    sched.step();
    check_close(W, ref["W"][s].get<std::vector<double>>(), 0.0, rtol);
    check_close(b, ref["b"][s].get<std::vector<double>>(), 0.0, rtol);
  }
}

}  // namespace

// f64 trajectories agree with PyTorch to ~1e-15 relative; 1e-12 leaves room for libm and FMA.
TEST_CASE("SGD (momentum 0.9, nesterov, weight_decay 0.01) matches torch for 10 steps") {
  replay("sgd", [](const std::vector<Tensor>& ps) {
    return std::make_unique<optim::SGD>(ps, 0.2, 0.9, 0.0, 0.01, true);
  }, DType::f64, 1e-12);
}

TEST_CASE("Adam (weight_decay 0.01) matches torch for 10 steps") {
  replay("adam", [](const std::vector<Tensor>& ps) {
    return std::make_unique<optim::Adam>(ps, 0.1, optim::Adam::Betas{0.9, 0.999}, 1e-8, 0.01);
  }, DType::f64, 1e-12);
}

TEST_CASE("Adam with AMSGrad matches torch for 10 steps") {
  replay("adam_amsgrad", [](const std::vector<Tensor>& ps) {
    return std::make_unique<optim::Adam>(ps, 0.1, optim::Adam::Betas{0.9, 0.999}, 1e-8, 0.01, true);
  }, DType::f64, 1e-12);
}

TEST_CASE("AdamW (weight_decay 0.01) matches torch for 10 steps") {
  replay("adamw", [](const std::vector<Tensor>& ps) {
    return std::make_unique<optim::AdamW>(ps, 0.1, optim::Adam::Betas{0.9, 0.999}, 1e-8, 0.01);
  }, DType::f64, 1e-12);
}

TEST_CASE("AdamW in float32 matches torch's float32 run") {
  // Different summation orders in matmul/mean round differently in f32: compare loosely.
  replay("adamw_f32", [](const std::vector<Tensor>& ps) {
    return std::make_unique<optim::AdamW>(ps, 0.1);
  }, DType::f32, 2e-5);
}

TEST_CASE("schedules match their formulas and torch's schedulers") {
  const json& s = goldens()["schedules"];
  const double base = s["base_lr"].get<double>();
  auto values = [&](auto make, int n) {
    Tensor p = zeros({1}, DType::f64);
    optim::SGD opt({p}, base);
    auto sched = make(opt);
    std::vector<double> out{opt.lr()};
    for (int t = 0; t < n; ++t) {
      sched.step();
      out.push_back(opt.lr());
      CHECK(sched.last_lr()[0] == opt.lr());
    }
    return out;
  };
  auto close = [](const std::vector<double>& got, const json& want) {
    const auto w = want.get<std::vector<double>>();
    REQUIRE(got.size() == w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      INFO("t = " << i);
      CHECK(got[i] == doctest::Approx(w[i]).epsilon(1e-12).scale(1e-6));
    }
  };
  close(values([](optim::Optimizer& o) { return optim::LinearWarmupCosine(o, 5, 20, 1e-3); }, 25),
        s["warmup_cosine"]);
  close(values([](optim::Optimizer& o) { return optim::LinearWarmupCosine(o, 5, 20, 1e-3, 0.1); },
               25),
        s["warmup_cosine_start"]);
  close(values([](optim::Optimizer& o) { return optim::StepLR(o, 3, 0.5); }, 10), s["step_lr"]);
  close(values([](optim::Optimizer& o) { return optim::StepLR(o, 3, 0.5); }, 10),
        s["torch_step_lr"]);
  // torch's CosineAnnealingLR.step() uses a recursive form; our closed form agrees to rounding,
  // including past T_max where both rise again.
  close(values([](optim::Optimizer& o) { return optim::CosineAnnealingLR(o, 10, 1e-4); }, 15),
        s["torch_cosine"]);
}
