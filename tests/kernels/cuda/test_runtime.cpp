// The CUDA runtime on a GPU: caching allocator, staged copies, stream ordering, errors.
#include <doctest/doctest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "kernels/cuda/runtime.h"
#include "test_util.h"

using namespace attnlab;
namespace cuda = attnlab::kernels::cuda;

TEST_CASE("cuda runtime: host->device->device->host round trip larger than the staging buffers") {
  const size_t n = (size_t(19) << 20) + 13;  // > 2 staging buffers, odd size
  std::vector<uint8_t> src(n), back(n, 0);
  for (size_t i = 0; i < n; ++i) src[i] = uint8_t(i * 131 + (i >> 11));
  void* a = cuda::device_alloc(n, 0);
  void* b = cuda::device_alloc(n, 0);
  cuda::copy_to_device(a, src.data(), n, 0);
  cuda::copy_device(b, a, n, 0);
  cuda::copy_to_host(back.data(), b, n, 0);
  CHECK(back == src);
  cuda::memset_zero(b, n, 0);
  cuda::copy_to_host(back.data(), b, n, 0);
  CHECK(std::accumulate(back.begin(), back.end(), size_t(0)) == 0);
  cuda::device_free(a, n, 0);
  cuda::device_free(b, n, 0);
}

TEST_CASE("cuda runtime: the caching allocator reuses freed blocks without calling the driver") {
  cuda::empty_cache(0);
  const auto before = cuda::allocator_stats(0);
  void* p = cuda::device_alloc(3000, 0);
  cuda::device_free(p, 3000, 0);
  void* q = cuda::device_alloc(2900, 0);  // same 512-byte class
  CHECK(q == p);
  const auto after = cuda::allocator_stats(0);
  CHECK(after.driver_allocs == before.driver_allocs + 1);
  CHECK(after.cache_hits == before.cache_hits + 1);
  cuda::device_free(q, 2900, 0);
  cuda::empty_cache(0);
  CHECK(cuda::allocator_stats(0).bytes_cached == 0);
}

TEST_CASE("cuda runtime: out of memory and bad devices are Errors that say what happened") {
  testing::check_error([] { cuda::device_alloc(size_t(1) << 50, 0); }, {"out of memory", "cuda:0"});
  testing::check_error([] { cuda::set_device(cuda::device_count()); }, {"does not exist"});
  cuda::synchronize(0);  // the failed allocation left no sticky error behind
}
