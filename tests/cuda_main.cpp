// main() of the CUDA test executables (tests/**/cuda/test_*.cpp): without a usable GPU the whole
// executable is skipped, with the reason, through ctest's SKIP_RETURN_CODE.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "kernels/cuda/runtime.h"

int main(int argc, char** argv) {
  namespace cuda = attnlab::kernels::cuda;
  if (cuda::device_count() == 0) {
    std::printf("SKIPPED: no usable GPU (%s)\n", cuda::unavailable_reason().c_str());
    return 77;
  }
  std::printf("running on cuda:0 = %s\n", cuda::device_name(0).c_str());
  doctest::Context context(argc, argv);
  return context.run();
}
