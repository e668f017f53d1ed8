// Device handling that needs no GPU: asking for a CUDA tensor where there is none fails with a clear
// Error, the CUDA tracker reads zero, devices print and compare. (The GPU side: cuda/test_ops_cuda.cpp.)
#include "test_util.h"

#include "kernels/cuda/runtime.h"
#include "tensor/creation.h"
#include "tensor/memory.h"
#include "tensor/ops.h"

using namespace attnlab;
using namespace attnlab::testing;

namespace {
const Device kCuda0{DeviceType::cuda, 0};
}

TEST_CASE("without a GPU, moving or allocating on cuda:0 throws an Error naming the device and the reason") {
  if (kernels::cuda::device_count() > 0) return;  // covered by the GPU tests
  const Tensor t = tensor({1, 2, 3});
  const std::string reason = kernels::cuda::unavailable_reason();
  REQUIRE(!reason.empty());
  check_error([&] { (void)ops::to_device(t, kCuda0); }, {"cuda:0", "no usable GPU", reason});
  check_error([&] { (void)t.to(kCuda0); }, {"cuda:0"});
  check_error([&] { (void)Tensor::empty({2, 3}, DType::bf16, kCuda0); }, {"cuda:0", "12 bytes"});
  check_error([&] { (void)zeros({4}, DType::f32, kCuda0); }, {"cuda:0"});
  check_error([&] { (void)empty({0}, DType::f32, kCuda0); }, {"cuda:0"});  // even 0 bytes
  CHECK(memory::stats(kCuda0).bytes_live == 0);
}

TEST_CASE("to_device to the same device is the tensor itself; creation defaults to the CPU") {
  const Tensor t = tensor({1, 2});
  CHECK(ops::to_device(t, kCPU).is_same(t));
  CHECK(t.to(kCPU).is_same(t));
  CHECK(!t.is_cuda());
  CHECK(zeros({2}).device() == kCPU);
  CHECK(zeros_like(t).device() == kCPU);
  CHECK(full({2}, 3.0, DType::f64, kCPU).to_vector<double>() == std::vector<double>{3, 3});
}

TEST_CASE("devices print and compare") {
  CHECK(kCPU.str() == "cpu");
  CHECK(kCuda0.str() == "cuda:0");
  CHECK(Device{DeviceType::cuda, 1}.str() == "cuda:1");
  CHECK(!(kCPU == kCuda0));
  check_same_device("add", tensor({1}), tensor({2}));  // same device: no throw
}

TEST_CASE("the CUDA tracker of a device without allocations reads zero") {
  const MemoryStats s = memory::stats(Device{DeviceType::cuda, 3});
  CHECK(s.bytes_live == 0);
  CHECK(s.allocations == 0);
}
