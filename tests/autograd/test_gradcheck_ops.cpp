// Every differentiable op through the one finite-difference checker, in f64, including broadcasting,
// views and non-contiguous inputs.
#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "test_util.h"

using namespace attnlab;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

namespace {
Generator gen(2024);

// A leaf f64 tensor with values in [lo, hi).
Tensor leaf(const Shape& s, double lo = -1, double hi = 1) {
  Tensor t = uniform(s, lo, hi, DType::f64, &gen);
  t.set_requires_grad(true);
  return t;
}

// A non-contiguous leaf: the transpose of a fresh [s1, s0] tensor.
Tensor leaf_t(int64_t s0, int64_t s1, double lo = -1, double hi = 1) {
  Tensor t = ops::transpose(uniform({s1, s0}, lo, hi, DType::f64, &gen), 0, 1);
  t.set_requires_grad(true);
  return t;
}

void check(const char* name, const Fn& f, const std::vector<Tensor>& in, double atol = 1e-6) {
  const GradcheckResult r = gradcheck(f, in, 1e-6, atol, 1e-5);
  INFO(std::string(name) << ": " << r.message);
  CHECK(r.ok);
}
}  // namespace

TEST_CASE("gradcheck: arithmetic with broadcasting and non-contiguous inputs") {
  check("add", [](auto& x) { return add(x[0], x[1]); }, {leaf({2, 3}), leaf({3})});
  check("sub", [](auto& x) { return sub(x[0], x[1]); }, {leaf({2, 1}), leaf({1, 3})});
  check("mul", [](auto& x) { return mul(x[0], x[1]); }, {leaf_t(3, 2), leaf({3, 1})});
  check("div", [](auto& x) { return div(x[0], x[1]); }, {leaf({2, 3}), leaf({3}, 0.5, 2)});
  check("pow tensor", [](auto& x) { return pow(x[0], x[1]); }, {leaf({2, 3}, 0.5, 2), leaf({3})});
  check("pow scalar", [](auto& x) { return pow(x[0], 3.0); }, {leaf({4})});
  check("maximum", [](auto& x) { return maximum(x[0], x[1]); }, {leaf({2, 3}), leaf({3})});
  check("minimum", [](auto& x) { return minimum(x[0], x[1]); }, {leaf({2, 3}), leaf({2, 1})});
  check("scalar ops", [](auto& x) { return (2.0 * x[0] + 1.0) / 3.0 - x[0] * 0.5; }, {leaf({3})});
  check("rdiv", [](auto& x) { return 2.0 / x[0]; }, {leaf({3}, 0.5, 2)});
  check("neg", [](auto& x) { return -x[0]; }, {leaf({3})});
}

TEST_CASE("gradcheck: unary ops") {
  check("exp", [](auto& x) { return exp(x[0]); }, {leaf_t(2, 3)});
  check("log", [](auto& x) { return log(x[0]); }, {leaf({4}, 0.5, 2)});
  check("sqrt", [](auto& x) { return sqrt(x[0]); }, {leaf({4}, 0.5, 2)});
  check("rsqrt", [](auto& x) { return rsqrt(x[0]); }, {leaf({4}, 0.5, 2)});
  check("tanh", [](auto& x) { return tanh(x[0]); }, {leaf({4})});
  check("sigmoid", [](auto& x) { return sigmoid(x[0]); }, {leaf({4}, -3, 3)});
  check("relu", [](auto& x) { return relu(x[0]); }, {leaf({6})});
  check("gelu", [](auto& x) { return gelu(x[0]); }, {leaf_t(3, 2, -3, 3)});
  check("gelu tanh", [](auto& x) { return gelu(x[0], true); }, {leaf({5}, -3, 3)});
  check("abs", [](auto& x) { return abs(x[0]); }, {leaf({5})});
  check("square", [](auto& x) { return square(x[0]); }, {leaf({5})});
  check("clamp", [](auto& x) { return clamp(x[0], -0.5, 0.5); }, {leaf({6})});
  check("sign", [](auto& x) { return sign(x[0]) * x[0]; }, {leaf({4})});
}

TEST_CASE("gradcheck: where, masked_fill") {
  const Tensor cond = tensor({1, 0, 1}, DType::u8);
  check("where", [cond](auto& x) { return where(cond, x[0], x[1]); }, {leaf({2, 3}), leaf({3})});
  const Tensor m = tensor({{0, 1, 0}, {1, 0, 0}}, DType::u8);
  check("masked_fill", [m](auto& x) { return masked_fill(x[0], m, 7.0); }, {leaf({2, 3})});
}

TEST_CASE("gradcheck: reductions") {
  check("sum all", [](auto& x) { return sum(x[0]); }, {leaf_t(3, 4)});
  check("sum dims", [](auto& x) { return sum(x[0], {0, 2}); }, {leaf({2, 3, 2})});
  check("sum keepdim", [](auto& x) { return sum(x[0], {1}, true); }, {leaf({2, 3})});
  check("mean", [](auto& x) { return mean(x[0], {-1}); }, {leaf_t(3, 4)});
  check("var", [](auto& x) { return var(x[0], {1}); }, {leaf({2, 5})});
  check("var keepdim biased", [](auto& x) { return var(x[0], {0}, 0, true); }, {leaf({4, 2})});
  check("std", [](auto& x) { return attnlab::std(x[0], {1}); }, {leaf({2, 5})});
  check("amax", [](auto& x) { return amax(x[0], {1}); }, {leaf({3, 4})});
  check("amin", [](auto& x) { return amin(x[0]); }, {leaf({3, 4})});
  check("max dim", [](auto& x) { return max(x[0], 0).first; }, {leaf({3, 4})});
  check("min dim keepdim", [](auto& x) { return min(x[0], 1, true).first; }, {leaf_t(3, 4)});
  check("logsumexp", [](auto& x) { return logsumexp(x[0], {1}); }, {leaf({3, 4}, -3, 3)});
  check("softmax", [](auto& x) { return softmax(x[0], 1); }, {leaf({3, 4})});
  check("softmax dim0", [](auto& x) { return softmax(x[0], 0); }, {leaf_t(3, 4)});
  check("log_softmax", [](auto& x) { return log_softmax(x[0], -1); }, {leaf({2, 5})});
}

