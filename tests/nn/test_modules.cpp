// Module mechanics: registration and PyTorch naming, state_dict round trips, load_state_dict errors,
// modes, zero_grad, to(dtype), apply, num_parameters, containers.
#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "nn/layers.h"
#include "test_util.h"

using namespace attnlab;
using namespace attnlab::nn;
using namespace attnlab::testing;

namespace {

std::vector<std::string> names(const NamedTensorList& l) {
  std::vector<std::string> out;
  for (const auto& [n, t] : l) out.push_back(n);
  return out;
}

// A miniature of the seed's transformer block: attention.{q,k}_proj, norm1, ff (Sequential).
struct Attention : Module {
  std::shared_ptr<Linear> q_proj = register_module("q_proj", std::make_shared<Linear>(4, 4, false));
  std::shared_ptr<Linear> k_proj = register_module("k_proj", std::make_shared<Linear>(4, 2, false));
};

struct Block : Module {
  std::shared_ptr<Attention> attention = register_module("attention", std::make_shared<Attention>());
  std::shared_ptr<LayerNorm> norm1 = register_module("norm1", std::make_shared<LayerNorm>(4));
  std::shared_ptr<Sequential> ff = register_module(
      "ff", std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<UnaryModule>>{
                std::make_shared<Linear>(4, 8), std::make_shared<GELU>(), std::make_shared<Dropout>(0.1),
                std::make_shared<Linear>(8, 4), std::make_shared<Dropout>(0.1)}));
};

struct Model : Module {
  Tensor pos_encoding = register_parameter("pos_encoding", make_positional_parameter(16, 4));
  std::shared_ptr<ModuleList> layers = register_module("layers", std::make_shared<ModuleList>());
  Tensor step = register_buffer("step", zeros({1}, DType::i64));
  Tensor cache = register_buffer("cache", zeros({2}), /*persistent=*/false);
  Model() {
    layers->push_back(std::make_shared<Block>());
    layers->push_back(std::make_shared<Block>());
  }
};

}  // namespace

TEST_CASE("Module: hierarchical names follow PyTorch") {
  Model m;
  const std::vector<std::string> block = {"attention.q_proj.weight", "attention.k_proj.weight",
                                          "norm1.weight", "norm1.bias", "ff.0.weight", "ff.0.bias",
                                          "ff.3.weight", "ff.3.bias"};
  std::vector<std::string> expected = {"pos_encoding"};
  for (const char* l : {"layers.0.", "layers.1."})
    for (const auto& n : block) expected.push_back(l + n);
  CHECK(names(m.named_parameters()) == expected);
  CHECK(m.parameters().size() == expected.size());
  CHECK(names(m.named_buffers()) == std::vector<std::string>{"step", "cache"});

  // state_dict: parameters then persistent buffers, module by module (as PyTorch)
  std::vector<std::string> sd = {"pos_encoding", "step"};
  for (const char* l : {"layers.0.", "layers.1."})
    for (const auto& n : block) sd.push_back(l + n);
  CHECK(names(m.state_dict()) == sd);

  const auto children = m.named_children();
  REQUIRE(children.size() == 1);
  CHECK(children[0].first == "layers");
  CHECK(children[0].second->type_name() == "ModuleList");
  CHECK(m.layers->get<Block>(1)->ff->get<Linear>(3)->out_features == 4);
  check_error([&] { m.layers->get<Block>(1)->ff->get<Linear>(1); }, {"Sequential::get", "child 1", "GELU"});
  check_error([&] { (*m.layers)[2]; }, {"ModuleList", "index 2", "size 2"});

  auto mods = m.named_modules();
  CHECK(mods[0].first == "");
  CHECK(mods[1].first == "layers");
  CHECK(mods[2].first == "layers.0");
  CHECK(mods[3].first == "layers.0.attention");

  for (const auto& p : m.parameters()) {
    CHECK(p.requires_grad());
    CHECK(p.is_leaf());
  }
  // 16*4 + 2 * (16 + 8 + 8 + (32 + 8) + (32 + 4))
  CHECK(m.num_parameters() == 64 + 2 * 108);
}

