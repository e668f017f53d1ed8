// Every differentiable op's forward and backward on the test device cpu:1 (tensor/dtype.h), in every
// floating dtype the CPU has: results identical to the cpu:0 run, every gradient created on the device.
// A backward closure that makes a tensor on the default device (zeros(shape, dtype) without the
// gradient's device) throws here, as it would on a GPU. The GPU run of the same table:
// tests/autograd/cuda/test_grads_cuda.cpp.
#include "tests/autograd/grad_cases.h"

using namespace attnlab;
using namespace attnlab::testing;

TEST_CASE("every autograd op, forward and backward, on the test device cpu:1 equals the cpu:0 run") {
  for_each_grad_case(autograd_grad_cases(), {kTestDevice});
}

TEST_CASE("the backward engine names the op whose gradient is on the wrong device") {
  Tensor x = randn({2, 3}).to(kTestDevice).set_requires_grad();
  const Tensor y = record("forgets_the_device", ops::mul(x.detach(), x.detach()), {x},
                          [](const Tensor& g) { return Grads{ones(g.shape(), g.dtype())}; });
  check_error([&] { backward(sum(y)); },
              {"backward of forgets_the_device", "gradient for input 0", "f32[2, 3] on cpu", "input is on cpu:1"});
  // and the gradient passed to backward must be on the output's device
  const Tensor z = x * 2.0;
  check_error([&] { backward(z, ones({2, 3})); }, {"backward", "cpu:1", "different devices"});
}