TEST_CASE("gradcheck: matmul in every rank combination") {
  check("mm", [](auto& x) { return matmul(x[0], x[1]); }, {leaf({3, 4}), leaf({4, 2})});
  check("mm transposed", [](auto& x) { return matmul(x[0], x[1]); }, {leaf_t(3, 4), leaf_t(4, 2)});
  check("dot", [](auto& x) { return matmul(x[0], x[1]); }, {leaf({4}), leaf({4})});
  check("vec@mat", [](auto& x) { return matmul(x[0], x[1]); }, {leaf({4}), leaf({4, 3})});
  check("mat@vec", [](auto& x) { return matmul(x[0], x[1]); }, {leaf({2, 4}), leaf({4})});
  check("batched broadcast", [](auto& x) { return matmul(x[0], x[1]); }, {leaf({2, 1, 2, 3}), leaf({3, 3, 2})});
  check("batched @ matrix", [](auto& x) { return matmul(x[0], x[1]); }, {leaf({2, 3, 4}), leaf({4, 2})});
}

TEST_CASE("gradcheck: views") {
  check("reshape", [](auto& x) { return reshape(x[0], {3, 2}) * reshape(x[0], {3, 2}); }, {leaf_t(2, 3)});
  check("view", [](auto& x) { return view(x[0], {6}); }, {leaf({2, 3})});
  check("permute", [](auto& x) { return permute(x[0], {2, 0, 1}); }, {leaf({2, 3, 2})});
  check("transpose", [](auto& x) { return matmul(transpose(x[0], 0, 1), x[0]); }, {leaf({3, 2})});
  check("narrow", [](auto& x) { return narrow(x[0], 1, 1, 2); }, {leaf({2, 4})});
  check("slice step", [](auto& x) { return slice(x[0], 0, 1, 6, 2); }, {leaf({6, 2})});
  check("slice negative", [](auto& x) { return slice(x[0], 0, -2, 6); }, {leaf({6})});
  check("select", [](auto& x) { return select(x[0], 1, -1); }, {leaf({2, 3})});
  check("expand", [](auto& x) { return expand(x[0], {4, 2, 3}); }, {leaf({2, 1})});
  check("squeeze/unsqueeze", [](auto& x) { return unsqueeze(squeeze(x[0], 1), 0); }, {leaf({3, 1})});
  check("flatten", [](auto& x) { return flatten(x[0], 1); }, {leaf({2, 2, 2})});
  check("contiguous", [](auto& x) { return contiguous(x[0]); }, {leaf_t(3, 2)});
  check("clone", [](auto& x) { return clone(x[0]); }, {leaf({3})});
}

TEST_CASE("gradcheck: joins and indexing") {
  check("cat", [](auto& x) { return cat({x[0], x[1]}, 1); }, {leaf({2, 2}), leaf_t(2, 3)});
  check("stack", [](auto& x) { return stack({x[0], x[1]}, 0); }, {leaf({3}), leaf({3})});
  check("split", [](auto& x) { auto p = split(x[0], 2, 0); return p[0] * p[1]; }, {leaf({4, 2})});
  check("chunk", [](auto& x) { auto p = chunk(x[0], 3, 1); return p[2]; }, {leaf({2, 6})});
  const Tensor idx = from_vector_i64({2, 0, 2});
  check("index_select (repeated)", [idx](auto& x) { return index_select(x[0], 0, idx); }, {leaf({3, 2})});
  const Tensor gi = from_vector_i64({0, 2, 1, 1}, {2, 2});
  check("gather", [gi](auto& x) { return gather(x[0], 1, gi); }, {leaf({2, 3})});
  check("scatter_add", [gi](auto& x) { return scatter_add(x[0], 1, gi, x[1]); }, {leaf({2, 3}), leaf({2, 2})});
  check("cumsum", [](auto& x) { return cumsum(x[0], 1); }, {leaf({2, 4})});
}

TEST_CASE("gradcheck: fused layer_norm (input, weight, bias; none)") {
  check("layer_norm", [](auto& x) { return layer_norm(x[0], x[1], x[2]); }, {leaf({3, 5}), leaf({5}), leaf({5})});
  check("layer_norm no affine", [](auto& x) { return layer_norm(x[0], Tensor(), Tensor()); }, {leaf_t(4, 3)});
}

TEST_CASE("fused layer_norm and gelu equal their composed versions") {
  Generator g(5);
  const Tensor x = randn({4, 8}, DType::f64, &g), w = randn({8}, DType::f64, &g), b = randn({8}, DType::f64, &g);
  const Tensor mu = mean(x, {1}, true);
  const Tensor composed = (x - mu) * rsqrt(var(x, {1}, 0, true) + 1e-5) * w + b;
  testing::check_close_tensor(layer_norm(x, w, b, 1e-5), composed, 1e-12, 1e-10);
  const Tensor erf_gelu = x * 0.5 * (1.0 + Tensor(ops::unary(ops::UnaryOp::erf, x * (1.0 / std::sqrt(2.0)))));
  testing::check_close_tensor(gelu(x), erf_gelu, 1e-12, 1e-12);
}
