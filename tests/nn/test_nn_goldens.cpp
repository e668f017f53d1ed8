// Every layer and loss, forward and all gradients, against PyTorch 1.13 in float64
// (tests/fixtures/make_nn_goldens.py wrote tests/data/nn/*.safetensors). Backward runs on
// L = sum(out * g) with the fixture's upstream gradient g.
#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "nn/layers.h"
#include "nn/losses.h"
#include "nn/serialization.h"
#include "test_util.h"

using namespace attnlab;
using namespace attnlab::nn;
using attnlab::testing::check_close_tensor;

namespace {

constexpr double kTol = 1e-12;  // f64 end to end; only summation order differs from PyTorch

LoadedTensors golden(const std::string& file) {
  return load_tensors(std::string(ATTNLAB_TEST_DATA_DIR) + "/nn/" + file);
}

// A fresh leaf copy (each test accumulates its own gradient).
Tensor input(const LoadedTensors& f, const std::string& name) {
  Tensor t = ops::clone(f.get(name));
  t.set_requires_grad(true);
  return t;
}

// Copies the fixture's weight into a module parameter (same shape and dtype).
void set(const Tensor& param, const Tensor& value) {
  NoGradGuard g;
  ops::copy_(param, value);
}

}  // namespace

TEST_CASE("golden: Linear") {
  const auto f = golden("linear.safetensors");
  Linear lin(4, 5, true, DType::f64);
  set(lin.weight, f.get("weight"));
  set(lin.bias, f.get("bias"));
  const Tensor x = input(f, "x");
  const Tensor y = lin(x);
  check_close_tensor(y, f.get("y"), kTol, kTol);
  backward(sum(y * f.get("g")));
  check_close_tensor(x.grad(), f.get("dx"), kTol, kTol);
  check_close_tensor(lin.weight.grad(), f.get("dweight"), kTol, kTol);
  check_close_tensor(lin.bias.grad(), f.get("dbias"), kTol, kTol);
}

TEST_CASE("golden: LayerNorm") {
  const auto f = golden("layer_norm.safetensors");
  LayerNorm ln(6, 1e-5, true, DType::f64);
  set(ln.weight, f.get("weight"));
  set(ln.bias, f.get("bias"));
  const Tensor x = input(f, "x");
  const Tensor y = ln(x);
  check_close_tensor(y, f.get("y"), kTol, kTol);
  backward(sum(y * f.get("g")));
  check_close_tensor(x.grad(), f.get("dx"), 1e-11, 1e-11);
  check_close_tensor(ln.weight.grad(), f.get("dweight"), kTol, kTol);
  check_close_tensor(ln.bias.grad(), f.get("dbias"), kTol, kTol);
}

TEST_CASE("golden: GELU exact and tanh") {
  const auto f = golden("gelu.safetensors");
  for (const std::string tag : {"exact", "tanh"}) {
    INFO(tag);
    GELU gelu_module(tag == "tanh");
    const Tensor x = input(f, tag + ".x");
    const Tensor y = gelu_module(x);
    check_close_tensor(y, f.get(tag + ".y"), kTol, kTol);
    backward(sum(y * f.get(tag + ".g")));
    check_close_tensor(x.grad(), f.get(tag + ".dx"), kTol, kTol);
  }
}

TEST_CASE("golden: Embedding (repeated indices accumulate)") {
  const auto f = golden("embedding.safetensors");
  Embedding emb(7, 3, DType::f64);
  set(emb.weight, f.get("weight"));
  const Tensor y = emb(f.get("index"));
  check_close_tensor(y, f.get("y"), 0, 0);
  backward(sum(y * f.get("g")));
  check_close_tensor(emb.weight.grad(), f.get("dweight"), kTol, kTol);
}

TEST_CASE("golden: Sequential Linear -> GELU -> Linear, PyTorch names") {
  const auto f = golden("sequential.safetensors");
  Sequential m{std::make_shared<Linear>(3, 8, true, DType::f64), std::make_shared<GELU>(),
               std::make_shared<Linear>(8, 2, true, DType::f64)};
  NamedTensorList sd;
  for (const auto& [n, t] : f.tensors)
    if (n.rfind("model.", 0) == 0) sd.emplace_back(n.substr(6), t);
  m.load_state_dict(sd);  // strict: names 0.weight ... 2.bias match torch's
  const Tensor x = input(f, "x");
  const Tensor y = m(x);
  check_close_tensor(y, f.get("y"), kTol, kTol);
  backward(sum(y * f.get("g")));
  check_close_tensor(x.grad(), f.get("dx"), kTol, kTol);
  for (const auto& [n, p] : m.named_parameters()) {
    INFO(n);
    check_close_tensor(p.grad(), f.get("grad." + n), kTol, kTol);
  }
}

