// GQATrader — the seed's (chapter 59) transformer for trading with grouped-query attention.
//
//   x [B, T, F] -> input_proj -> (+ pos_encoding[:, offset:offset+T] when positions are learned)
//               -> layers.0..N-1 (pre-norm TransformerBlock, GQA; RoPE inside attention when
//                  positions = rope) -> norm -> last position [B, C] -> head -> pred [B, n_outputs]
//
// Parameter names are the seed's, so checkpoints move between the two:
//   pos_encoding [1, max_seq_len, C] (learned positions only), input_proj.{weight,bias},
//   layers.i.attention.{q,k,v,out}_proj.weight, layers.i.norm{1,2}.{weight,bias},
//   layers.i.ff.{0,3}.{weight,bias}, norm.{weight,bias},
//   head.{weight,bias} (regression, direction) or head.0.{weight,bias} (allocation: Linear -> Tanh).
// Init as the seed's _init_weights: xavier_uniform on every Linear weight, zero biases;
// pos_encoding ~ N(0, 0.02).
//
// KV caching (nn/attention/kv_cache.h, any cache kind): pass a cache with n_layers layers and the
// input's batch; each row's new positions start at cache->positions(0) (learned positions must stay
// below max_seq_len; RoPE positions are unbounded, so sliding-window caches can stream forever).
// Cached decoding (prefill T-1 positions, then one step) gives the full forward's prediction only for a
// causal model (config.causal): without a causal mask early positions of a full forward see later ones,
// which a cache built before those later positions existed cannot reproduce. The seed uses no mask.
//
// The mask is a property of the model, not of a call: config.causal is what the model was trained with,
// is saved in the checkpoint's "model" config, and every forward (training, evaluation, backtests,
// streaming) uses it.
//
// Sliding-window models (config.window = W > 0, RoPE, causal; trained by the stream objective,
// trading/train/stream_objective.h): every layer's query at position p sees the keys p - W + 1 .. p. The
// model's function is then the full-sequence forward with that mask — forward_sequence over a stream,
// from its first row — and a ring of W keys per layer decodes it exactly, forever (tested for 1, 2 and
// 6 layers). A position's output depends only on the last receptive_field() = n_layers * (W - 1) + 1
// inputs, so a forward of any window of at least that many rows gives the stream's prediction at its
// last row (up to float rounding): that is what the batch paths (windows of `lookback` rows) compute.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/attention/gqa.h"
#include "nn/attention/cache_factory.h"
#include "nn/attention/kv_cache.h"
#include "nn/attention/prefix_cache.h"
#include "nn/layers.h"
#include "nn/module.h"

namespace attnlab::trading {

enum class OutputType { regression, direction, allocation };
enum class PositionEncoding { learned, rope };

const char* to_string(OutputType t);
const char* to_string(PositionEncoding p);
const char* to_string(nn::AttentionBackend b);
OutputType parse_output_type(const std::string& s);          // throws attnlab::Error on other names
PositionEncoding parse_positions(const std::string& s);      // "learned" | "rope"
nn::AttentionBackend parse_backend(const std::string& s);    // "flash" | "math" | "reference"

struct TraderConfig {
  int64_t input_dim = 0;  // F, required
  int64_t d_model = 256;  // C
  int64_t n_heads = 8;    // H
  int64_t n_kv_heads = 2; // Hkv
  int64_t n_layers = 6;
  int64_t d_ff = 1024;
  int64_t max_seq_len = 512;
  int64_t n_outputs = 1;
  OutputType output_type = OutputType::regression;
  double dropout = 0.1;
  PositionEncoding positions = PositionEncoding::learned;
  nn::AttentionBackend backend = nn::AttentionBackend::flash;
  bool causal = false;  // causal attention mask in every layer (the seed uses none)
  int64_t window = 0;   // sliding attention window W of every layer (0: full attention); needs causal

  int64_t head_dim() const { return d_model / n_heads; }  // D
  // Inputs one position's output depends on with a sliding window: n_layers * (window - 1) + 1 (each
  // layer reaches window - 1 positions further back); 0 without a window (unbounded).
  int64_t receptive_field() const { return window > 0 ? n_layers * (window - 1) + 1 : 0; }
  // Throws attnlab::Error naming the first bad field.
  void validate() const;
  nlohmann::json to_json() const;
  // Missing keys take the defaults above; unknown enum names and wrong types are errors.
  static TraderConfig from_json(const nlohmann::json& j);
};

struct TraderOutput {
  Tensor pred;                    // [B, n_outputs] (logits for direction, tanh positions for allocation)
  std::vector<Tensor> attention;  // per layer [B, H, T, Sk] when return_attention, else empty
};

class GQATrader : public nn::Module {
 public:
  explicit GQATrader(const TraderConfig& config);

