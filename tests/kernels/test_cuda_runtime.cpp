// The CUDA runtime's behaviour that holds on every machine: with no GPU (or a build without CUDA) it
// reports zero devices and a reason, and every device call fails with a clear Error instead of crashing.
#include <doctest/doctest.h>

#include "kernels/cuda/runtime.h"
#include "test_util.h"

using namespace attnlab;
namespace cuda = attnlab::kernels::cuda;

TEST_CASE("cuda runtime: device_count never throws; a missing device is a clear error") {
  const int n = cuda::device_count();
  CHECK(n >= 0);
  if (n == 0) {
    CHECK(!cuda::unavailable_reason().empty());
    testing::check_error([] { cuda::set_device(0); }, {"CUDA"});
    testing::check_error([] { cuda::device_alloc(16, 0); }, {"CUDA"});
  } else {
    testing::check_error([n] { cuda::set_device(n); }, {"cuda:", "does not exist"});
  }
}
