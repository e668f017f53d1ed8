// The differentiable ops of nn/ (attention in every backend, RoPE, Linear, embedding, dropout, losses),
// forward and backward on the test device cpu:1 (tensor/dtype.h): results identical to the cpu:0 run,
// every gradient created on the device. The GPU run of the same table: tests/nn/cuda/test_grads_cuda.cpp.
#include "tests/nn/nn_grad_cases.h"

using namespace attnlab;
using namespace attnlab::testing;

TEST_CASE("every nn op, forward and backward, on the test device cpu:1 equals the cpu:0 run") {
  for_each_grad_case(nn_grad_cases(), {kTestDevice});
}