TEST_CASE("golden: RoPE against a hand-written torch reference of the rotate-half convention") {
  const auto f = golden("rope.safetensors");
  {
    RotaryEmbedding rope(8);
    const Tensor x = input(f, "offset.x");
    const Tensor y = rope(x, 3);
    check_close_tensor(y, f.get("offset.y"), kTol, kTol);
    backward(sum(y * f.get("offset.g")));
    check_close_tensor(x.grad(), f.get("offset.dx"), kTol, kTol);
  }
  {
    RotaryEmbedding rope(6, /*base=*/500.0);
    const Tensor x = input(f, "pos.x");
    const Tensor y = rope.forward(x, f.get("pos.positions"));
    check_close_tensor(y, f.get("pos.y"), 1e-11, 1e-11);  // theta up to 2047: cos/sin rounding
    backward(sum(y * f.get("pos.g")));
    check_close_tensor(x.grad(), f.get("pos.dx"), 1e-11, 1e-11);
  }
}

namespace {

using LossFn = std::function<Tensor(const Tensor&, const Tensor&, Reduction)>;

// Checks loss value and the gradients PyTorch produced for `name` under every reduction.
void check_loss(const LoadedTensors& f, const std::string& name, const std::string& a, const std::string& b,
                const LossFn& fn) {
  const std::pair<const char*, Reduction> reductions[] = {
      {"mean", Reduction::mean}, {"sum", Reduction::sum}, {"none", Reduction::none}};
  for (const auto& [tag, r] : reductions) {
    const std::string key = name + "." + tag;
    INFO(key);
    const Tensor x = input(f, name + "." + a);
    Tensor y = ops::clone(f.get(name + "." + b));
    if (is_floating(y.dtype())) y.set_requires_grad(true);
    const Tensor loss = fn(x, y, r);
    check_close_tensor(loss, f.get(key + ".loss"), kTol, kTol);
    backward(r == Reduction::none ? sum(loss * f.get(key + ".g")) : loss);
    check_close_tensor(x.grad(), f.get(key + ".d" + a), kTol, kTol);
    if (f.contains(key + ".d" + b)) check_close_tensor(y.grad(), f.get(key + ".d" + b), kTol, kTol);
  }
}

}  // namespace

TEST_CASE("golden: losses, every reduction, gradients for both inputs") {
  const auto f = golden("losses.safetensors");
  check_loss(f, "mse", "pred", "target", [](auto& a, auto& b, Reduction r) { return mse_loss(a, b, r); });
  check_loss(f, "bce", "logits", "target",
             [](auto& a, auto& b, Reduction r) { return binary_cross_entropy_with_logits(a, b, r); });
  check_loss(f, "ce", "logits", "target", [](auto& a, auto& b, Reduction r) { return cross_entropy(a, b, r); });
  check_loss(f, "huber", "pred", "target",
             [](auto& a, auto& b, Reduction r) { return huber_loss(a, b, 1.0, r); });
  check_loss(f, "huber_d05", "pred", "target",
             [](auto& a, auto& b, Reduction r) { return huber_loss(a, b, 0.5, r); });
  check_loss(f, "allocation", "pred", "target",
             [](auto& a, auto& b, Reduction r) { return allocation_loss(a, b, r); });
}

TEST_CASE("interop: a state dict written by PyTorch loads into our Sequential") {
  Sequential m{std::make_shared<Linear>(4, 8), std::make_shared<ReLU>(), std::make_shared<Linear>(8, 2)};
  const auto config = load_module(std::string(ATTNLAB_TEST_DATA_DIR) + "/nn/interop_seq_state.safetensors", m);
  CHECK(config.is_null());  // torch wrote no attnlab metadata
  const auto io = golden("interop_seq_io.safetensors");
  check_close_tensor(m(io.get("x")), io.get("y"), 1e-6, 1e-5);  // f32, BLAS vs torch summation order
}
