// Tensor-level op values against hand-computed results.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "index_error_cases.h"
#include "tensor/creation.h"
#include "tensor/ops.h"
#include "test_util.h"

using namespace attnlab;
using namespace attnlab::ops;
using testing::check_close;
using testing::check_error;
using testing::kTestDevice;

TEST_CASE("binary ops broadcast like NumPy") {
  const Tensor a = tensor({{1, 2, 3}, {4, 5, 6}});  // [2, 3]
  const Tensor col = ops::reshape(tensor({10, 20}), {2, 1});  // [2, 1]
  const Tensor row = tensor({1, 2, 3});             // [3]
  check_close(add(a, col), {11, 12, 13, 24, 25, 26});
  check_close(sub(a, row), {0, 0, 0, 3, 3, 3});
  check_close(mul(col, row), {10, 20, 30, 20, 40, 60});
  check_close(div(a, row), {1, 1, 1, 4, 2.5, 2});
  check_close(binary(BinaryOp::pow, row, tensor({2})), {1, 4, 9});
  check_close(binary(BinaryOp::maximum, a, tensor({3})), {3, 3, 3, 4, 5, 6});
  check_close(binary(BinaryOp::minimum, a, tensor({3})), {1, 2, 3, 3, 3, 3});
  CHECK(add(zeros({4, 1, 3}), zeros({2, 1})).shape() == Shape{4, 2, 3});
  // non-contiguous operands
  check_close(add(transpose(a, 0, 1), tensor({100, 200})), {101, 204, 102, 205, 103, 206});
  check_error([&] { add(a, zeros({4})); }, {"add", "[2, 3]", "[4]", "cannot be broadcast"});
  check_error([&] { add(a, zeros({2, 3}, DType::f64)); }, {"add", "dtype mismatch", "f32[2, 3]", "f64[2, 3]"});
  check_error([] { div(arange(3), arange(3)); }, {"div", "integer"});
}

TEST_CASE("unary ops") {
  const Tensor x = tensor({-2, -0.5, 0, 0.5, 2}, DType::f64);
  check_close(unary(UnaryOp::neg, x), {2, 0.5, 0, -0.5, -2});
  check_close(unary(UnaryOp::abs, x), {2, 0.5, 0, 0.5, 2});
  check_close(unary(UnaryOp::sign, x), {-1, -1, 0, 1, 1});
  check_close(unary(UnaryOp::relu, x), {0, 0, 0, 0.5, 2});
  check_close(unary(UnaryOp::exp, x), {std::exp(-2), std::exp(-0.5), 1, std::exp(0.5), std::exp(2)}, 1e-12);
  check_close(unary(UnaryOp::tanh, x), {std::tanh(-2), std::tanh(-0.5), 0, std::tanh(0.5), std::tanh(2)}, 1e-12);
  check_close(unary(UnaryOp::sigmoid, tensor({-800, 0, 800}, DType::f64)), {0, 0.5, 1});  // no overflow
  check_close(unary(UnaryOp::sqrt, tensor({4, 9})), {2, 3});
  check_close(unary(UnaryOp::rsqrt, tensor({4, 16})), {0.5, 0.25});
  check_close(unary(UnaryOp::log, tensor({1, std::exp(1.0)}, DType::f64)), {0, 1}, 1e-12);
  check_close(gelu(tensor({1.0}, DType::f64)), {0.8413447460685429}, 1e-14);
  check_close(gelu(tensor({1.0}, DType::f64), true), {0.8411919906082768}, 1e-13);
  check_close(clamp(x, -1, 1), {-1, -0.5, 0, 0.5, 1});
  check_close(clamp(x, 0, std::numeric_limits<double>::infinity()), {0, 0, 0, 0.5, 2});
  check_error([&] { clamp(x, 2, 1); }, {"clamp", "min 2 > max 1"});
}

TEST_CASE("comparisons, where, masked_fill") {
  const Tensor a = tensor({1, 2, 3}), b = tensor({3, 2, 1});
  check_close(compare(CompareOp::lt, a, b), {1, 0, 0});
  check_close(compare(CompareOp::eq, a, b), {0, 1, 0});
  check_close(compare(CompareOp::ge, a, b), {0, 1, 1});
  CHECK(compare(CompareOp::gt, a, b).dtype() == DType::u8);
  check_close(where(compare(CompareOp::gt, a, b), a, b), {3, 2, 3});
  const Tensor m = tensor({{0, 1}, {1, 0}}, DType::u8);
  check_close(masked_fill(tensor({{1, 2}, {3, 4}}), m, -1), {1, -1, -1, 4});
  check_close(masked_fill(zeros({2, 2}), tensor({1, 0}, DType::u8), 5), {5, 0, 5, 0});  // broadcast mask
  check_error([&] { where(a, a, b); }, {"where", "u8"});
}

