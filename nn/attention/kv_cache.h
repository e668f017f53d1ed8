// The KV-cache interface attention layers decode through, and the contiguous cache (with its
// sliding-window ring-buffer mode). The other caches implement the same interface:
//   paged_kv_cache.h      block pool + block tables, fork with copy-on-write (vLLM)
//   quantized_kv_cache.h  int8 / int4 / fp8 codes with f16 scales, KIVI, a full-precision window
//   selective_kv_cache.h  bounded size, eviction by attention received / recency / entropy, sinks
//   prefix_cache.h        chained block hashes over a paged pool, LRU under a byte budget
// docs/kv_cache.md explains each, with the byte formulas and where we differ from the seed.
//
// Incremental decoding, per layer: append the new positions' K/V ([B, T_new, Hkv, D]), then attend:
// the new positions' queries ([B, T_new, H, D]) against every held key, read straight from the cache
// (kernels/cpu/decode_attention.h) — old positions are never re-projected, nothing is gathered.
//
// Positions. position(layer) counts the positions appended so far — the absolute position of the next
// token, which RoPE and learned position embeddings need. length(layer) counts the positions held,
// which is smaller once a sliding window or a selective cache has dropped old ones. Attention of the
// new queries is causal by position (the query at position p sees held keys at positions <= p).
//
// Caches are for inference: attend() refuses inputs that require grad while grad mode is on.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/decode_attention.h"
#include "tensor/tensor.h"

namespace attnlab::nn {

struct CacheAttentionOptions {
  double scale = 0.0;           // 0 means 1/sqrt(D)
  bool causal = true;           // false: the new queries also see each other's later positions
  bool return_weights = false;  // the probabilities over held keys, [B, H, T_new, length]
};

struct CacheAttentionResult {
  Tensor out;      // [B, T_new, H, D]
  Tensor weights;  // [B, H, T_new, length] when asked
};

class KVCache {
 public:
  virtual ~KVCache() = default;
  virtual int64_t num_layers() const = 0;
  virtual int64_t batch() const = 0;
  // Positions appended to `layer` for each batch row (rows of a paged batch may differ).
  virtual std::vector<int64_t> positions(int64_t layer) const = 0;
  // The position of the next token when every row has the same one; throws for a ragged batch.
  int64_t position(int64_t layer) const;
  // Positions held for `layer` (the longest row's count for a ragged batch).
  virtual int64_t length(int64_t layer) const = 0;
  // Appends k, v [B, T_new, Hkv, D] to `layer`.
  virtual void append(int64_t layer, const Tensor& k, const Tensor& v) = 0;
  // Attention of q [B, T_new, H, D] — the queries of the T_new positions just appended — over the
  // held keys of `layer`.
  virtual CacheAttentionResult attend(int64_t layer, const Tensor& q, const CacheAttentionOptions& opt) = 0;
  // Forgets every position (storage stays allocated).
  virtual void clear() = 0;
  virtual int64_t bytes_used() const = 0;      // bytes holding cached positions (codes, scales, windows)
  virtual int64_t bytes_reserved() const = 0;  // bytes allocated for K/V storage
  virtual std::string name() const = 0;        // e.g. "contiguous f32", "int8 (window 32)"

 protected:
  // `layer` when it is in [0, num_layers()), else an error naming the cache.
  int64_t checked_layer(int64_t layer) const;
};

// Preallocated per layer [B, max_len, Hkv, D] for K and V in f32, f64, bf16 or f16 (bf16/f16 caches
// take and return f32). append() writes into the next slots — no reallocation per step. attend() runs
// the decode kernel, or for a prefill of kFlashPrefill or more positions (f32/f64, no window, no
// weights asked) the flash kernel over views of the buffer.
//
// window = 0: holds up to max_len positions; appending beyond is an error.
// window > 0: sliding-window attention (Mistral's rolling buffer): the query at position p sees the
//   keys at positions p - window + 1 .. p. The buffer is a ring of max_len >= window slots, so it runs
//   forever; one append may add at most max_len - window + 1 positions (every new query's window must
//   still be held). With RoPE, decoding with the ring equals a full forward with the same sliding-window
//   mask exactly (attention depends on relative positions only); docs/kv_cache.md says why learned
//   absolute positions cannot do that, and why a multi-layer model's ring is not "recompute the last
//   window from scratch".
class ContiguousKVCache : public KVCache {
 public:
  ContiguousKVCache(int64_t num_layers, int64_t batch, int64_t max_len, int64_t kv_heads, int64_t head_dim,
                    DType dtype = DType::f32, int64_t window = 0);
  int64_t num_layers() const override { return int64_t(k_.size()); }
  int64_t batch() const override { return batch_; }
  std::vector<int64_t> positions(int64_t layer) const override;
  int64_t length(int64_t layer) const override;
  void append(int64_t layer, const Tensor& k, const Tensor& v) override;
  CacheAttentionResult attend(int64_t layer, const Tensor& q, const CacheAttentionOptions& opt) override;
  void clear() override;
  int64_t bytes_used() const override;
  int64_t bytes_reserved() const override;
  std::string name() const override;

  // The held K and V of `layer` in position order, [B, length, Hkv, D] in the storage dtype: views of
  // the buffer, or a copy when the ring has wrapped.
  std::pair<Tensor, Tensor> get(int64_t layer) const;
  int64_t max_len() const { return max_len_; }
  int64_t window() const { return window_; }
  DType dtype() const { return dtype_; }

  // Without tensors, for the fused decode path (nn/attention/block_decoder.h), batch 1, f32 compute
  // (f32, bf16 or f16 storage): append one position's k, v [Hkv * D]; then its causal attention
  // q [H * D] -> out [H * D] over the held keys — what append() and attend() give for T_new = 1.
  void append_row(int64_t layer, const float* k, const float* v);
  void attend_row(int64_t layer, const float* q, int64_t H, float* out) const;
  static constexpr int64_t kFlashPrefill = 16;

 private:
  // The decode kernel's view of `layer` (compute type T, storage S); lengths and positions_b are [B].
  template <class T, class S>
  kernels::DenseKVReader<T, S> reader(int64_t layer, const int64_t* lengths, const int64_t* positions_b) const;

  int64_t batch_, max_len_, kv_heads_, head_dim_, window_;
  DType dtype_;
  std::vector<Tensor> k_, v_;
  std::vector<int64_t> pos_;  // positions appended per layer
};

}  // namespace attnlab::nn