TEST_CASE("Module: registration errors and weight tying") {
  Module m;
  m.register_parameter("w", zeros({2}));
  check_error([&] { m.register_parameter("w", zeros({2})); }, {"register_parameter", "'w'", "already"});
  check_error([&] { m.register_buffer("w", zeros({2})); }, {"register_buffer", "'w'", "already"});
  check_error([&] { m.register_parameter("a.b", zeros({2})); }, {"'a.b'", "'.'"});
  check_error([&] { m.register_parameter("", zeros({2})); }, {"empty name"});
  check_error([&] { m.register_parameter("i", zeros({2}, DType::i64)); }, {"floating", "i64[2]"});
  Tensor leaf = ones({2});
  leaf.set_requires_grad(true);
  check_error([&] { m.register_parameter("nonleaf", leaf * 2.0); }, {"leaf"});

  // A tensor registered twice (tied embeddings) is one parameter but two state_dict entries.
  Module tied;
  Tensor w = tied.register_parameter("embed", zeros({3, 2}));
  tied.register_parameter("unembed", w);
  CHECK(tied.parameters().size() == 1);
  CHECK(tied.num_parameters() == 6);
  CHECK(tied.state_dict().size() == 2);
}

TEST_CASE("Module: state_dict round trip and load_state_dict copies in place") {
  manual_seed(1);
  Model a;
  manual_seed(2);
  Model b;
  const Tensor handle = b.layers->get<Block>(0)->attention->q_proj->weight;
  CHECK(handle.to_vector<float>() != a.layers->get<Block>(0)->attention->q_proj->weight.to_vector<float>());
  ops::fill_(a.step, 7);

  b.load_state_dict(a.state_dict());
  const auto sa = a.state_dict(), sb = b.state_dict();
  for (size_t i = 0; i < sa.size(); ++i) {
    INFO(sa[i].first);
    CHECK(sa[i].second.to_vector<double>() == sb[i].second.to_vector<double>());
    CHECK(!sa[i].second.is_same(sb[i].second));  // values copied, not handles shared
  }
  // the handle a layer holds is the one that was updated, and still a trainable leaf
  CHECK(handle.is_same(b.layers->get<Block>(0)->attention->q_proj->weight));
  CHECK(handle.to_vector<float>() == a.layers->get<Block>(0)->attention->q_proj->weight.to_vector<float>());
  CHECK(handle.requires_grad());
  CHECK(b.step.to_vector<int64_t>() == std::vector<int64_t>{7});
}

TEST_CASE("Module: load_state_dict reports missing, unexpected, shape and dtype problems") {
  Sequential m{std::make_shared<Linear>(2, 3), std::make_shared<ReLU>(), std::make_shared<Linear>(3, 1)};
  NamedTensorList sd = m.state_dict();  // 0.weight 0.bias 2.weight 2.bias

  NamedTensorList missing(sd.begin(), sd.end() - 1);
  check_error([&] { m.load_state_dict(missing); }, {"load_state_dict for Sequential", "missing keys: 2.bias"});
  m.load_state_dict(missing, /*strict=*/false);  // fine without strict

  NamedTensorList extra = sd;
  extra.emplace_back("3.weight", zeros({1}));
  check_error([&] { m.load_state_dict(extra); }, {"unexpected keys: 3.weight"});
  m.load_state_dict(extra, false);

  NamedTensorList shape = sd;
  shape[0].second = zeros({4, 2});
  check_error([&] { m.load_state_dict(shape, false); },
              {"size mismatch for 0.weight", "checkpoint [4, 2]", "model [3, 2]"});

  NamedTensorList dtype = sd;
  dtype[1].second = zeros({3}, DType::f64);
  check_error([&] { m.load_state_dict(dtype); }, {"dtype mismatch for 0.bias", "checkpoint f64", "model f32"});

  // all problems at once, and nothing is copied when anything is wrong
  NamedTensorList both(sd.begin() + 1, sd.end());
  both.emplace_back("bogus", zeros({1}));
  both[0].second = full({3}, 5.0);
  const auto before = m[0]->state_dict()[1].second.to_vector<float>();
  check_error([&] { m.load_state_dict(both); }, {"missing keys: 0.weight", "unexpected keys: bogus"});
  CHECK(m[0]->state_dict()[1].second.to_vector<float>() == before);
}

TEST_CASE("Module: train/eval is recursive and switches Dropout") {
  Model m;
  CHECK(m.is_training());
  auto drop = m.layers->get<Block>(1)->ff->get<Dropout>(2);
  drop->p = 0.5;
  const Tensor x = ones({4, 64});
  CHECK(drop->forward(x).to_vector<float>() != x.to_vector<float>());
  m.eval();
  for (auto& [n, mod] : m.named_modules()) CHECK(!mod->is_training());
  CHECK(drop->forward(x).to_vector<float>() == x.to_vector<float>());
  m.train();
  CHECK(drop->is_training());
}

