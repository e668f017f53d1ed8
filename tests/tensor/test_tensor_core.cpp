// Tensor storage, views, creation, conversion, printing and the memory tracker.
#include <doctest/doctest.h>

#include "kernels/cuda/runtime.h"
#include "tensor/creation.h"
#include "tensor/memory.h"
#include "tensor/ops.h"
#include "test_util.h"

using namespace attnlab;
using testing::check_close;
using testing::check_error;

TEST_CASE("creation: zeros/ones/full/arange/linspace/from_vector") {
  check_close(zeros({2, 2}), {0, 0, 0, 0});
  check_close(full({3}, 2.5), {2.5, 2.5, 2.5});
  check_close(arange(5), {0, 1, 2, 3, 4});
  CHECK(arange(5).dtype() == DType::i64);
  check_close(arange(1, 2, 0.25, DType::f64), {1, 1.25, 1.5, 1.75});
  check_close(linspace(0, 1, 5), {0, 0.25, 0.5, 0.75, 1});
  const Tensor t = tensor({{1, 2, 3}, {4, 5, 6}});
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.strides() == Strides{3, 1});
  CHECK(t.is_contiguous());
  CHECK(scalar_tensor(3).item<double>() == 3);
  check_error([] { tensor({{1, 2}, {3}}); }, {"ragged"});
  check_error([&] { t.item<float>(); }, {"item", "[2, 3]", "6 elements"});
}

TEST_CASE("random: seeded generators are reproducible, moments are right") {
  Generator g1(42), g2(42), g3(43);
  const auto a = randn({1000}, DType::f64, &g1).to_vector<double>();
  const auto b = randn({1000}, DType::f64, &g2).to_vector<double>();
  const auto c = randn({1000}, DType::f64, &g3).to_vector<double>();
  CHECK(a == b);
  CHECK(a != c);
  Generator g(7);
  const Tensor big = randn({20000}, DType::f64, &g);
  CHECK(ops::mean(big).item<double>() == doctest::Approx(0).epsilon(0.03).scale(1));
  CHECK(ops::std(big).item<double>() == doctest::Approx(1).epsilon(0.03));
  const Tensor u = uniform({20000}, -1, 3, DType::f64, &g);
  CHECK(ops::amin(u).item<double>() >= -1);
  CHECK(ops::amax(u).item<double>() < 3);
  CHECK(ops::mean(u).item<double>() == doctest::Approx(1).epsilon(0.03));
  // state save/restore resumes the exact sequence
  Generator s(9);
  s.normal();
  const auto st = s.state();
  const double next = s.normal();
  s.normal();
  s.set_state(st);
  CHECK(s.normal() == next);
}

