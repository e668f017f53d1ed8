// Every differentiable op's forward and backward on cuda:0 (grad_fixture.h): the output and every input
// gradient against the CPU f32 oracle of the same dtype-rounded inputs, in every dtype the GPU has, all
// of them on the GPU. Skipped (exit 77) without a GPU (cuda_main.cpp). The GPU-free run of the same
// table on the test device: tests/autograd/test_device_grads.cpp.
#include "tests/autograd/grad_cases.h"

using namespace attnlab;
using namespace attnlab::testing;

TEST_CASE("every autograd op, forward and backward, on cuda:0 against the CPU f32 oracle") {
  for_each_grad_case(autograd_grad_cases(), {Device{DeviceType::cuda, 0}});
}
