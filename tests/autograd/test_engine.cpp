// The backward engine: accumulation, grad mode, detach, retain_graph, and its error messages.
#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "test_util.h"

using namespace attnlab;
using testing::check_close;
using testing::check_error;

TEST_CASE("backward of a small expression by hand") {
  Tensor x = tensor({1, 2, 3}, DType::f64).set_requires_grad();
  Tensor w = tensor({0.5, -1, 2}, DType::f64).set_requires_grad();
  // L = sum(x * w + x²) -> dL/dx = w + 2x, dL/dw = x
  backward(sum(x * w + square(x)));
  check_close(x.grad(), {2.5, 3, 8});
  check_close(w.grad(), {1, 2, 3});
}

TEST_CASE("gradients accumulate across backward calls and reuse of a tensor") {
  Tensor x = tensor({2}, DType::f64).set_requires_grad();
  Tensor y = x * x;  // used twice below: d(y + y)/dx = 4x
  backward(sum(y + y));
  check_close(x.grad(), {8});
  backward(sum(x * 3.0));
  check_close(x.grad(), {11});
  zero_(x.grad());
  check_close(x.grad(), {0});
}

TEST_CASE("explicit output gradient for non-scalar roots") {
  Tensor x = tensor({1, 2}, DType::f64).set_requires_grad();
  Tensor y = x * 3.0;
  backward(y, tensor({1, 10}, DType::f64));
  check_close(x.grad(), {3, 30});
  Tensor z = x * 2.0;
  check_error([&] { backward(z); }, {"implicitly created only for a single-element", "f64[2]"});
  check_error([&] { backward(x * 2.0, tensor({1, 2, 3}, DType::f64)); }, {"does not match"});
}

TEST_CASE("NoGradGuard and detach stop recording") {
  Tensor x = tensor({1}, DType::f64).set_requires_grad();
  {
    NoGradGuard ng;
    Tensor y = x * 2.0;
    CHECK(!y.requires_grad());
    CHECK(y.is_leaf());
  }
  CHECK(GradMode::is_enabled());
  Tensor d = (x * 2.0).detach();
  CHECK(!d.requires_grad());
  Tensor y = x * d;  // d is a constant
  backward(sum(y));
  check_close(x.grad(), {2});
  check_error([] { backward(sum(tensor({1, 2}))); }, {"does not require grad"});
}

TEST_CASE("a second backward through a freed graph fails; retain_graph keeps it") {
  Tensor x = tensor({3}, DType::f64).set_requires_grad();
  Tensor y = exp(x) * x;
  Tensor L = sum(y);
  backward(L, Tensor(), /*retain_graph=*/true);
  const double g1 = x.grad().item<double>();
  backward(L);  // retained: works, accumulates
  CHECK(x.grad().item<double>() == doctest::Approx(2 * g1));
  check_error([&] { backward(L); }, {"backward through the graph a second time", "retain_graph"});
}

TEST_CASE("modifying a saved tensor in place is detected by the version counter") {
  Tensor x = tensor({1, 2}, DType::f64).set_requires_grad();
  Tensor c = tensor({3, 4}, DType::f64);  // does not require grad: in-place is allowed
  Tensor y = sum(x * c);                  // mul saves c for x's gradient
  add_(c, tensor({1, 1}, DType::f64));
  check_error([&] { backward(y); }, {"backward of mul", "modified in place", "version"});

  Tensor x2 = tensor({1, 2}, DType::f64).set_requires_grad();
  Tensor e = exp(x2);  // exp saves its output
  Tensor L = sum(e);
  {
    NoGradGuard ng;
    mul_(e, 2.0);
  }
  check_error([&] { backward(L); }, {"backward of exp", "modified in place"});
}

TEST_CASE("in-place ops refuse tensors requiring grad in grad mode; allowed under NoGradGuard") {
  Tensor w = tensor({1, 2}).set_requires_grad();
  check_error([&] { add_(w, tensor({1, 1})); }, {"add_", "requires grad", "NoGradGuard"});
  {
    NoGradGuard ng;
    add_(w, tensor({1, 1}));
  }
  check_close(w, {2, 3});
  check_error([&] { (w * 2.0).set_requires_grad(false); }, {"only leaf tensors"});
  check_error([] { arange(3).set_requires_grad(); }, {"only floating"});
}

TEST_CASE("gradients flow through views into the base and through broadcasting") {
  Tensor base = zeros({2, 3}, DType::f64).set_requires_grad();
  Tensor v = transpose(base, 0, 1);     // [3, 2]
  Tensor s = narrow(v, 0, 1, 2);         // rows 1..2 of the transpose
  backward(sum(s * tensor({{1, 2}, {3, 4}}, DType::f64)));
  check_close(base.grad(), {0, 1, 3, 0, 2, 4});
  Tensor b = tensor({1, 2, 3}, DType::f64).set_requires_grad();
  backward(sum(expand(b, {4, 3}) * 2.0));
  check_close(b.grad(), {8, 8, 8});
}

TEST_CASE("autograd::grad returns gradients without touching .grad") {
  Tensor x = tensor({1, 2}, DType::f64).set_requires_grad();
  Tensor y = tensor({3}, DType::f64).set_requires_grad();
  auto g = grad(sum(x * y), {x, y});
  check_close(g[0], {3, 3});
  check_close(g[1], {3});
  CHECK(!x.grad().defined());
}

TEST_CASE("a deep chain does not overflow the stack (iterative topological sort)") {
  Tensor x = tensor({1}, DType::f64).set_requires_grad();
  Tensor y = x;
  for (int i = 0; i < 20000; ++i) y = y * 1.0;
  backward(sum(y));
  check_close(x.grad(), {1});
}

TEST_CASE("to_dtype passes the gradient back in the input's dtype") {
  // Finite differences cannot see through f32 rounding, so this derivative (the identity) is checked
  // directly.
  Tensor x = tensor({1, 2, 3}, DType::f64).set_requires_grad();
  Tensor y = to_dtype(x, DType::f32);
  CHECK(y.dtype() == DType::f32);
  backward(sum(y * tensor({1, 2, 3})));
  CHECK(x.grad().dtype() == DType::f64);
  check_close(x.grad(), {1, 2, 3});
}
