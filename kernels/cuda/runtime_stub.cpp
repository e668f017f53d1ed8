// kernels/cuda/runtime.h in a build without CUDA (ATTNLAB_CUDA=OFF or no nvcc): no devices.
#include "kernels/cuda/runtime.h"

#include "kernels/error.h"

namespace attnlab::kernels::cuda {

namespace {
[[noreturn]] void unavailable() {
  throw Error("CUDA: attnlab was built without CUDA (configure with -DATTNLAB_CUDA=ON and nvcc present)");
}
}  // namespace

int device_count() { return 0; }
std::string unavailable_reason() { return "attnlab was built without CUDA"; }
void set_device(int) { unavailable(); }
std::string device_name(int) { unavailable(); }
int compute_capability(int) { unavailable(); }
void synchronize(int) { unavailable(); }
void* device_alloc(size_t, int) { unavailable(); }
void device_free(void*, size_t, int) { unavailable(); }
AllocatorStats allocator_stats(int) { unavailable(); }
void empty_cache(int) { unavailable(); }
void copy_to_device(void*, const void*, size_t, int) { unavailable(); }
void copy_to_host(void*, const void*, size_t, int) { unavailable(); }
void copy_device(void*, const void*, size_t, int) { unavailable(); }
void memset_zero(void*, size_t, int) { unavailable(); }

}  // namespace attnlab::kernels::cuda
