// The counter-based attention-dropout mask (kernels/cpu/attention_params.h describes its use): whether
// probability (b, h, i, j) is kept is a pure function of (seed, b, h, i, j), so a backward regenerates
// it instead of storing it. The hash functions also compile for the GPU kernels
// (kernels/cuda/flash_attention_common.cuh), so CPU and GPU drop exactly the same entries.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define ATTNLAB_HOST_DEVICE __host__ __device__
#else
#define ATTNLAB_HOST_DEVICE
#endif

namespace attnlab::kernels {

// SplitMix64's output function (Steele et al. 2014): a bijective 64-bit mixer with full avalanche.
ATTNLAB_HOST_DEVICE inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Key of one query row: hashing (seed, b, h, i) one index at a time keeps rows independent.
ATTNLAB_HOST_DEVICE inline uint64_t dropout_row_key(uint64_t seed, int64_t b, int64_t h, int64_t i) {
  uint64_t x = splitmix64(seed);
  x = splitmix64(x ^ uint64_t(b));
  x = splitmix64(x ^ uint64_t(h));
  return splitmix64(x ^ uint64_t(i));
}

// A 64-bit uniform draw u is dropped when u < p * 2^64 (exact for p a multiple of 2^-64).
inline uint64_t dropout_threshold(double p) {
  return p <= 0 ? 0 : uint64_t(std::ldexp(p, 64));  // p < 1 so the product is < 2^64
}

// Keep decision for key j of a row: the j-th output of a SplitMix64 stream seeded with the key.
ATTNLAB_HOST_DEVICE inline bool dropout_keep_in_row(uint64_t row_key, int64_t j, uint64_t threshold) {
  return splitmix64(row_key + uint64_t(j) * 0x9E3779B97F4A7C15ull) >= threshold;
}

// True when dropout keeps probability (b, h, i, j), h being the query head. Every attention path
// (reference, flash, tests) calls this, so they all drop exactly the same entries.
inline bool dropout_keep(uint64_t seed, int64_t b, int64_t h, int64_t i, int64_t j, double p) {
  return dropout_keep_in_row(dropout_row_key(seed, b, h, i), j, dropout_threshold(p));
}

}  // namespace attnlab::kernels