  // x [B, T, F], attention masked causally when config.causal. With a cache, row b's positions are
  // cache->positions(0)[b] + 0..T-1. return_attention switches attention to the math backend for this call.
  TraderOutput forward(const Tensor& x, nn::KVCache* cache = nullptr, bool return_attention = false);
  TraderOutput operator()(const Tensor& x, nn::KVCache* cache = nullptr, bool return_attention = false) {
    return forward(x, cache, return_attention);
  }
  // Every position's prediction: x [B, T, F] -> [B, T, n_outputs] (the head on each position; forward()
  // is its last position). The stream objective's loss, and the batch predictions of a windowed model
  // over a whole stretch of bars in one pass.
  Tensor forward_sequence(const Tensor& x, nn::KVCache* cache = nullptr);

  // pred, target [B, n_outputs]: regression mse; direction BCE with logits against (target > 0);
  // allocation -mean(pred * target).
  Tensor compute_loss(const Tensor& pred, const Tensor& target) const;

  // KV-cache bytes one position (token) costs for one sequence over all layers:
  //   n_layers * 2 (K and V) * n_kv_heads * head_dim * dtype_bytes.
  // The seed's get_kv_cache_size() computes exactly this and calls it "the size for a single
  // sequence": it omits the sequence length. A sequence of S positions needs S times this.
  int64_t kv_cache_bytes_per_token(int64_t dtype_bytes = 2) const;

  // A contiguous cache sized for this model (layers, kv heads, head_dim), f32.
  std::unique_ptr<nn::ContiguousKVCache> make_cache(int64_t batch, int64_t max_len) const;
  // Any cache kind (nn/attention/cache_factory.h) sized for this model (the sinks kind gets its RoPE base).
  // The model's own window applies in every cache's attention, so any kind decodes a windowed model.
  std::unique_ptr<nn::KVCache> make_cache(const nn::CacheSpec& spec, int64_t batch) const;

  // Multi-step forecast for models whose output can feed back (regression, n_outputs == input_dim, as
  // the seed's KVCacheTrader.generate): the context [B, T, F] is run through the cache, then each
  // prediction is appended as the next input. Needs a causal model; eval mode is the caller's.
  // Returns [B, steps, F].
  Tensor generate(const Tensor& context, int64_t steps, nn::KVCache& cache);

  // One request x [1, T, F] through a prefix cache: reuses the cached K/V of x's longest cached prefix,
  // computes the rest, caches the new full blocks. Needs a causal model. Same prediction as forward(x).
  TraderOutput forward_with_prefix(const Tensor& x, nn::PrefixCache& prefix);

  // Sets every attention layer's backend (and config.backend).
  void set_backend(nn::AttentionBackend b);

  TraderConfig config;
  std::shared_ptr<nn::Linear> input_proj;
  Tensor pos_encoding;  // [1, max_seq_len, C]; undefined with RoPE
  std::shared_ptr<nn::ModuleList> layers;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::UnaryModule> head;

  std::shared_ptr<nn::TransformerBlock> layer(size_t i) const { return layers->get<nn::TransformerBlock>(i); }

 private:
  // input_proj, positions, the blocks and the final norm: [B, T, C] (attention per layer when asked).
  Tensor encode(const Tensor& x, nn::KVCache* cache, bool return_attention,
                std::vector<Tensor>* attention);
  // pos_encoding rows start[b] .. start[b] + T - 1 for each row b, [B or 1, T, C].
  Tensor learned_positions(const std::vector<int64_t>& start, int64_t T) const;
};

// Converts a trained model to fewer KV heads (Ainslie et al. 2023, "GQA", mean pooling): the new
// k_proj / v_proj weight of KV head g is the mean of the source KV heads g*G .. g*G+G-1
// (G = source n_kv_heads / target_kv_heads, the heads whose query heads become group g); every other
// weight is copied. target_kv_heads must divide the source's n_kv_heads. n_kv_heads == target gives an
// exact copy. Then fine-tune ("uptraining") to recover quality.
std::shared_ptr<GQATrader> mha_to_gqa(const GQATrader& mha, int64_t target_kv_heads);

}  // namespace attnlab::trading
