// Selective-retention KV cache: at most max_size positions per (batch row, KV head); after each step
// the least important positions are evicted. Importance, per the seed's strategies:
//   attention  accumulated attention received (H2O, Zhang et al. 2023): every query that attends adds
//              its probability, averaged over the query heads of the KV head's group (so GQA pools
//              the scores per KV head, and each KV head keeps its own set of positions)
//   recency    newer positions first (with sinks this is StreamingLLM, Xiao et al. 2023)
//   entropy    the entropy of the position's own attention row when it was the query, averaged over
//              the group's heads (the seed's "high-entropy positions are more informative")
//   hybrid     0.7 * attention / max(attention) + 0.3 * position / newest position (the seed's weights;
//              the seed adds the raw accumulated sum to a [0, 1) recency, so its mix drifts towards
//              attention as the sums grow — we normalize both terms to [0, 1])
// The first `sinks` positions are never evicted (attention sinks), nor are the newest `recent` ones
// (H2O's local window). Eviction keeps temporal order, and ties evict the older position.
//
// Storage per layer: K, V [B, Hkv, capacity, D] (capacity = max_size + max_append), the absolute
// position of every slot [B, Hkv, capacity] (i64) and its score (f64). An append of T positions fills
// slots, attend() runs the decode kernel (which returns its probabilities), updates the scores and
// evicts down to max_size. RoPE keys keep the rotation of their original position, so attention after
// eviction still sees true relative distances.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/attention/kv_cache.h"

namespace attnlab::nn {

enum class RetentionStrategy { attention, recency, entropy, hybrid };
const char* to_string(RetentionStrategy s);
RetentionStrategy parse_retention(const std::string& s);  // throws on unknown names

struct SelectiveKVConfig {
  int64_t max_size = 2048;
  RetentionStrategy strategy = RetentionStrategy::attention;
  int64_t sinks = 4;
  int64_t recent = 0;
  int64_t max_append = 0;  // positions one append may add; 0: max_size
};

class SelectiveKVCache : public KVCache {
 public:
  SelectiveKVCache(int64_t num_layers, int64_t batch, int64_t kv_heads, int64_t head_dim,
                   const SelectiveKVConfig& config = {}, DType dtype = DType::f32);
  int64_t num_layers() const override { return int64_t(layers_.size()); }
  int64_t batch() const override { return batch_; }
  std::vector<int64_t> positions(int64_t layer) const override;
  int64_t length(int64_t layer) const override;
  void append(int64_t layer, const Tensor& k, const Tensor& v) override;
  CacheAttentionResult attend(int64_t layer, const Tensor& q, const CacheAttentionOptions& opt) override;
  void clear() override;
  int64_t bytes_used() const override;      // K/V rows held (positions and scores are bookkeeping)
  int64_t bytes_reserved() const override;  // K/V storage allocated
  std::string name() const override;

  const SelectiveKVConfig& config() const { return cfg_; }
  // Absolute positions held by (layer, row b, KV head g), in order.
  std::vector<int64_t> held_positions(int64_t layer, int64_t b, int64_t g) const;
  // Their current importance scores (the strategy's raw accumulator).
  std::vector<double> scores(int64_t layer, int64_t b, int64_t g) const;

 private:
  struct Layer {
    Tensor k, v;                   // [B, Hkv, capacity, D]
    std::vector<int64_t> pos;      // [B * Hkv * capacity]
    std::vector<double> score;     // [B * Hkv * capacity]
    int64_t n = 0, appended = 0;   // held per (b, g); positions appended
  };
  const Layer& layer_at(int64_t layer) const;
  void update_scores(Layer& L, const Tensor& probs, int64_t Tq);
  void evict(Layer& L);

  int64_t batch_, kv_heads_, head_dim_, capacity_;
  SelectiveKVConfig cfg_;
  DType dtype_;
  std::vector<Layer> layers_;
};

}  // namespace attnlab::nn
