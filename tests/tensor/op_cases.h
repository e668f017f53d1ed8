// The op cases every device runs (device_fixture.h): broadcasting, non-contiguous inputs (permuted,
// expanded, sliced, transposed), odd sizes, empty tensors and long reductions, for every tensor op the
// models use.
#pragma once
#include <cmath>

#include "device_fixture.h"

namespace attnlab::testing {

inline std::vector<OpCase> op_cases() {
  using namespace ops;
  Generator gen(1234);
  auto rn = [&](const Shape& s) { return randn(s, DType::f32, &gen); };
  auto pos = [&](const Shape& s) { return uniform(s, 0.5, 2.0, DType::f32, &gen); };
  std::vector<OpCase> cs;
  using In = const std::vector<Tensor>&;

  // ---- elementwise ----
  cs.push_back({"add broadcast [3,1,5]+[4,5]", {rn({3, 1, 5}), rn({4, 5})}, [](In x) { return add(x[0], x[1]); }});
  cs.push_back({"mul permuted", {rn({4, 5, 6}), rn({6, 4, 5})},
                [](In x) { return mul(permute(x[0], {2, 0, 1}), x[1]); }});
  cs.push_back({"sub transposed-expanded", {rn({5, 7}), rn({7, 1})},
                [](In x) { return sub(transpose(x[0], 0, 1), expand(x[1], {7, 5})); }});
  cs.push_back({"div sliced", {rn({6, 5}), pos({3, 7})},
                [](In x) { return div(slice(x[0], 0, 0, 6, 2), slice(x[1], 1, 0, 5, 1)); }});
  cs.push_back({"pow", {pos({4, 5}), rn({5})}, [](In x) { return binary(BinaryOp::pow, x[0], x[1]); }});
  cs.push_back({"maximum/minimum", {rn({3, 4}), rn({1, 4})},
                [](In x) { return add(binary(BinaryOp::maximum, x[0], x[1]), binary(BinaryOp::minimum, x[0], x[1])); }});
  cs.push_back({"scalar ops", {rn({2, 3, 4})}, [](In x) {
                  return rbinary_scalar(BinaryOp::sub, 1.5, binary_scalar(BinaryOp::mul, x[0], 2.0));
                }});
  cs.push_back({"odd size 1000003", {rn({1000003}), rn({1000003})}, [](In x) { return add(x[0], x[1]); }});
  cs.push_back({"empty [0,5]", {rn({0, 5}), rn({5})}, [](In x) { return mul(x[0], x[1]); }});
  cs.push_back({"4-d broadcast non-mergeable", {rn({2, 1, 3, 1}), rn({1, 4, 1, 5})},
                [](In x) { return add(x[0], x[1]); }});
  for (auto [op, name] : {std::pair{UnaryOp::neg, "neg"}, {UnaryOp::exp, "exp"}, {UnaryOp::tanh, "tanh"},
                          {UnaryOp::sigmoid, "sigmoid"}, {UnaryOp::relu, "relu"}, {UnaryOp::abs, "abs"},
                          {UnaryOp::sign, "sign"}, {UnaryOp::square, "square"}, {UnaryOp::sin, "sin"},
                          {UnaryOp::cos, "cos"}, {UnaryOp::erf, "erf"}})
    cs.push_back({std::string("unary ") + name + " transposed", {rn({5, 8})},
                  [op](In x) { return unary(op, transpose(x[0], 0, 1)); }});
  for (auto [op, name] : {std::pair{UnaryOp::log, "log"}, {UnaryOp::sqrt, "sqrt"}, {UnaryOp::rsqrt, "rsqrt"},
                          {UnaryOp::reciprocal, "reciprocal"}})
    cs.push_back({std::string("unary ") + name, {pos({3, 7})}, [op](In x) { return unary(op, x[0]); }});
  for (auto op : {CompareOp::eq, CompareOp::ne, CompareOp::lt, CompareOp::le, CompareOp::gt, CompareOp::ge})
    cs.push_back({"compare " + std::to_string(int(op)), {rn({4, 1, 3}), rn({5, 3})},
                  [op](In x) { return compare(op, x[0], x[1]); }});
  cs.push_back({"compare equal values", {rn({6})},
                [](In x) { return compare(CompareOp::le, x[0], expand(slice(x[0], 0, 2, 3), {6})); }});
  cs.push_back({"compare_scalar", {rn({3, 5})}, [](In x) { return compare_scalar(CompareOp::gt, x[0], 0.25); }});
  cs.push_back({"clamp", {rn({4, 6})}, [](In x) { return clamp(permute(x[0], {1, 0}), -0.5, 0.7); }});
  cs.push_back({"clamp one-sided", {rn({10})}, [](In x) { return clamp(x[0], 0.0, INFINITY); }});
  cs.push_back({"where broadcast", {rn({4, 1}), rn({1, 5}), rn({4, 5})}, [](In x) {
                  return where(compare_scalar(CompareOp::gt, x[0], 0.0), expand(x[1], {4, 5}), x[2]);
                }});
  cs.push_back({"masked_fill", {rn({3, 4}), rn({4})},
                [](In x) { return masked_fill(x[0], compare_scalar(CompareOp::lt, x[1], 0.0), -1e4); }});
  cs.push_back({"gelu exact", {rn({7, 9})}, [](In x) { return gelu(x[0]); }});
  cs.push_back({"gelu tanh sliced", {rn({7, 9})}, [](In x) { return gelu(slice(x[0], 1, 1, 9), true); }});
  cs.push_back({"gelu_backward", {rn({5, 6}), rn({5, 6})}, [](In x) { return gelu_backward(x[0], x[1]); }});
  cs.push_back({"gelu_backward tanh", {rn({5, 6}), rn({5, 6})}, [](In x) { return gelu_backward(x[0], x[1], true); }});

  // ---- copies, conversions, in-place ----
  cs.push_back({"contiguous permuted", {rn({3, 4, 5})}, [](In x) { return contiguous(permute(x[0], {2, 0, 1})); }});
  cs.push_back({"clone expanded", {rn({1, 6})}, [](In x) { return clone(expand(x[0], {4, 6})); }});
  cs.push_back({"to_dtype round trip", {rn({5, 3})}, [](In x) {
                  return to_dtype(to_dtype(transpose(x[0], 0, 1), DType::f64), x[0].dtype());
                }});
  cs.push_back({"to_dtype to i64", {rn({8})}, [](In x) {
                  return to_dtype(binary_scalar(BinaryOp::mul, x[0], 10.0), DType::i64);
                }, 1, {DType::f32, DType::f64}});
  cs.push_back({"copy_ broadcast into slice", {rn({4, 6}), rn({6})}, [](In x) {
                  Tensor t = clone(x[0]);
                  copy_(slice(t, 0, 1, 4, 2), x[1]);
                  return t;
                }});
  cs.push_back({"add_ alpha", {rn({4, 5}), rn({5})}, [](In x) {
                  Tensor t = clone(x[0]);
                  add_(t, x[1], -0.5);
                  return t;
                }});
  cs.push_back({"add_ transposed self", {rn({4, 4})}, [](In x) {
                  Tensor t = clone(x[0]);
                  add_(t, transpose(t, 0, 1));
                  return t;
                }});
  cs.push_back({"mul_ fill_ binary_", {rn({3, 5}), rn({5})}, [](In x) {
                  Tensor t = clone(x[0]);
                  mul_(t, 3.0);
                  fill_(slice(t, 1, 0, 2), 0.25);
                  binary_(BinaryOp::maximum, t, x[1]);
                  return t;
                }});
  cs.push_back({"zeros_like/ones_like/full", {rn({2, 3})}, [](In x) {
                  return add(add(zeros_like(x[0]), ones_like(x[0])), full({3}, 2.5, x[0].dtype(), x[0].device()));
                }});

  // ---- reductions ----
  cs.push_back({"sum dim 1 keepdim", {rn({4, 7, 3})}, [](In x) { return sum(x[0], {1}, true); }});
  cs.push_back({"sum all permuted", {rn({5, 6, 7})}, [](In x) { return sum(permute(x[0], {2, 0, 1})); }, 4});
  cs.push_back({"sum empty dim", {rn({3, 0})}, [](In x) { return sum(x[0], {1}); }});
  cs.push_back({"mean dims {0,2}", {rn({4, 5, 6})}, [](In x) { return mean(x[0], {0, 2}); }});
  cs.push_back({"var correction 1", {rn({6, 9})}, [](In x) { return var(x[0], {1}); }, 2});
  cs.push_back({"var correction 0 dim 0", {rn({6, 9})}, [](In x) { return var(x[0], {0}, 0); }, 2});
  cs.push_back({"std keepdim", {rn({3, 8})}, [](In x) { return ops::std(x[0], {1}, 1, true); }, 2});
  cs.push_back({"amax sliced", {rn({5, 9})}, [](In x) { return amax(slice(x[0], 1, 0, 9, 3), {1}); }});
  cs.push_back({"amin dim 0", {rn({5, 9})}, [](In x) { return amin(x[0], {0}); }});
  cs.push_back({"logsumexp", {rn({4, 33})}, [](In x) { return logsumexp(x[0], {1}); }});
  cs.push_back({"max values", {rn({6, 10})}, [](In x) { return max(x[0], 1).first; }});
  cs.push_back({"max indices", {rn({6, 10})}, [](In x) { return max(x[0], 1).second; }});
  cs.push_back({"argmin transposed", {rn({6, 10})}, [](In x) { return argmin(transpose(x[0], 0, 1), 1); }});
  cs.push_back({"argmax dim 0 keepdim", {rn({300, 3})}, [](In x) { return argmax(x[0], 0, true); }});
  cs.push_back({"sum_to", {rn({4, 3, 5})}, [](In x) { return sum_to(x[0], {3, 1}); }});
  cs.push_back({"long sum [4, 300001]", {rn({4, 300001})}, [](In x) { return sum(x[0], {1}); }, 100});
  cs.push_back({"long mean/var 2^20", {rn({1 << 20})}, [](In x) { return add(mean(x[0]), var(x[0])); }, 10});
  cs.push_back({"many short rows", {rn({20000, 3})}, [](In x) { return amax(x[0], {1}); }});

  // ---- softmax ----
  cs.push_back({"softmax last", {rn({4, 37})}, [](In x) { return softmax(x[0], -1); }});
  cs.push_back({"softmax dim 1 of 3", {rn({3, 6, 5})}, [](In x) { return softmax(x[0], 1); }});
  cs.push_back({"log_softmax", {rn({5, 300})}, [](In x) { return log_softmax(x[0], 1); }, 2});
  cs.push_back({"softmax long row 5000", {rn({2, 5000})}, [](In x) { return softmax(x[0], 1); }});
  OpCase sb{"softmax_backward", {rn({4, 9}), rn({4, 9})},
            [](In x) { return softmax_backward(x[1], softmax(x[0], 1), 1); }, 2};
  sb.cpu_half = false;
  cs.push_back(sb);
  OpCase lsb{"log_softmax_backward dim 0", {rn({7, 3}), rn({7, 3})},
             [](In x) { return log_softmax_backward(x[1], log_softmax(x[0], 0), 0); }, 2};
  lsb.cpu_half = false;
  cs.push_back(lsb);

  // ---- matmul ----
  cs.push_back({"matmul 37x53 @ 53x29", {rn({37, 53}), rn({53, 29})}, [](In x) { return matmul(x[0], x[1]); }, 2});
  cs.push_back({"matmul transposed views", {rn({53, 37}), rn({29, 53})},
                [](In x) { return matmul(transpose(x[0], 0, 1), transpose(x[1], 0, 1)); }, 2});
  cs.push_back({"matmul batch broadcast", {rn({2, 1, 5, 6}), rn({3, 6, 4})}, [](In x) { return matmul(x[0], x[1]); }, 2});
  cs.push_back({"matmul folded [B,T,C]@[C,N]", {rn({3, 7, 16}), rn({16, 10})}, [](In x) { return matmul(x[0], x[1]); }, 2});
  cs.push_back({"matmul permuted batch", {rn({4, 3, 5}), rn({3, 5, 2})},
                [](In x) { return matmul(permute(x[0], {1, 0, 2}), x[1]); }, 2});
  cs.push_back({"matmul vector", {rn({6}), rn({6, 3})}, [](In x) { return matmul(x[0], x[1]); }, 2});
  cs.push_back({"matmul dot", {rn({9}), rn({9})}, [](In x) { return matmul(x[0], x[1]); }, 2});
  cs.push_back({"matmul non-unit strides", {rn({6, 8}), rn({4, 5})},
                [](In x) { return matmul(slice(x[0], 1, 0, 8, 2), x[1]); }, 2});
  cs.push_back({"matmul K=0", {rn({3, 0}), rn({0, 4})}, [](In x) { return matmul(x[0], x[1]); }});

  // ---- joining, indexing ----
  cs.push_back({"cat dim 1 mixed layouts", {rn({3, 2}), rn({4, 3}), rn({3, 5})},
                [](In x) { return cat({x[0], transpose(x[1], 0, 1), x[2]}, 1); }});
  cs.push_back({"stack", {rn({2, 3}), rn({2, 3})}, [](In x) { return stack({x[0], x[1]}, 1); }});
  const Tensor tokens = from_vector_i64({3, 0, 7, 3, 9, 1}, {6});
  cs.push_back({"index_select embedding", {rn({10, 8}), tokens}, [](In x) { return index_select(x[0], 0, x[1]); }});
  cs.push_back({"index_select dim 1 i32", {rn({3, 10}), to_dtype(tokens, DType::i32)},
                [](In x) { return index_select(x[0], 1, x[1]); }});
  cs.push_back({"index_add embedding backward", {rn({6, 8}), tokens},
                [](In x) { return index_add({10, 8}, 0, x[1], x[0]); }});
  const Tensor gidx = from_vector_i64({0, 2, 1, 1, 0, 0, 2, 2}, {4, 2});
  OpCase ga{"gather dim 1", {rn({4, 3}), gidx}, [](In x) { return gather(x[0], 1, x[1]); }};
  ga.cpu_half = false;
  cs.push_back(ga);
  cs.push_back({"scatter_add dim 1", {rn({4, 3}), gidx, rn({4, 2})},
                [](In x) { return scatter_add(x[0], 1, x[1], x[2]); }, 1, {DType::f32, DType::f64}});
  cs.push_back({"cumsum dim 1", {rn({3, 6})}, [](In x) { return cumsum(x[0], 1); }, 2});

  // ---- layers ----
  cs.push_back({"layer_norm out", {rn({6, 33}), rn({33}), rn({33})},
                [](In x) { return layer_norm_forward(x[0], x[1], x[2], 1e-5).out; }, 2});
  cs.push_back({"layer_norm rstd no affine", {rn({6, 33})},
                [](In x) { return to_dtype(layer_norm_forward(x[0], Tensor(), Tensor(), 1e-5).rstd, x[0].dtype()); }, 2});
  for (int k = 0; k < 3; ++k)
    cs.push_back({"layer_norm_backward " + std::to_string(k), {rn({6, 33}), rn({33}), rn({33}), rn({6, 33})},
                  [k](In x) {
                    const auto f = layer_norm_forward(x[0], x[1], x[2], 1e-5);
                    const auto g = layer_norm_backward(x[3], x[0], x[1], f.mean, f.rstd, true);
                    return k == 0 ? g.dx : k == 1 ? g.dweight : g.dbias;
                  }, 4});
  return cs;
}

}  // namespace attnlab::testing
