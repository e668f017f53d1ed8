// The CUDA runtime as the rest of attnlab sees it: plain C++ (no CUDA headers), so tensor/ and the
// tests compile with the host compiler. In a build without CUDA every function exists: device_count()
// is 0 and the others throw an Error that says so.
//
// Execution model (as llm.c and PyTorch's default): one stream per device; every kernel and copy is
// queued on it, so ops are ordered without events. Host code waits only at explicit synchronisation
// points: copies to the host, synchronize(), and freeing memory back to the driver.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace attnlab::kernels::cuda {

#ifdef ATTNLAB_WITH_CUDA
inline constexpr bool kBuilt = true;
#else
inline constexpr bool kBuilt = false;
#endif

// Number of usable GPUs; 0 when the build has no CUDA, there is no driver, or no device. Never throws.
int device_count();
// Why device_count() is 0 ("built without CUDA", "cudaErrorNoDevice (no CUDA-capable device...)"),
// or "" when a device is present.
std::string unavailable_reason();
// Throws unless `device` is a valid index; makes it current on this thread.
void set_device(int device);
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)".
std::string device_name(int device);
int compute_capability(int device);  // 90 for sm_90
// Blocks until all queued work on the device's stream is done; reports asynchronous kernel faults.
void synchronize(int device);

// ---- caching allocator ------------------------------------------------------------------------------
// Freed blocks are kept per (device, rounded size) and handed out again, so a training step reaches a
// steady state with no cudaMalloc/cudaFree (both synchronize the device). When cudaMalloc fails the
// cache is released and the allocation retried once before an out-of-memory Error is thrown.
void* device_alloc(size_t nbytes, int device);
void device_free(void* p, size_t nbytes, int device);
struct AllocatorStats {
  int64_t bytes_reserved = 0;  // held from the driver: in use + cached
  int64_t bytes_cached = 0;    // free blocks kept for reuse
  int64_t driver_allocs = 0;   // cudaMalloc calls so far
  int64_t cache_hits = 0;      // allocations served from the cache
};
AllocatorStats allocator_stats(int device);
// Returns the cached (free) blocks to the driver (torch.cuda.empty_cache()).
void empty_cache(int device);

// ---- copies (all on the device's stream) -------------------------------------------------------------
// Host→device through pinned staging buffers; returns when `src` may be reused.
void copy_to_device(void* dst, const void* src, size_t nbytes, int device);
// Device→host; a synchronisation point: returns when the bytes are in `dst`.
void copy_to_host(void* dst, const void* src, size_t nbytes, int device);
// Device→device (same device), queued.
void copy_device(void* dst, const void* src, size_t nbytes, int device);
void memset_zero(void* dst, size_t nbytes, int device);

}  // namespace attnlab::kernels::cuda
