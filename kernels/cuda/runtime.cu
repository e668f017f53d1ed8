#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/runtime.h"

namespace attnlab::kernels::cuda {

namespace {
constexpr int kMaxDevices = 16;

struct DeviceState {
  std::once_flag init;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  // caching allocator
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;  // rounded size -> block
  AllocatorStats stats;
};

DeviceState& state(int device) {
  static DeviceState states[kMaxDevices];
  return states[device];
}

// What cudaGetDeviceCount said, asked once (it is slow without a driver).
struct Probe {
  int count = 0;
  std::string reason;
};
const Probe& probe() {
  static const Probe p = [] {
    Probe r;
    const cudaError_t e = cudaGetDeviceCount(&r.count);
    if (e != cudaSuccess) {
      r.count = 0;
      r.reason = cat(cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
      cudaGetLastError();  // clear the sticky error so later calls start clean
    } else if (r.count == 0) {
      r.reason = "no CUDA device found";
    }
    r.count = std::min(r.count, kMaxDevices);
    return r;
  }();
  return p;
}

DeviceState& ready(int device) {
  set_device(device);
  DeviceState& s = state(device);
  std::call_once(s.init, [&] {
    ATTNLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    ATTNLAB_CUBLAS_CHECK(cublasCreate(&s.cublas));
    ATTNLAB_CUBLAS_CHECK(cublasSetStream(s.cublas, s.stream));
  });
  return s;
}

// Small blocks round to 512 B, large ones to 2 MiB, so a block is reused by tensors of nearby sizes.
size_t round_size(size_t n) {
  constexpr size_t kSmall = 512, kLarge = size_t(2) << 20;
  if (n < (size_t(1) << 20)) return std::max<size_t>(kSmall, (n + kSmall - 1) / kSmall * kSmall);
  return (n + kLarge - 1) / kLarge * kLarge;
}

void release_cache(DeviceState& s) {  // caller holds s.mu
  for (auto& [size, p] : s.free_blocks) {
    ATTNLAB_CUDA_CHECK(cudaFree(p));
    s.stats.bytes_reserved -= int64_t(size);
    s.stats.bytes_cached -= int64_t(size);
  }
  s.free_blocks.clear();
}
}  // namespace

int device_count() { return probe().count; }

std::string unavailable_reason() { return probe().reason; }

void set_device(int device) {
  ATTNLAB_CHECK(device_count() > 0, "CUDA: no usable GPU: ", unavailable_reason());
  ATTNLAB_CHECK(device >= 0 && device < device_count(), "CUDA: device cuda:", device,
                " does not exist (", device_count(), " device(s) present)");
  ATTNLAB_CUDA_CHECK(cudaSetDevice(device));
}

cudaStream_t current_stream(int device) { return ready(device).stream; }
cublasHandle_t cublas_handle(int device) { return ready(device).cublas; }

std::string device_name(int device) {
  set_device(device);
  cudaDeviceProp p{};
  ATTNLAB_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  return cat(p.name, " (sm_", p.major, p.minor, ", ", p.multiProcessorCount, " SMs, ",
             double(p.totalGlobalMem) / double(1 << 30), " GiB)");
}

int compute_capability(int device) {
  set_device(device);
  int major = 0, minor = 0;
  ATTNLAB_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  ATTNLAB_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return major * 10 + minor;
}

void synchronize(int device) { ATTNLAB_CUDA_CHECK(cudaStreamSynchronize(ready(device).stream)); }

void* device_alloc(size_t nbytes, int device) {
  if (nbytes == 0) return nullptr;
  DeviceState& s = ready(device);
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(s.mu);
  if (auto it = s.free_blocks.find(size); it != s.free_blocks.end()) {
    void* p = it->second;
    s.free_blocks.erase(it);
    s.stats.bytes_cached -= int64_t(size);
    s.stats.cache_hits += 1;
    return p;
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  if (e == cudaErrorMemoryAllocation && !s.free_blocks.empty()) {
    cudaGetLastError();
    ATTNLAB_CUDA_CHECK(cudaStreamSynchronize(s.stream));
    release_cache(s);
    e = cudaMalloc(&p, size);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw Error(cat("CUDA out of memory on cuda:", device, ": allocating ", nbytes, " bytes failed (",
                    cudaGetErrorString(e), "); attnlab holds ", s.stats.bytes_reserved,
                    " bytes, the device has ", free_b, " of ", total_b, " bytes free"));
  }
  s.stats.bytes_reserved += int64_t(size);
  s.stats.driver_allocs += 1;
  return p;
}

void device_free(void* p, size_t nbytes, int device) {
  if (!p) return;
  // Work already queued on the stream may still read this block; the next user of the block is queued
  // on the same stream, after it, so handing it out again needs no synchronisation.
  DeviceState& s = state(device);
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(s.mu);
  s.free_blocks.emplace(size, p);
  s.stats.bytes_cached += int64_t(size);
}

AllocatorStats allocator_stats(int device) {
  DeviceState& s = ready(device);
  std::lock_guard<std::mutex> lock(s.mu);
  return s.stats;
}

void empty_cache(int device) {
  DeviceState& s = ready(device);
  ATTNLAB_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  std::lock_guard<std::mutex> lock(s.mu);
  release_cache(s);
}

namespace {
// Two pinned buffers, so filling one overlaps the transfer of the other.
constexpr size_t kStagingBytes = size_t(8) << 20;
struct Staging {
  std::once_flag init;
  std::mutex mu;
  void* buf[2] = {nullptr, nullptr};
  cudaEvent_t done[2] = {nullptr, nullptr};
};
Staging& staging(int device) {
  static Staging st[kMaxDevices];
  Staging& s = st[device];
  std::call_once(s.init, [&] {
    for (int i = 0; i < 2; ++i) {
      ATTNLAB_CUDA_CHECK(cudaMallocHost(&s.buf[i], kStagingBytes));
      ATTNLAB_CUDA_CHECK(cudaEventCreateWithFlags(&s.done[i], cudaEventDisableTiming));
    }
  });
  return s;
}
}  // namespace

void copy_to_device(void* dst, const void* src, size_t nbytes, int device) {
  if (nbytes == 0) return;
  cudaStream_t stream = ready(device).stream;
  Staging& st = staging(device);
  std::lock_guard<std::mutex> lock(st.mu);
  for (size_t off = 0, i = 0; off < nbytes; off += kStagingBytes, i ^= 1) {
    const size_t n = std::min(kStagingBytes, nbytes - off);
    ATTNLAB_CUDA_CHECK(cudaEventSynchronize(st.done[i]));  // the buffer's previous transfer is done
    std::memcpy(st.buf[i], static_cast<const char*>(src) + off, n);
    ATTNLAB_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off, st.buf[i], n,
                                       cudaMemcpyHostToDevice, stream));
    ATTNLAB_CUDA_CHECK(cudaEventRecord(st.done[i], stream));
  }
}

void copy_to_host(void* dst, const void* src, size_t nbytes, int device) {
  if (nbytes == 0) return;
  cudaStream_t stream = ready(device).stream;
  Staging& st = staging(device);
  std::lock_guard<std::mutex> lock(st.mu);
  for (size_t off = 0; off < nbytes; off += kStagingBytes) {
    const size_t n = std::min(kStagingBytes, nbytes - off);
    ATTNLAB_CUDA_CHECK(cudaMemcpyAsync(st.buf[0], static_cast<const char*>(src) + off, n,
                                       cudaMemcpyDeviceToHost, stream));
    ATTNLAB_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::memcpy(static_cast<char*>(dst) + off, st.buf[0], n);
  }
}

void copy_device(void* dst, const void* src, size_t nbytes, int device) {
  if (nbytes == 0) return;
  ATTNLAB_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, ready(device).stream));
}

void memset_zero(void* dst, size_t nbytes, int device) {
  if (nbytes == 0) return;
  ATTNLAB_CUDA_CHECK(cudaMemsetAsync(dst, 0, nbytes, ready(device).stream));
}

}  // namespace attnlab::kernels::cuda
