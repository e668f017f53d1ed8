// Checkpoints: save_tensors/load_tensors for every dtype, save_module/load_module bit-exact round
// trips with config, format-version and corrupt-file errors naming the file, PyTorch interop output.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "autograd/functions.h"
#include "nn/layers.h"
#include "nn/safetensors.h"
#include "nn/serialization.h"
#include "test_util.h"

using namespace attnlab;
using namespace attnlab::nn;
using attnlab::testing::check_error;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test process (tests may run in parallel), removed at exit.
struct TmpDir {
  fs::path dir = fs::temp_directory_path() / ("attnlab_nn_serialization_" + std::to_string(getpid()));
  TmpDir() { fs::create_directories(dir); }
  ~TmpDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

std::string tmp(const std::string& name) {
  static const TmpDir t;
  return (t.dir / name).string();
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  const Tensor ca = ops::contiguous(a), cb = ops::contiguous(b);
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

std::shared_ptr<Sequential> mlp() {
  return std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<UnaryModule>>{
      std::make_shared<Linear>(4, 8), std::make_shared<ReLU>(), std::make_shared<Linear>(8, 2)});
}

}  // namespace

TEST_CASE("save_tensors / load_tensors: every dtype, strided inputs, metadata, bit-exact") {
  Generator gen(3);
  const Tensor f32 = randn({3, 4}, DType::f32, &gen);
  const NamedTensorList in = {
      {"f32.t", ops::transpose(f32, 0, 1)},  // non-contiguous: saved in logical order
      {"f64", randn({2, 2}, DType::f64, &gen)},
      {"bf16", ops::to_dtype(randn({5}, DType::f32, &gen), DType::bf16)},
      {"f16", ops::to_dtype(randn({5}, DType::f32, &gen), DType::f16)},
      {"i32", from_vector({-3, 7}, {2}, DType::i32)},
      {"i64", from_vector_i64({-(int64_t(1) << 40), 5})},
      {"i8", from_vector({-128, 127}, {2}, DType::i8)},
      {"u8", from_vector({0, 255}, {1, 2}, DType::u8)},
      {"scalar", scalar_tensor(2.5, DType::f64)},
      {"empty", zeros({0, 3})},
  };
  save_tensors(tmp("all.safetensors"), in, {{"note", "hello"}});
  const LoadedTensors out = load_tensors(tmp("all.safetensors"));
  CHECK(out.metadata.at("note") == "hello");
  CHECK(out.metadata.at("attnlab_format_version") == "1");
  REQUIRE(out.tensors.size() == in.size());
  for (const auto& [name, t] : in) {
    INFO(name);
    CHECK(same_bytes(out.get(name), t));
    CHECK(!out.get(name).requires_grad());
  }
  check_error([&] { out.get("nope"); }, {"all.safetensors", "'nope'"});
  check_error([&] { save_tensors(tmp("bad.safetensors"), {{"x", Tensor()}}); }, {"bad.safetensors", "'x'", "undefined"});
}

TEST_CASE("save_module / load_module: bit-exact round trip with config") {
  manual_seed(10);
  auto a = mlp();
  const nlohmann::json config = {{"d_in", 4}, {"hidden", 8}, {"act", "relu"}};
  save_module(tmp("mlp.safetensors"), *a, config);

  manual_seed(11);
  auto b = mlp();
  const Tensor handle = b->get<Linear>(0)->weight;
  const nlohmann::json got = load_module(tmp("mlp.safetensors"), *b);
  CHECK(got == config);
  CHECK(read_module_config(tmp("mlp.safetensors")) == config);
  const auto sa = a->state_dict(), sb = b->state_dict();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    CHECK(sa[i].first == sb[i].first);
    CHECK(same_bytes(sa[i].second, sb[i].second));
  }
  CHECK(handle.is_same(b->get<Linear>(0)->weight));  // loaded in place
  const Tensor x = randn({3, 4});
  CHECK(same_bytes((*a)(x), (*b)(x)));

  // f64 and bf16 modules round-trip exactly too
  a->to(DType::bf16);
  b->to(DType::bf16);
  save_module(tmp("mlp_bf16.safetensors"), *a);
  load_module(tmp("mlp_bf16.safetensors"), *b);
  for (size_t i = 0; i < sa.size(); ++i) CHECK(same_bytes(a->state_dict()[i].second, b->state_dict()[i].second));
  CHECK(read_module_config(tmp("mlp_bf16.safetensors")).is_null());
}

