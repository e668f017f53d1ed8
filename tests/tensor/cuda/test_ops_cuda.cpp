// Every tensor op on cuda:0 through the per-device fixture (op_cases.h, CPU f32 oracle, dtype-scaled
// tolerances), plus what only a GPU can show: transfers, the memory tracker, cross-device errors,
// cuBLAS on larger shapes and the fused AdamW step. Skipped (exit 77) without a GPU (cuda_main.cpp).
#include <cmath>

#include "../index_error_cases.h"
#include "../op_cases.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/runtime.h"
#include "tensor/memory.h"

using namespace attnlab;
using namespace attnlab::testing;

namespace {
const Device kCuda0{DeviceType::cuda, 0};
}

TEST_CASE("every op case on cuda:0, every floating dtype, against the CPU f32 oracle") {
  for_each_case(op_cases(), {kCuda0});
}

TEST_CASE("to_device round trips every dtype, from contiguous and strided tensors") {
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::i8, DType::u8}) {
    INFO(dtype_name(t));
    const Tensor x = ops::to_dtype(arange(0, 24, 1, DType::f64), t);
    const Tensor v = ops::permute(ops::reshape(x, {2, 3, 4}), {2, 0, 1});
    const Tensor d = v.to(kCuda0);
    CHECK(d.is_cuda());
    CHECK(d.dtype() == t);
    CHECK(d.shape() == v.shape());
    CHECK(d.to_vector<double>() == v.to_vector<double>());
    CHECK(d.to(kCPU).to_vector<double>() == v.to_vector<double>());
  }
}

TEST_CASE("copy_ across devices converts dtypes and broadcasts; item and str read device tensors") {
  Tensor d = zeros({3, 4}, DType::bf16, kCuda0);
  ops::copy_(d, tensor({1, 2, 3, 4}));
  check_close(d, {1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4});
  Tensor h = zeros({4, 3}, DType::f64);
  ops::copy_(h, ops::transpose(d, 0, 1));
  check_close(h, {1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4});
  CHECK(ops::sum(d).item<double>() == 30);
  const std::string s = d.str();
  CHECK(s.find("device=cuda:0") != std::string::npos);
  CHECK(s.find("4.0000") != std::string::npos);
}

TEST_CASE("the memory tracker counts CUDA storage like CPU storage") {
  memory::reset_peak(kCuda0);
  const MemoryStats before = memory::stats(kCuda0);
  {
    const Tensor t = Tensor::empty({1000, 1000}, DType::f32, kCuda0);
    const MemoryStats during = memory::stats(kCuda0);
    CHECK(during.bytes_live - before.bytes_live == 4000000);
    CHECK(during.allocations == before.allocations + 1);
    CHECK(during.bytes_peak >= during.bytes_live);
  }
  CHECK(memory::stats(kCuda0).bytes_live == before.bytes_live);
  CHECK(memory::stats(kCPU).bytes_live >= 0);
  const auto a = kernels::cuda::allocator_stats(0);
  CHECK(a.bytes_reserved >= a.bytes_cached);
}

TEST_CASE("ops on tensors of different devices throw, naming the op, both tensors and both devices") {
  const Tensor c = tensor({1, 2, 3});
  const Tensor g = c.to(kCuda0);
  check_error([&] { (void)ops::add(c, g); }, {"add", "f32[3]", "cpu", "cuda:0"});
  check_error([&] { (void)ops::matmul(ops::reshape(c, {1, 3}), ops::reshape(g, {3, 1})); }, {"matmul", "cuda:0"});
  check_error([&] { (void)ops::cat({c, g}, 0); }, {"cat", "cpu", "cuda:0"});
  check_error([&] { (void)ops::where(ops::compare_scalar(ops::CompareOp::gt, g, 1), c, c); }, {"where", "cuda:0"});
  check_error([&] { ops::add_(g, c); }, {"add_", "cpu", "cuda:0"});
  check_error([&] { (void)ops::softmax_backward(c, ops::softmax(g, 0), 0); }, {"softmax_backward", "cuda:0"});
  // a 0-dim CPU tensor joins a CUDA op as a constant (as in PyTorch)
  check_close(ops::add(g, scalar_tensor(10)), {11, 12, 13});
  CHECK(ops::mul(scalar_tensor(2), g).is_cuda());
}

TEST_CASE("unimplemented dtypes and bad indices on cuda throw clear Errors") {
  const Tensor t = zeros({4, 3}, DType::bf16, kCuda0);
  const Tensor idx = from_vector_i64({0, 2, 1, 1}, {4, 1});
  check_error([&] { (void)ops::scatter_add(t, 1, idx, zeros({4, 1}, DType::bf16, kCuda0)); },
              {"scatter_add", "bf16", "not implemented on cuda:0"});
  check_index_errors(kCuda0);  // the first bad index and its position, index on the host or the GPU
  check_error([&] { (void)ops::unary(ops::UnaryOp::exp, zeros({2}, DType::i64, kCuda0)); }, {"unary", "i64"});
}

TEST_CASE("cuBLAS matmul on larger shapes: f32 and f64 tight, bf16/f16 within their rounding") {
  Generator gen(7);
  const Tensor a = randn({3, 257, 384}, DType::f32, &gen), b = randn({384, 129}, DType::f32, &gen);
  for (DType t : kFloatDTypes) {
    INFO(dtype_name(t));
    const Tensor ar = ops::to_dtype(ops::to_dtype(a, t), DType::f32), br = ops::to_dtype(ops::to_dtype(b, t), DType::f32);
    const Tensor oracle = ops::matmul(ar, br);  // same rounded inputs
    const Tensor got = ops::matmul(ops::to_dtype(a, t).to(kCuda0), ops::to_dtype(b, t).to(kCuda0));
    const double tol = dtype_tolerance(t) * 4;
    check_close(got, oracle.to_vector<double>(), tol * 20, tol);  // |values| ~ sqrt(384) = 20
  }
}

TEST_CASE("fused AdamW step matches the CPU formula over several steps") {
  const int64_t n = 1001;
  Generator gen(3);
  const std::vector<float> p0 = ops::to_dtype(randn({n}, DType::f32, &gen), DType::f32).to_vector<float>();
  std::vector<float> p = p0, m(size_t(n), 0), v(size_t(n), 0);
  const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1, scale = 0.5;
  Tensor dp = from_vector(std::vector<double>(p0.begin(), p0.end())).to(kCuda0);
  Tensor dm = zeros({n}, DType::f32, kCuda0), dv = zeros({n}, DType::f32, kCuda0);
  for (int step = 1; step <= 5; ++step) {
    const Tensor g = randn({n}, DType::f32, &gen);
    const auto gh = g.to_vector<float>();
    const Tensor dg = g.to(kCuda0);
    kernels::cuda::adamw_step(dp.data<float>(), dg.data<float>(), dm.data<float>(), dv.data<float>(), n, lr, b1, b2,
                              eps, wd, step, scale, 0);
    const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
    for (size_t i = 0; i < size_t(n); ++i) {
      const float gi = gh[i] * float(scale);
      p[i] *= float(1 - lr * wd);
      m[i] = m[i] * float(b1) + float(1 - b1) * gi;
      v[i] = v[i] * float(b2) + float(1 - b2) * gi * gi;
      p[i] += float(-lr / bc1) * (m[i] / (std::sqrt(v[i]) / float(std::sqrt(bc2)) + float(eps)));
    }
  }
  check_close(dp, std::vector<double>(p.begin(), p.end()), 1e-6, 1e-5);
  check_close(dm, std::vector<double>(m.begin(), m.end()), 1e-7, 1e-5);
}
