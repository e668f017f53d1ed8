// The differentiable ops of nn/ as GradCases (tests/autograd/grad_fixture.h): attention (every backend;
// causal with Sq != Sk, GQA and MQA, dropout, a strided q; key padding and additive bias on the CPU),
// RoPE, Linear, embedding, dropout and the losses, forward and backward on every device.
#pragma once
#include "nn/attention/sdpa.h"
#include "nn/functional.h"
#include "nn/layers/rotary.h"
#include "nn/losses.h"
#include "tests/autograd/grad_fixture.h"

namespace attnlab::testing {

inline std::vector<GradCase> nn_grad_cases() {
  Generator gen(77);
  auto rn = [&](const Shape& s) { return randn(s, DType::f32, &gen); };
  using In = const std::vector<Tensor>&;
  const std::vector<DType> f32_f64 = {DType::f32, DType::f64};
  std::vector<GradCase> cs;

  // ---- attention: q [B, Sq, H, D], k, v [B, Sk, Hkv, D] ----
  auto attention = [](nn::AttentionBackend backend, bool causal, double dropout) {
    return [=](In x) {
      nn::AttentionOptions o;
      o.backend = backend;
      o.causal = causal;
      o.dropout_p = dropout;
      o.dropout_seed = 99;
      return nn::scaled_dot_product_attention(x[0], x[1], x[2], o).out;
    };
  };
  auto add_attention = [&](GradCase c) {
    c.cpu_half = false;  // the CPU kernels take f32/f64 (GQA widens bf16 before them)
    c.cuda_f64 = false;  // the GPU kernels take f32/bf16/f16
    c.tol_scale = 4;
    cs.push_back(std::move(c));
  };
  for (auto [backend, b] : {std::pair{nn::AttentionBackend::flash, std::string("flash")},
                            {nn::AttentionBackend::math, std::string("math")},
                            {nn::AttentionBackend::reference, std::string("reference")}}) {
    add_attention({"sdpa " + b + " GQA H4 Hkv2", {rn({2, 7, 4, 8}), rn({2, 7, 2, 8}), rn({2, 7, 2, 8})},
                   attention(backend, false, 0.0)});
    add_attention({"sdpa " + b + " causal Sq5 < Sk9 MQA", {rn({2, 5, 4, 8}), rn({2, 9, 1, 8}), rn({2, 9, 1, 8})},
                   attention(backend, true, 0.0)});
    add_attention({"sdpa " + b + " causal dropout 0.2", {rn({1, 12, 2, 16}), rn({1, 12, 2, 16}), rn({1, 12, 2, 16})},
                   attention(backend, true, 0.2)});
  }
  add_attention({"sdpa flash q a permuted view", {rn({2, 4, 6, 8}), rn({2, 6, 2, 8}), rn({2, 6, 2, 8})}, [](In x) {
                   return nn::scaled_dot_product_attention(permute(x[0], {0, 2, 1, 3}), x[1], x[2]).out;
                 }});
  GradCase kpm{"sdpa math key padding mask", {rn({2, 4, 2, 8}), rn({2, 6, 2, 8}), rn({2, 6, 2, 8}),
                                              tensor({{0, 0, 1, 0, 0, 1}, {0, 0, 0, 0, 1, 1}}, DType::u8)},
               [](In x) {
                 nn::AttentionOptions o;
                 o.backend = nn::AttentionBackend::math;
                 o.key_padding_mask = x[3];
                 return nn::scaled_dot_product_attention(x[0], x[1], x[2], o).out;
               }};
  kpm.cuda = false;  // not on the GPU yet (a clear Error there)
  add_attention(kpm);
  GradCase bias{"sdpa flash additive bias [Sq, Sk]", {rn({1, 5, 2, 8}), rn({1, 5, 2, 8}), rn({1, 5, 2, 8}), rn({5, 5})},
                [](In x) {
                  nn::AttentionOptions o;
                  o.attn_bias = x[3];
                  return nn::scaled_dot_product_attention(x[0], x[1], x[2], o).out;
                }};
  bias.cuda = false;
  bias.constant = {3};  // attn_bias is not differentiated
  add_attention(bias);

  // ---- RoPE ----
  cs.push_back({"rope at offset 3", {rn({2, 5, 3, 8})}, [](In x) { return nn::RotaryEmbedding(8).forward(x[0], 3); }});
  cs.push_back({"rope at per-row positions", {rn({2, 4, 2, 8}), from_vector_i64({0, 1, 2, 3, 7, 8, 9, 10}, {2, 4})},
                [](In x) { return nn::RotaryEmbedding(8).forward(x[0], x[1]); }});
  GradCase rot{"apply_rotary given tables", {rn({3, 4, 6}), rn({4, 3}), rn({4, 3})},
               [](In x) { return nn::apply_rotary(x[0], x[1], x[2]); }};
  rot.constant = {1, 2};
  cs.push_back(rot);

  // ---- layers ----
  cs.push_back({"linear with bias [B,T,C]", {rn({3, 5, 8}), rn({6, 8}), rn({6})},
                [](In x) { return nn::functional::linear(x[0], x[1], x[2]); }, 4});
  cs.push_back({"embedding", {rn({10, 4}), from_vector_i64({1, 9, 1, 0, 4, 7}, {2, 3})},
                [](In x) { return nn::functional::embedding(x[0], x[1]); }});
  cs.push_back({"dropout 0.3 (host-drawn mask)", {rn({6, 7})}, [](In x) {
                  Generator g(5);  // the same mask on every device and run
                  return nn::functional::dropout(x[0], 0.3, true, g);
                }});

  // ---- losses (pred and target both differentiated) ----
  cs.push_back({"mse_loss", {rn({8, 3}), rn({8, 3})}, [](In x) { return nn::mse_loss(x[0], x[1]); }, 2});
  cs.push_back({"bce with logits", {rn({8, 1}), uniform({8, 1}, 0, 1, DType::f32, &gen)},
                [](In x) { return nn::binary_cross_entropy_with_logits(x[0], x[1]); }, 2});
  cs.push_back({"huber_loss sum", {rn({6, 2}), rn({6, 2})},
                [](In x) { return nn::huber_loss(x[0], x[1], 0.5, nn::Reduction::sum); }, 2});
  cs.push_back({"allocation_loss of tanh positions", {rn({8, 1}), rn({8, 1})},
                [](In x) { return nn::allocation_loss(tanh(x[0]), x[1]); }, 2});
  GradCase ce{"cross_entropy", {rn({5, 4}), from_vector_i64({3, 0, 1, 1, 2})},
              [](In x) { return nn::cross_entropy(x[0], x[1]); }, 2};
  ce.dtypes = f32_f64;  // its backward is a scatter_add (f32/f64 only)
  cs.push_back(ce);
  return cs;
}

}  // namespace attnlab::testing
