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
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu/decode_attention.h"
#include "tensor/tensor.h"

namespace attnlab::nn {

class RotaryEmbedding;

struct CacheAttentionOptions {
  double scale = 0.0;           // 0 means 1/sqrt(D)
  bool causal = true;           // false: the new queries also see each other's later positions
  int64_t window = 0;           // > 0: sliding-window attention, the query at position p sees only the held
                                // keys at p - window + 1 .. p (a model trained with that mask); 0: a ring
                                // cache's own window, else every held key
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
//   window from scratch". An attend() with opt.window > 0 narrows the window further (never widens it:
//   that is an error, the ring no longer holds those keys).
// sinks > 0 (with window > 0): StreamingLLM's cache (Xiao et al. 2023) for models trained with full
//   causal attention on windows of sinks + window positions. The first `sinks` positions are kept for
//   good in their own slots, the ring holds the rest; the query at position p sees the sinks and the
//   ring's keys at p - window + 1 .. p, so sinks + window keys once p >= sinks + window - 1 (before that,
//   everything: full causal attention). The sinks are placed just before the window: with RoPE (rope_base
//   > 0, keys stored rotated at their own positions) they are rotated further by
//   delta = max(0, p - window - sinks + 1) positions when attended, so the query sees them at distances
//   window .. window + sinks - 1 — as the first rows of a training window — instead of at distance ~p,
//   never seen in training ("positions within the cache", as StreamingLLM assigns them). One append of
//   several positions past that point attends them one query at a time (each sees the sinks at its own
//   distance).
class ContiguousKVCache : public KVCache {
 public:
  ContiguousKVCache(int64_t num_layers, int64_t batch, int64_t max_len, int64_t kv_heads, int64_t head_dim,
                    DType dtype = DType::f32, int64_t window = 0, int64_t sinks = 0, double rope_base = 0.0);
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

  // The held K and V of `layer` in position order (sinks first), [B, length, Hkv, D] in the storage dtype:
  // views of the buffer, or a copy when the ring has wrapped or sinks are kept.
  std::pair<Tensor, Tensor> get(int64_t layer) const;
  int64_t max_len() const { return max_len_; }  // the ring's slots (sinks have their own)
  int64_t window() const { return window_; }
  int64_t sinks() const { return sinks_; }
  DType dtype() const { return dtype_; }

  // Without tensors, for the fused decode path (nn/attention/block_decoder.h), batch 1, f32 compute
  // (f32, bf16 or f16 storage): append one position's k, v [Hkv * D]; then its causal attention
  // q [H * D] -> out [H * D] over the held keys — what append() and attend() give for T_new = 1.
  // `window` as in CacheAttentionOptions (0: the ring's own).
  void append_row(int64_t layer, const float* k, const float* v);
  void attend_row(int64_t layer, const float* q, int64_t H, float* out, int64_t window = 0) const;
  static constexpr int64_t kFlashPrefill = 16;

 private:
  // The decode kernel's view of the ring of `layer` (compute type T, storage S): the lengths[b] positions
  // ending at positions_b[b] - 1, [B] each (all rows equal).
  template <class T, class S>
  kernels::DenseKVReader<T, S> reader(int64_t layer, const int64_t* lengths, const int64_t* positions_b) const;
  // The keys the query at position qp sees with sinks: the held sinks, rotated to where they are attended
  // (into sink_k/sink_v, [B, sinks, Hkv, D] of T), then the ring's window; lengths/positions_b as reader().
  template <class T, class S>
  kernels::SinkKVReader<T, S> sink_reader(int64_t layer, int64_t qp, std::vector<T>& sink_k, std::vector<T>& sink_v,
                                          int64_t* lengths, int64_t* positions_b) const;
  template <class T, class S>
  void attend_with_sinks(int64_t layer, const T* q, int64_t q_stride_b, int64_t q_stride_t, int64_t Tq, int64_t H,
                         T* out, double scale) const;
  // The window attend() uses for a request of `requested` (0 = the ring's own); an error when wider.
  int64_t attention_window(int64_t requested) const;
  // Buffer slot of position p: sinks in [max_len, max_len + sinks), the rest in the ring [0, max_len).
  int64_t slot_of(int64_t p) const { return p < sinks_ ? max_len_ + p : (p - sinks_) % max_len_; }
  // Positions held in the ring (not counting sinks) once pos positions were appended.
  int64_t ring_held(int64_t pos) const { return std::min(std::max<int64_t>(pos - sinks_, 0), max_len_); }

  int64_t batch_, max_len_, kv_heads_, head_dim_, window_, sinks_;
  DType dtype_;
  std::shared_ptr<RotaryEmbedding> rope_;  // sinks with RoPE keys: rotates them to their attended positions
  std::vector<Tensor> k_, v_;  // [B, max_len + sinks, Hkv, D]
  std::vector<int64_t> pos_;  // positions appended per layer
  mutable std::vector<float> sink_f32_k_, sink_f32_v_;   // attend_row's rotated sinks
};

}  // namespace attnlab::nn