TEST_CASE("load_module: errors name the file and the problem") {
  auto a = mlp();
  save_module(tmp("mlp2.safetensors"), *a);
  Sequential other{std::make_shared<Linear>(4, 8), std::make_shared<ReLU>(), std::make_shared<Linear>(8, 3)};
  check_error([&] { load_module(tmp("mlp2.safetensors"), other); },
              {"mlp2.safetensors", "size mismatch for 2.weight", "checkpoint [2, 8]", "model [3, 8]"});
  Sequential shorter{std::make_shared<Linear>(4, 8)};
  check_error([&] { load_module(tmp("mlp2.safetensors"), shorter); },
              {"mlp2.safetensors", "unexpected keys: 2.bias, 2.weight"});
  load_module(tmp("mlp2.safetensors"), shorter, /*strict=*/false);
  CHECK(same_bytes(shorter.get<Linear>(0)->weight, a->get<Linear>(0)->weight));

  // a file from a newer attnlab
  const float one = 1.0f;
  safetensors::save_file(tmp("newer.safetensors"),
                         {{"0.weight", {safetensors::Dtype::F32, {1}, reinterpret_cast<const uint8_t*>(&one), 4}}},
                         {{"attnlab_format_version", "2"}});
  check_error([&] { load_module(tmp("newer.safetensors"), shorter); },
              {"newer.safetensors", "format version 2", "newer", "version 1"});
  check_error([&] { load_tensors(tmp("newer.safetensors")); }, {"newer.safetensors", "version 2"});

  // corrupt and missing files: the format layer's errors come through with the path
  const std::string dir = std::string(ATTNLAB_TEST_DATA_DIR) + "/safetensors/";
  for (const char* f : {"corrupt_truncated_buffer.safetensors", "corrupt_invalid_json.safetensors",
                        "corrupt_too_short.safetensors"}) {
    INFO(f);
    check_error([&] { load_module(dir + f, shorter); }, {f});
  }
  check_error([&] { load_tensors(tmp("does_not_exist.safetensors")); }, {"does_not_exist.safetensors"});
}

TEST_CASE("interop: a module we save is a PyTorch state dict (files for the manual torch check)") {
  // Loads torch's weights, changes them, saves; the fixture script's --check-load reads the file
  // into torch.nn.Sequential with load_state_dict and compares with our output on the same input.
  auto m = mlp();
  load_module(std::string(ATTNLAB_TEST_DATA_DIR) + "/nn/interop_seq_state.safetensors", *m);
  {
    NoGradGuard g;
    ops::mul_(m->get<Linear>(2)->weight, -1.5);
    ops::add_(m->get<Linear>(0)->bias, ones({8}), 0.25);
  }
  const LoadedTensors io = load_tensors(std::string(ATTNLAB_TEST_DATA_DIR) + "/nn/interop_seq_io.safetensors");
  const Tensor y = (*m)(io.get("x"));
  const fs::path dir = fs::temp_directory_path() / "attnlab_nn_interop";
  fs::create_directories(dir);
  save_module((dir / "module.safetensors").string(), *m, {{"arch", "Linear(4,8)-ReLU-Linear(8,2)"}});
  save_tensors((dir / "expected.safetensors").string(), {{"y", y}});
  const LoadedTensors back = load_tensors((dir / "module.safetensors").string());
  std::vector<std::string> names;
  for (const auto& [n, t] : back.tensors) names.push_back(n);
  CHECK(names == std::vector<std::string>{"0.bias", "0.weight", "2.bias", "2.weight"});
}
