// The KV-cache interface attention layers decode through, and the contiguous cache.
//
// Incremental decoding: for each layer, the new positions' K/V ([B, T_new, Hkv, D]) are appended,
// then attention reads every cached position without re-projecting old ones. The cache knows how many
// positions it holds, which is the position offset for the new tokens (RoPE, causal alignment).
//
// Other cache types (paged, quantized, selective, prefix) implement the same interface.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace attnlab::nn {

class KVCache {
 public:
  virtual ~KVCache() = default;
  virtual int64_t num_layers() const = 0;
  // Positions held for `layer` (equal across layers between full forward passes).
  virtual int64_t length(int64_t layer) const = 0;
  // Appends k, v [B, T_new, Hkv, D] to `layer`.
  virtual void append(int64_t layer, const Tensor& k, const Tensor& v) = 0;
  // All cached K and V of `layer`, [B, length, Hkv, D] (views where the layout allows).
  virtual std::pair<Tensor, Tensor> get(int64_t layer) const = 0;
  virtual void clear() = 0;
  virtual int64_t bytes_used() const = 0;      // bytes holding cached positions
  virtual int64_t bytes_reserved() const = 0;  // bytes allocated
};

// Preallocated per layer [B, max_len, Hkv, D] for K and V: append writes into the next slots (no
// reallocation per step), get returns a narrow view of the filled prefix (no copy).
class ContiguousKVCache : public KVCache {
 public:
  ContiguousKVCache(int64_t num_layers, int64_t batch, int64_t max_len, int64_t kv_heads, int64_t head_dim,
                    DType dtype = DType::f32);
  int64_t num_layers() const override { return int64_t(k_.size()); }
  int64_t length(int64_t layer) const override;
  void append(int64_t layer, const Tensor& k, const Tensor& v) override;
  std::pair<Tensor, Tensor> get(int64_t layer) const override;
  void clear() override;
  int64_t bytes_used() const override;
  int64_t bytes_reserved() const override;
  int64_t max_len() const { return max_len_; }

 private:
  int64_t batch_, max_len_, kv_heads_, head_dim_;
  DType dtype_;
  std::vector<Tensor> k_, v_;
  std::vector<int64_t> len_;
};

}  // namespace attnlab::nn
