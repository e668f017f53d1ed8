// Every differentiable op of autograd/functions.h as a GradCase (grad_fixture.h): forward and backward
// on every device, with broadcasting, non-contiguous inputs (permuted, transposed, sliced, expanded
// views of the device leaves) and the view backwards (slice, select: the trader's last position,
// narrow, expand) whose zero-filled gradients must be created on the device. The finite-difference
// checks of the same ops (in f64 on the CPU): test_gradcheck_ops.cpp. The nn ops: tests/nn/nn_grad_cases.h.
#pragma once
#include "tests/autograd/grad_fixture.h"

namespace attnlab::testing {

inline std::vector<GradCase> autograd_grad_cases() {
  Generator gen(2024);
  auto rn = [&](const Shape& s) { return randn(s, DType::f32, &gen); };
  auto pos = [&](const Shape& s) { return uniform(s, 0.5, 2.0, DType::f32, &gen); };
  using In = const std::vector<Tensor>&;
  const std::vector<DType> f32_f64 = {DType::f32, DType::f64};
  std::vector<GradCase> cs;

  // ---- arithmetic, broadcasting, views of the inputs ----
  cs.push_back({"add broadcast [3,1,5]+[4,5]", {rn({3, 1, 5}), rn({4, 5})}, [](In x) { return add(x[0], x[1]); }});
  cs.push_back({"sub transposed", {rn({5, 7}), rn({7, 1})}, [](In x) { return sub(transpose(x[0], 0, 1), x[1]); }});
  cs.push_back({"mul permuted", {rn({4, 5, 6}), rn({6, 4, 5})}, [](In x) { return mul(permute(x[0], {2, 0, 1}), x[1]); }});
  cs.push_back({"div sliced", {rn({6, 5}), pos({3, 5})}, [](In x) { return div(slice(x[0], 0, 0, 6, 2), x[1]); }, 2});
  cs.push_back({"pow tensor", {pos({4, 5}), rn({5})}, [](In x) { return pow(x[0], x[1]); }, 4});
  cs.push_back({"pow scalar", {rn({4, 3})}, [](In x) { return pow(x[0], 3.0); }, 2});
  cs.push_back({"maximum/minimum broadcast", {rn({3, 4}), rn({1, 4})},
                [](In x) { return maximum(x[0], x[1]) + minimum(x[0], x[1]) * 0.5; }});
  cs.push_back({"scalar ops and rdiv", {rn({2, 3, 4}), pos({4})},
                [](In x) { return (2.0 * x[0] + 1.0) / 3.0 - x[0] * 0.5 + 2.0 / x[1] - x[1]; }, 2});
  cs.push_back({"neg expanded", {rn({1, 6})}, [](In x) { return -expand(x[0], {4, 6}); }});

  // ---- unary ----
  cs.push_back({"exp transposed", {rn({5, 8})}, [](In x) { return exp(transpose(x[0], 0, 1)); }, 2});
  cs.push_back({"log", {pos({3, 7})}, [](In x) { return log(x[0]); }});
  cs.push_back({"sqrt", {pos({3, 7})}, [](In x) { return sqrt(x[0]); }});
  cs.push_back({"rsqrt", {pos({3, 7})}, [](In x) { return rsqrt(x[0]); }, 2});
  cs.push_back({"tanh", {rn({4, 6})}, [](In x) { return tanh(x[0]); }});
  cs.push_back({"sigmoid", {rn({4, 6})}, [](In x) { return sigmoid(x[0]); }});
  cs.push_back({"relu", {rn({4, 6})}, [](In x) { return relu(x[0]); }});
  cs.push_back({"gelu sliced", {rn({7, 9})}, [](In x) { return gelu(slice(x[0], 1, 1, 9)); }});
  cs.push_back({"gelu tanh", {rn({7, 9})}, [](In x) { return gelu(x[0], true); }});
  cs.push_back({"abs", {rn({5, 4})}, [](In x) { return abs(x[0]); }});
  cs.push_back({"sign times x", {rn({5, 4})}, [](In x) { return sign(x[0]) * x[0]; }});
  cs.push_back({"square", {rn({5, 4})}, [](In x) { return square(x[0]); }});
  cs.push_back({"clamp", {rn({4, 6})}, [](In x) { return clamp(permute(x[0], {1, 0}), -0.5, 0.7); }});
  const Tensor cond = tensor({1, 0, 1, 1, 0}, DType::u8);
  cs.push_back({"where broadcast", {rn({4, 5}), rn({5}), cond}, [](In x) { return where(x[2], x[0], x[1]); }});
  const Tensor fill_mask = tensor({{0, 1, 0, 0}, {1, 0, 0, 1}, {0, 0, 1, 0}}, DType::u8);
  cs.push_back({"masked_fill", {rn({3, 4}), fill_mask}, [](In x) { return masked_fill(x[0], x[1], 7.0); }});

  // ---- reductions, softmax ----
  cs.push_back({"sum all permuted", {rn({5, 6, 7})}, [](In x) { return sum(permute(x[0], {2, 0, 1})); }, 4});
  cs.push_back({"sum dims {0,2}", {rn({4, 3, 5})}, [](In x) { return sum(x[0], {0, 2}); }, 2});
  cs.push_back({"sum keepdim", {rn({4, 7})}, [](In x) { return sum(x[0], {1}, true); }, 2});
  cs.push_back({"mean", {rn({4, 9})}, [](In x) { return mean(transpose(x[0], 0, 1), {-1}); }});
  cs.push_back({"var", {rn({6, 9})}, [](In x) { return var(x[0], {1}); }, 2});
  cs.push_back({"var keepdim biased", {rn({6, 4})}, [](In x) { return var(x[0], {0}, 0, true); }, 2});
  cs.push_back({"std", {rn({3, 8})}, [](In x) { return attnlab::std(x[0], {1}); }, 2});
  cs.push_back({"amax", {rn({5, 9})}, [](In x) { return amax(x[0], {1}); }});
  cs.push_back({"amin all", {rn({5, 9})}, [](In x) { return amin(x[0]); }});
  GradCase mx{"max dim", {rn({6, 10})}, [](In x) { return max(x[0], 1).first; }};
  mx.dtypes = f32_f64;  // its backward is a scatter_add (f32/f64 only)
  cs.push_back(mx);
  GradCase mn{"min dim keepdim transposed", {rn({6, 10})}, [](In x) { return min(transpose(x[0], 0, 1), 0, true).first; }};
  mn.dtypes = f32_f64;
  cs.push_back(mn);
  cs.push_back({"logsumexp", {rn({4, 33})}, [](In x) { return logsumexp(x[0], {1}); }, 2});
  GradCase sm{"softmax dim 1 of 3", {rn({3, 6, 5})}, [](In x) { return softmax(x[0], 1); }, 2};
  sm.cpu_half = false;  // the CPU softmax backward is f32/f64
  cs.push_back(sm);
  GradCase lsm{"log_softmax last", {rn({5, 40})}, [](In x) { return log_softmax(x[0], -1); }, 2};
  lsm.cpu_half = false;
  cs.push_back(lsm);

  // ---- matmul ----
  cs.push_back({"matmul 37x53 @ 53x29", {rn({37, 53}), rn({53, 29})}, [](In x) { return matmul(x[0], x[1]); }, 8});
  cs.push_back({"matmul transposed views", {rn({12, 7}), rn({9, 12})},
                [](In x) { return matmul(transpose(x[0], 0, 1), transpose(x[1], 0, 1)); }, 4});
  cs.push_back({"matmul dot", {rn({9}), rn({9})}, [](In x) { return matmul(x[0], x[1]); }, 4});
  cs.push_back({"matmul vec@mat", {rn({6}), rn({6, 3})}, [](In x) { return matmul(x[0], x[1]); }, 4});
  cs.push_back({"matmul mat@vec", {rn({3, 6}), rn({6})}, [](In x) { return matmul(x[0], x[1]); }, 4});
  cs.push_back({"matmul batch broadcast", {rn({2, 1, 5, 6}), rn({3, 6, 4})}, [](In x) { return matmul(x[0], x[1]); }, 4});
  cs.push_back({"matmul [B,T,C]@[C,N]", {rn({3, 7, 16}), rn({16, 10})}, [](In x) { return matmul(x[0], x[1]); }, 4});

  // ---- views (each backward writes g into a zero tensor or reshapes it) ----
  cs.push_back({"reshape/view", {rn({2, 3, 4})},
                [](In x) { return view(reshape(transpose(x[0], 1, 2), {8, 3}), {24}); }});
  cs.push_back({"permute", {rn({2, 3, 4})}, [](In x) { return permute(x[0], {2, 0, 1}); }});
  cs.push_back({"narrow", {rn({3, 8})}, [](In x) { return narrow(x[0], 1, 2, 5); }});
  cs.push_back({"slice step", {rn({9, 4})}, [](In x) { return slice(x[0], 0, 1, 9, 3); }});
  cs.push_back({"select last position [B,T,C] -> [B,C]", {rn({4, 6, 5})}, [](In x) { return select(x[0], 1, -1); }});
  cs.push_back({"expand", {rn({3, 1})}, [](In x) { return expand(x[0], {2, 3, 4}); }});
  cs.push_back({"squeeze/unsqueeze/flatten", {rn({3, 1, 4})},
                [](In x) { return flatten(unsqueeze(squeeze(x[0], 1), 0), 1); }});
  cs.push_back({"contiguous/clone", {rn({5, 3})}, [](In x) { return clone(contiguous(transpose(x[0], 0, 1))); }});
  cs.push_back({"to_dtype round trip", {rn({4, 3})},
                [](In x) { return to_dtype(to_dtype(x[0], DType::f64), x[0].dtype()) * 2.0; }});

  // ---- joins, indexing ----
  cs.push_back({"cat mixed layouts", {rn({3, 2}), rn({4, 3}), rn({3, 5})},
                [](In x) { return cat({x[0], transpose(x[1], 0, 1), x[2]}, 1); }});
  cs.push_back({"stack", {rn({2, 3}), rn({2, 3})}, [](In x) { return stack({x[0], x[1]}, 1); }});
  cs.push_back({"split/chunk", {rn({6, 4})}, [](In x) {
                  const auto p = split(x[0], 2, 0);
                  return p[0] * p[2] + chunk(x[0], 3, 0)[1];
                }});
  const Tensor tokens = from_vector_i64({3, 0, 7, 3, 9, 1}, {6});
  cs.push_back({"index_select repeated", {rn({10, 8}), tokens}, [](In x) { return index_select(x[0], 0, x[1]); }});
  const Tensor gidx = from_vector_i64({0, 2, 1, 1, 0, 0, 2, 2}, {4, 2});
  GradCase ga{"gather dim 1", {rn({4, 3}), gidx}, [](In x) { return gather(x[0], 1, x[1]); }};
  ga.dtypes = f32_f64;
  cs.push_back(ga);
  GradCase sa{"scatter_add dim 1", {rn({4, 3}), rn({4, 2}), gidx},
              [](In x) { return scatter_add(x[0], 1, x[2], x[1]); }};
  sa.dtypes = f32_f64;
  cs.push_back(sa);
  cs.push_back({"cumsum", {rn({3, 6})}, [](In x) { return cumsum(x[0], 1); }, 2});

  // ---- fused layers ----
  cs.push_back({"layer_norm affine", {rn({6, 33}), rn({33}), rn({33})},
                [](In x) { return layer_norm(x[0], x[1], x[2]); }, 4});
  cs.push_back({"layer_norm no affine, permuted", {rn({5, 4, 8})},
                [](In x) { return layer_norm(permute(x[0], {1, 0, 2}), Tensor(), Tensor()); }, 4});
  return cs;
}

}  // namespace attnlab::testing