TEST_CASE("Module: zero_grad sets gradients to undefined") {
  Linear lin(3, 2);
  backward(sum(lin(ones({4, 3}))));
  CHECK(lin.weight.grad().defined());
  CHECK(lin.bias.grad().defined());
  lin.zero_grad();
  CHECK(!lin.weight.grad().defined());
  CHECK(!lin.bias.grad().defined());
}

TEST_CASE("Module: to(dtype) converts in place, keeping handles and requires_grad") {
  Model m;
  Linear& q = *m.layers->get<Block>(0)->attention->q_proj;
  const Tensor handle = q.weight;
  const auto before = handle.to_vector<double>();
  backward(sum(q(ones({1, 4}))));
  m.to(DType::f64);
  CHECK(handle.dtype() == DType::f64);
  CHECK(q.weight.is_same(handle));
  CHECK(handle.requires_grad());
  CHECK(handle.is_leaf());
  CHECK(handle.to_vector<double>() == before);  // f32 -> f64 is exact
  CHECK(handle.grad().dtype() == DType::f64);   // existing gradients follow
  CHECK(m.step.dtype() == DType::i64);          // integer buffers are left alone
  CHECK(m.cache.dtype() == DType::f64);
  for (const auto& p : m.parameters()) CHECK(p.dtype() == DType::f64);
  // and the module still runs, with gradients of the new dtype
  q.zero_grad();
  backward(sum(q(ones({1, 4}, DType::f64))));
  CHECK(q.weight.grad().dtype() == DType::f64);
  m.to(DType::bf16);
  CHECK(q.weight.dtype() == DType::bf16);
  check_error([&] { m.to(DType::i32); }, {"to", "floating", "i32"});
}

TEST_CASE("Module: apply visits children before the module itself") {
  Sequential m{std::make_shared<Linear>(2, 2), std::make_shared<Sequential>(
                                                   std::initializer_list<std::shared_ptr<UnaryModule>>{
                                                       std::make_shared<Tanh>()})};
  std::vector<std::string> order;
  m.apply([&](Module& x) { order.push_back(x.type_name()); });
  CHECK(order == std::vector<std::string>{"Linear", "Tanh", "Sequential", "Sequential"});

  // the usual use: re-initialise every Linear
  m.apply([](Module& x) {
    if (auto* l = dynamic_cast<Linear*>(&x)) ops::fill_(l->weight, 0.25);
  });
  CHECK(m.get<Linear>(0)->weight.to_vector<float>() == std::vector<float>(4, 0.25f));
}

TEST_CASE("Module: num_parameters counts only trainable ones when asked") {
  Sequential m{std::make_shared<Linear>(3, 4), std::make_shared<LayerNorm>(4)};
  CHECK(m.num_parameters() == 12 + 4 + 4 + 4);
  m.get<LayerNorm>(1)->weight.set_requires_grad(false);
  CHECK(m.num_parameters(true) == 12 + 4 + 4);
  CHECK(m.num_parameters() == 24);
}

TEST_CASE("Layers: shapes, options and input errors") {
  Linear lin(4, 3, /*bias=*/false);
  CHECK(lin.named_parameters().size() == 1);
  CHECK(lin(zeros({2, 5, 4})).shape() == Shape{2, 5, 3});
  check_error([&] { lin(zeros({2, 5})); }, {"linear", "f32[2, 5]", "in_features = 4"});

  LayerNorm ln(6, 1e-5, /*elementwise_affine=*/false);
  CHECK(ln.named_parameters().empty());
  const Tensor y = ln(uniform({3, 6}, -1, 1, DType::f64));
  check_close(mean(y, {-1}), {0, 0, 0}, 1e-12);
  check_error([&] { ln(zeros({3, 5})); }, {"LayerNorm(6)", "f32[3, 5]"});

  Embedding emb(10, 3);
  CHECK(emb(from_vector_i64({1, 2, 3, 4, 5, 6}, {2, 3})).shape() == Shape{2, 3, 3});
  check_error([&] { emb(from_vector_i64({10})); }, {"index_select", "10"});
  check_error([&] { emb(zeros({2})); }, {"embedding", "i64"});

  LearnedPositionalEmbedding pe(8, 3);
  CHECK(pe.named_parameters()[0].first == "weight");
  CHECK(pe.weight.shape() == Shape{1, 8, 3});
  const Tensor x = zeros({2, 5, 3});
  check_close_tensor(pe.forward(x, 2), expand(narrow(pe.weight, 1, 2, 5), {2, 5, 3}), 0, 0);
  check_error([&] { pe.forward(x, 4); }, {"LearnedPositionalEmbedding", "[4, 9)", "max_seq_len 8"});

  RotaryEmbedding rope(8, 10000.0, /*max_seq_len=*/16);
  CHECK(rope.named_parameters().empty());
  CHECK(rope(zeros({1, 3, 2, 8})).shape() == Shape{1, 3, 2, 8});
  check_error([&] { rope.forward(zeros({1, 3, 2, 8}), 14); }, {"RotaryEmbedding", "position 16"});
  check_error([&] { rope(zeros({1, 3, 8})); }, {"RotaryEmbedding(8)", "[B, T, H, 8]"});
  check_error([] { RotaryEmbedding(7); }, {"even", "7"});

  Tensor pos = make_positional_parameter(4, 2);
  CHECK(pos.shape() == Shape{1, 4, 2});
  CHECK(pos.requires_grad());
}

