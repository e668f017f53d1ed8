// The per-device op fixture on the CPU: every case of op_cases.h in f32, f64, bf16 and f16 against the
// f32 oracle, on cpu:0 and on the test device cpu:1 (tensor/dtype.h: the CPU kernels, but a device of
// its own to every device check, so an op that makes its result on the default device fails here).
// tests/tensor/cuda/test_ops_cuda.cpp runs the same table on a GPU.
#include "op_cases.h"

using namespace attnlab;
using namespace attnlab::testing;

TEST_CASE("every op case on the CPU and the test device cpu:1, every floating dtype, against the f32 oracle") {
  for_each_case(op_cases(), {kCPU, kTestDevice});
}
