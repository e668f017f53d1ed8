#include "tensor/memory.h"

#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <mutex>

#include "kernels/error.h"

namespace attnlab::memory {

namespace {
struct Tracker {
  std::mutex mu;
  MemoryStats s;
};
Tracker& tracker(Device d) {
  static Tracker cpu, cuda[8];
  return d.type == DeviceType::cpu ? cpu : cuda[d.index & 7];
}
}  // namespace

void record_alloc(Device d, size_t nbytes) {
  Tracker& t = tracker(d);
  std::lock_guard<std::mutex> lock(t.mu);
  t.s.bytes_live += int64_t(nbytes);
  t.s.allocations += 1;
  if (t.s.bytes_live > t.s.bytes_peak) t.s.bytes_peak = t.s.bytes_live;
}

void record_free(Device d, size_t nbytes) {
  Tracker& t = tracker(d);
  std::lock_guard<std::mutex> lock(t.mu);
  t.s.bytes_live -= int64_t(nbytes);
}

MemoryStats stats(Device d) {
  Tracker& t = tracker(d);
  std::lock_guard<std::mutex> lock(t.mu);
  return t.s;
}

void reset_peak(Device d) {
  Tracker& t = tracker(d);
  std::lock_guard<std::mutex> lock(t.mu);
  t.s.bytes_peak = t.s.bytes_live;
  t.s.allocations = 0;
}

namespace {
// glibc serves blocks above 128 KiB with fresh mmap pages and returns them on free, so every tensor of
// that size would be page-faulted (and zeroed by the kernel) again on each allocation — a few percent
// of a 2048² matmul. Keeping freed memory in the heap lets the next same-sized tensor reuse warm pages,
// the host-side equivalent of a caching allocator.
const bool heap_reuse_configured = [] {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  return true;
}();
}  // namespace

void* cpu_alloc(size_t nbytes) {
  (void)heap_reuse_configured;
  const size_t rounded = (nbytes + 63) / 64 * 64;
  void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
  ATTNLAB_CHECK(p || rounded == 0, "cpu_alloc: out of memory allocating ", nbytes, " bytes");
  record_alloc(kCPU, nbytes);
  return p;
}

void cpu_free(void* p, size_t nbytes) {
  std::free(p);
  record_free(kCPU, nbytes);
}

}  // namespace attnlab::memory