TEST_CASE("RoPE: position 0 is the identity, rotations preserve norms, offsets match positions") {
  RotaryEmbedding rope(6);
  Generator gen(3);
  const Tensor x = uniform({2, 4, 3, 6}, -1, 1, DType::f64, &gen);
  const Tensor y = rope(x, 0);
  check_close_tensor(select(y, 1, 0), select(x, 1, 0), 1e-15, 0);
  // each (i, i + D/2) pair is rotated, so the norm over the head dim is unchanged
  check_close_tensor(sum(square(y), {-1}), sum(square(x), {-1}), 1e-12, 1e-12);
  // offset k == explicit positions k..k+T-1, batch-shared or per batch
  const Tensor pos1 = from_vector_i64({5, 6, 7, 8});
  const Tensor pos2 = from_vector_i64({5, 6, 7, 8, 5, 6, 7, 8}, {2, 4});
  check_close_tensor(rope(x, 5), rope.forward(x, pos1), 0, 0);
  check_close_tensor(rope(x, 5), rope.apply(x, pos2), 0, 0);
  // relative property: <rope(q, m), rope(k, n)> depends on m - n only
  const Tensor q = uniform({1, 1, 1, 6}, -1, 1, DType::f64, &gen), k = uniform({1, 1, 1, 6}, -1, 1, DType::f64, &gen);
  auto dot = [&](int64_t m, int64_t n) { return sum(rope(q, m) * rope(k, n)).item<double>(); };
  CHECK(dot(3, 1) == doctest::Approx(dot(10, 8)).epsilon(1e-12));
}

TEST_CASE("Linear: packed bf16 / int8 weights for inference") {
  manual_seed(7);
  Linear lin(300, 70);
  Generator g(8);
  const Tensor x1 = randn({1, 1, 300}, DType::f32, &g), x5 = randn({5, 300}, DType::f32, &g);
  NoGradGuard ng;
  const Tensor y_f32 = lin(x1);
  for (auto f : {kernels::WeightFormat::bf16, kernels::WeightFormat::int8}) {
    INFO(kernels::weight_format_name(f));
    lin.pack_weights(f);
    // one position (the gemv path) equals the same position inside a batch (the unpacked-matmul path):
    // both multiply by the same rounded weights
    const Tensor y1 = lin(x1), y5 = lin(x5);
    CHECK(y1.shape() == Shape{1, 1, 70});
    for (int64_t i = 0; i < 5; ++i)
      check_close_tensor(lin(ops::narrow(x5, 0, i, 1)), ops::narrow(y5, 0, i, 1), 1e-5, 1e-5);
    // and stays near the f32 weights: |dy| <= sum_k |dw_k x_k|, dw within bf16's 2^-9 relative or half an int8 step
    const double d = max_abs_diff(y1, y_f32);
    CHECK(d > 0);
    CHECK(d < (f == kernels::WeightFormat::bf16 ? 0.01 : 0.05));
    // a changed weight is repacked (version counter): 2W x + b = 2 y - b
    ops::mul_(lin.weight, 2.0);
    check_close_tensor(lin(x1), ops::sub(ops::binary_scalar(ops::BinaryOp::mul, y1, 2.0), lin.bias), 1e-4, 1e-4);
    ops::mul_(lin.weight, 0.5);
  }
  GradMode::set_enabled(true);  // recording gradients always uses the f32 weight
  check_close_tensor(lin(x1), y_f32, 0, 0);
  GradMode::set_enabled(false);
  pack_linear_weights(lin, kernels::WeightFormat::f32);
  check_close_tensor(lin(x1), y_f32, 0, 0);
}