TEST_CASE("reductions with dims and keepdim") {
  const Tensor t = reshape(arange(0, 24, 1, DType::f64), {2, 3, 4});
  check_close(sum(t), {276});
  check_close(sum(t, {0}), {12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34});
  CHECK(sum(t, {1}, true).shape() == Shape{2, 1, 4});
  check_close(sum(t, {0, 2}), {60, 92, 124});
  check_close(sum(t, {-1}), {6, 22, 38, 54, 70, 86});
  check_close(mean(t, {2}), {1.5, 5.5, 9.5, 13.5, 17.5, 21.5});
  check_close(var(tensor({1, 2, 3, 4}, DType::f64)), {5.0 / 3});
  check_close(var(tensor({1, 2, 3, 4}, DType::f64), {}, 0), {1.25});
  check_close(ops::std(tensor({2, 4, 4, 4, 5, 5, 7, 9}, DType::f64), {}, 0), {2});
  check_close(amax(t, {1}), {8, 9, 10, 11, 20, 21, 22, 23});
  check_close(amin(t, {0, 1}), {0, 1, 2, 3});
  auto [v, i] = max(tensor({{1, 5, 5}, {7, 0, 2}}), 1);
  check_close(v, {5, 7});
  check_close(i, {1, 0});  // first of ties
  check_close(argmin(tensor({{1, 5, 5}, {7, 0, 2}}), 0), {0, 1, 1});
  CHECK(argmax(tensor({{1, 5, 5}, {7, 0, 2}}), 1, true).shape() == Shape{2, 1});
  check_close(logsumexp(tensor({{0, 0}, {1000, 1000}}, DType::f64), {1}), {std::log(2.0), 1000 + std::log(2.0)}, 1e-12);
  check_close(logsumexp(tensor({-INFINITY, -INFINITY}, DType::f64), {0}), {-INFINITY});
  check_close(sum_to(ones({2, 3, 4}), {3, 1}), {8, 8, 8});
  check_close(sum(arange(5), {0}), {10});  // integer sum stays integer
  CHECK(sum(arange(5)).dtype() == DType::i64);
  check_error([&] { sum(t, {3}); }, {"sum", "dim 3", "3 dims"});
  check_error([&] { sum(t, {1, 1}); }, {"sum", "repeated"});
}

TEST_CASE("softmax and log_softmax over any dim") {
  const Tensor x = tensor({{1, 2, 3}, {1, 1, 1}}, DType::f64);
  const double e = std::exp(1.0), z = 1 + e + e * e;
  check_close(softmax(x, 1), {1 / z, e / z, e * e / z, 1.0 / 3, 1.0 / 3, 1.0 / 3}, 1e-12);
  check_close(softmax(x, 0), {0.5, 1 / (1 + std::exp(-1.0)), 1 / (1 + std::exp(-2.0)), 0.5,
                              1 / (1 + std::exp(1.0)), 1 / (1 + std::exp(2.0))}, 1e-12);
  check_close(log_softmax(x, -1), {-std::log(z), 1 - std::log(z), 2 - std::log(z), -std::log(3.0),
                                   -std::log(3.0), -std::log(3.0)}, 1e-12);
}

