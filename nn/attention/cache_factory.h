// Caches by name, for the CLI, the streaming engine and the benchmarks — one place that knows every
// kind and its options.
//
//   contiguous | bf16 | f16           ContiguousKVCache in f32 / bf16 / f16 (window > 0: sliding ring)
//   sinks                             StreamingLLM: an f32 ContiguousKVCache attending the first `sinks`
//                                     positions and a ring of the last max_len - sinks (see kv_cache.h)
//   paged                             a PagedKVCache over its own pool (batch sequences, block_size)
//   int8 | int4 | fp8 [-kivi]         QuantizedKVCache (quant_window positions kept in f32)
//   selective-<strategy>              SelectiveKVCache: attention | recency | entropy | hybrid
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/attention/kv_cache.h"

namespace attnlab::nn {

struct CacheSpec {
  std::string kind = "contiguous";
  int64_t max_len = 512;       // positions held (the ring's slots with window > 0; selective: max size;
                               // sinks: positions attended, sinks + window)
  int64_t window = 0;          // contiguous kinds: sliding-window attention span
  int64_t block_size = 16;     // paged
  int64_t quant_window = 0;    // quantized: newest positions kept in f32
  int64_t sinks = 4;           // selective (never evicted), sinks (attention sinks kept)
  int64_t recent = 0;          // selective
  int64_t max_append = 0;      // selective, sinks: positions per append (0: max_len)
  double rope_base = 0;        // sinks: the model's RoPE base (0: keys carry no rotation, sinks stay put)
};

// Every kind name make_kv_cache accepts.
std::vector<std::string> cache_kinds();

std::unique_ptr<KVCache> make_kv_cache(const CacheSpec& spec, int64_t num_layers, int64_t batch, int64_t kv_heads,
                                       int64_t head_dim);

}  // namespace attnlab::nn
