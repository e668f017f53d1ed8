// The differentiable ops of nn/ on cuda:0 (tests/autograd/grad_fixture.h): the output and every input
// gradient against the CPU f32 oracle, in every dtype the GPU has, all of them on the GPU. Skipped (exit
// 77) without a GPU. The GPU-free run of the same table: tests/nn/test_device_grads.cpp.
#include "tests/nn/nn_grad_cases.h"

using namespace attnlab;
using namespace attnlab::testing;

TEST_CASE("every nn op, forward and backward, on cuda:0 against the CPU f32 oracle") {
  for_each_grad_case(nn_grad_cases(), {Device{DeviceType::cuda, 0}});
}
