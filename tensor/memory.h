// Per-device memory tracker: every Storage allocation goes through it, so tests and benchmarks can read
// bytes live, the peak, and the allocation count (e.g. "flash attention never allocates the S×S matrix").
#pragma once
#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace attnlab {

struct MemoryStats {
  int64_t bytes_live = 0;   // currently allocated
  int64_t bytes_peak = 0;   // max of bytes_live since the last reset_peak()
  int64_t allocations = 0;  // number of allocations since the last reset_peak()
};

namespace memory {
MemoryStats stats(Device d = kCPU);
// Sets the peak to the current live bytes and zeroes the allocation count.
void reset_peak(Device d = kCPU);
// Aligned (64-byte) host allocation, tracked. Throws attnlab::Error when out of memory.
void* cpu_alloc(size_t nbytes);
void cpu_free(void* p, size_t nbytes);
// Used by the CUDA allocator to report its own numbers to the same tracker.
void record_alloc(Device d, size_t nbytes);
void record_free(Device d, size_t nbytes);
}  // namespace memory

}  // namespace attnlab