TEST_CASE("matmul: 1-D to N-D with batch broadcasting and transposed views") {
  const Tensor A = tensor({{1, 2, 3}, {4, 5, 6}});  // [2, 3]
  const Tensor B = tensor({{1, 0}, {0, 1}, {1, 1}});  // [3, 2]
  check_close(matmul(A, B), {4, 5, 10, 11});
  check_close(matmul(tensor({1, 2, 3}), tensor({4, 5, 6})), {32});        // dot
  CHECK(matmul(tensor({1, 2, 3}), tensor({4, 5, 6})).dim() == 0);
  check_close(matmul(tensor({1, 1}), A), {5, 7, 9});                       // vector @ matrix
  check_close(matmul(A, tensor({1, 0, 1})), {4, 10});                      // matrix @ vector
  // transposed view: Aᵀ Aᵀᵀ with no copy
  check_close(matmul(transpose(A, 0, 1), A), {17, 22, 27, 22, 29, 36, 27, 36, 45});
  // batch broadcasting: [2, 1, 2, 3] @ [3, 3, 2] -> [2, 3, 2, 2]
  const Tensor a4 = reshape(arange(0, 12, 1, DType::f32), {2, 1, 2, 3});
  const Tensor b3 = reshape(arange(0, 18, 1, DType::f32), {3, 3, 2});
  const Tensor c = matmul(a4, b3);
  CHECK(c.shape() == Shape{2, 3, 2, 2});
  // element [1, 2, 0, 1] = row [6, 7, 8] · column 1 of b3[2] = [13, 15, 17]
  CHECK(select(select(select(select(c, 0, 1), 0, 2), 0, 0), 0, 1).item<double>() == 6 * 13 + 7 * 15 + 8 * 17);
  // folded path: [2, 4, 3] @ [3, 5] equals per-batch matmuls
  const Tensor x = randn({2, 4, 3}), w = randn({5, 3});
  const Tensor y = matmul(x, transpose(w, 0, 1));
  testing::check_close_tensor(select(y, 0, 1), matmul(select(x, 0, 1), transpose(w, 0, 1)), 1e-5);
  // a matrix with neither unit stride (stepped slice) is copied and still correct
  const Tensor s = slice(slice(reshape(arange(0, 36, 1, DType::f64), {6, 6}), 0, 0, 6, 2), 1, 0, 6, 2);  // [3, 3]
  const Tensor eye = tensor({{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, DType::f64);
  check_close(matmul(s, eye), {0, 2, 4, 12, 14, 16, 24, 26, 28});
  check_error([&] { matmul(A, A); }, {"matmul", "[2, 3]", "inner dims 3 != 2"});
}

TEST_CASE("cat, stack, split, chunk") {
  const Tensor a = tensor({{1, 2}, {3, 4}}), b = tensor({{5, 6}});
  check_close(cat({a, b}, 0), {1, 2, 3, 4, 5, 6});
  check_close(cat({a, a}, 1), {1, 2, 1, 2, 3, 4, 3, 4});
  CHECK(stack({a, a}, 0).shape() == Shape{2, 2, 2});
  check_close(stack({tensor({1, 2}), tensor({3, 4})}, 1), {1, 3, 2, 4});
  auto parts = split(arange(0, 7, 1, DType::f32), 3, 0);
  REQUIRE(parts.size() == 3);
  check_close(parts[2], {6});
  CHECK(chunk(zeros({10, 2}), 3, 0).size() == 3);
  check_error([&] { cat({a, zeros({2, 3})}, 0); }, {"cat", "tensor 1", "dim 1"});
}

TEST_CASE("index_select, gather, scatter_add, index_add, cumsum") {
  const Tensor t = tensor({{1, 2, 3}, {4, 5, 6}});
  check_close(index_select(t, 1, from_vector_i64({2, 0, 2})), {3, 1, 3, 6, 4, 6});
  check_close(index_select(t, 0, from_vector_i64({1})), {4, 5, 6});
  const Tensor idx = from_vector_i64({0, 2, 1, 1}, {2, 2});
  check_close(gather(t, 1, idx), {1, 3, 5, 5});
  check_close(scatter_add(zeros({2, 3}), 1, idx, tensor({{1, 1}, {1, 1}})), {1, 0, 1, 0, 2, 0});
  check_close(index_add({3}, 0, from_vector_i64({0, 0, 2}), tensor({1, 2, 3})), {3, 0, 3});
  check_close(cumsum(t, 1), {1, 3, 6, 4, 9, 15});
  check_close(cumsum(t, 0), {1, 2, 3, 5, 7, 9});
  check_error([&] { index_select(t, 0, from_vector_i64({2})); }, {"index_select", "index 2", "size 2"});
  check_error([&] { gather(t, 1, tensor({{0, 1}})); }, {"gather", "i64 or i32"});
}

TEST_CASE("an out-of-range index error names the first bad index and its position (cpu, test device cpu:1)") {
  testing::check_index_errors(kCPU);
  testing::check_index_errors(kTestDevice);
}

TEST_CASE("in-place ops bump the version counter") {
  Tensor t = zeros({3});
  const uint64_t v0 = t.version();
  fill_(t, 2);
  add_(t, tensor({1, 2, 3}), 2.0);
  check_close(t, {4, 6, 8});
  mul_(t, 0.5);
  check_close(t, {2, 3, 4});
  CHECK(t.version() > v0);
  const Tensor view = narrow(t, 0, 1, 2);  // a view shares the counter
  const uint64_t v1 = t.version();
  fill_(view, 0);
  CHECK(t.version() == v1 + 1);
  check_close(t, {2, 0, 0});
}