TEST_CASE("views share storage and have the right strides") {
  const Tensor t = ops::reshape(arange(24, DType::f32), {2, 3, 4});
  const Tensor p = ops::permute(t, {2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Strides{1, 12, 4});
  CHECK(!p.is_contiguous());
  CHECK(p.storage() == t.storage());
  check_close(ops::contiguous(ops::transpose(ops::reshape(arange(6, DType::f32), {2, 3}), 0, 1)), {0, 3, 1, 4, 2, 5});
  // narrow / slice / select
  const Tensor n = ops::narrow(t, 2, 1, 2);
  CHECK(n.shape() == Shape{2, 3, 2});
  CHECK(n.offset() == 1);
  check_close(ops::select(ops::select(t, 0, 1), 0, 2), {20, 21, 22, 23});
  check_close(ops::slice(arange(10, DType::f32), 0, 1, 8, 3), {1, 4, 7});
  check_close(ops::slice(arange(10, DType::f32), 0, -3, 10), {7, 8, 9});
  // expand: stride 0, no copy
  const Tensor e = ops::expand(tensor({1, 2, 3}), {4, 3});
  CHECK(e.strides() == Strides{0, 1});
  check_close(ops::sum(e, {0}), {4, 8, 12});
  // squeeze / unsqueeze / flatten
  CHECK(ops::unsqueeze(tensor({1, 2}), 0).shape() == Shape{1, 2});
  CHECK(ops::unsqueeze(tensor({1, 2}), -1).shape() == Shape{2, 1});
  CHECK(ops::squeeze(zeros({1, 3, 1})).shape() == Shape{3});
  CHECK(ops::squeeze(zeros({1, 3, 1}), 0).shape() == Shape{3, 1});
  CHECK(ops::flatten(t, 1).shape() == Shape{2, 12});
  // view vs reshape: a transposed tensor cannot be viewed flat, but reshape copies
  const Tensor tr = ops::transpose(ops::reshape(arange(6, DType::f32), {2, 3}), 0, 1);
  check_error([&] { ops::view(tr, {6}); }, {"view", "without a copy"});
  const Tensor r = ops::reshape(tr, {6});
  CHECK(r.storage() != tr.storage());
  check_close(r, {0, 3, 1, 4, 2, 5});
  // a view that splits a dim keeps sharing storage
  const Tensor v = ops::view(ops::narrow(t, 0, 1, 1), {3, 2, 2});
  CHECK(v.storage() == t.storage());
  check_close(ops::select(ops::select(v, 0, 0), 0, 1), {14, 15});
  CHECK(ops::reshape(t, {-1, 4}).shape() == Shape{6, 4});
  check_error([&] { ops::reshape(t, {5, -1}); }, {"reshape", "[5, -1]", "24"});
}

TEST_CASE("view errors name the op and the shapes") {
  const Tensor t = zeros({2, 3});
  check_error([&] { ops::permute(t, {0}); }, {"permute", "f32[2, 3]"});
  check_error([&] { ops::narrow(t, 1, 2, 2); }, {"narrow", "[2, 4)", "size 3"});
  check_error([&] { ops::expand(t, {2, 4}); }, {"expand", "[2, 4]"});
  check_error([&] { ops::select(t, 2, 0); }, {"select", "dim 2"});
  check_error([&] { ops::transpose(t, 0, 5); }, {"transpose", "dim 5"});
}

TEST_CASE("dtype conversion, including round-to-nearest-even bf16/f16") {
  const Tensor x = tensor({1.0, 1.0 + 1.0 / 256, 1.0 + 3.0 / 256, -2.5, 65504.0}, DType::f64);
  check_close(ops::to_dtype(x, DType::bf16), {1.0, 1.0, 1.0 + 1.0 / 64, -2.5, 65536.0});
  check_close(ops::to_dtype(x, DType::f16), {1.0, 1.00390625, 1.01171875, -2.5, 65504.0});
  check_close(ops::to_dtype(tensor({1.7, -1.7, 300}), DType::i32), {1, -1, 300});
  CHECK(ops::to_dtype(tensor({1.0}), DType::f32).dtype() == DType::f32);
  // arithmetic on bf16 computes in f32 and rounds back
  const Tensor h = ops::to_dtype(tensor({1, 2, 3}), DType::bf16);
  const Tensor s = ops::add(h, h);
  CHECK(s.dtype() == DType::bf16);
  check_close(s, {2, 4, 6});
  for (auto dt : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::i8, DType::u8})
    CHECK(dtype_from_name(dtype_name(dt)) == dt);
  check_error([] { dtype_from_name("f8"); }, {"unknown dtype", "f8"});
}

TEST_CASE("memory tracker counts live bytes, peak and allocations") {
  memory::reset_peak();
  const auto before = memory::stats();
  {
    Tensor a = zeros({1000}, DType::f32);  // 4000 bytes
    Tensor b = zeros({500}, DType::f64);   // 4000 bytes
    const auto during = memory::stats();
    CHECK(during.bytes_live - before.bytes_live == 8000);
    CHECK(during.allocations - before.allocations >= 2);
  }
  const auto after = memory::stats();
  CHECK(after.bytes_live == before.bytes_live);
  CHECK(after.bytes_peak - before.bytes_live >= 8000);
  memory::reset_peak();
  CHECK(memory::stats().bytes_peak == memory::stats().bytes_live);
  CHECK(memory::stats().allocations == 0);
  // views allocate nothing
  Tensor base = zeros({100, 100});
  memory::reset_peak();
  Tensor v = ops::transpose(ops::narrow(base, 0, 10, 50), 0, 1);
  CHECK(memory::stats().allocations == 0);
}

TEST_CASE("printing is readable and summarized when large") {
  const std::string s = tensor({{1, 2}, {3, 4}}).str();
  CHECK(s.find("[[1.0000, 2.0000],") != std::string::npos);
  CHECK(s.find("shape=[2, 2]") != std::string::npos);
  const std::string big = zeros({2000}).str();
  CHECK(big.find("...") != std::string::npos);
  CHECK(big.size() < 200);
  CHECK(arange(3).str().find("[0, 1, 2]") != std::string::npos);
}

TEST_CASE("undefined tensors and device errors") {
  Tensor u;
  CHECK(!u.defined());
  check_error([&] { (void)u.shape(); }, {"undefined"});
  if (kernels::cuda::device_count() == 0)  // more in test_device_errors.cpp
    check_error([] { Tensor::empty({2}, DType::f32, Device{DeviceType::cuda, 0}); }, {"cuda:0", "no usable GPU"});
  check_error([] { zeros({2, 2}).data<double>(); }, {"data<f64>", "f32"});
}
