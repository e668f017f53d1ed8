// GroupedQueryAttention: one module for multi-head (n_kv_heads == n_heads), grouped-query and
// multi-query (n_kv_heads == 1) attention, with the seed's parameter names (q_proj, k_proj, v_proj,
// out_proj; no biases) so checkpoints move between this and the PyTorch seed.
//
//   x [B, T, C] -> q [B, T, H, D], k, v [B, T, Hkv, D]   (C = H * D)
//   optional RoPE on q and k at positions offset + 0..T-1 (offset = positions already in the cache)
//   attention through scaled_dot_product_attention (flash by default; math returns weights)
//   out_proj(attn.reshape(B, T, C)) -> [B, T, C]
//
// KV caching (inference): pass a KVCache and the layer index; the new k, v are appended (RoPE at each
// row's cache positions) and the queries attend over the held keys through the cache's own reader
// (nn/attention/kv_cache.h), so the causal mask is by position — decoding T_new tokens after `offset`
// cached ones lets token i see keys 0..offset+i, exactly what a full forward would give. Needs eval()
// when dropout > 0; masks other than causal are refused (a paged cache batches ragged sequences).
// max_seq_len bounds the RoPE positions (0 = unbounded, for sliding-window streams).
#pragma once
#include <memory>

#include "nn/attention/kv_cache.h"
#include "nn/attention/sdpa.h"
#include "nn/layers.h"
#include "nn/module.h"

namespace attnlab::nn {

struct AttentionMask {
  bool causal = false;
  int64_t window = 0;       // > 0 (with causal): sliding window of that many keys (Mistral); a cache
                            // applies it by position, so a ring of `window` slots decodes it exactly
  Tensor key_padding_mask;  // u8 [B, Sk], nonzero = ignore
  Tensor attn_mask;         // u8 (nonzero = may attend) or float additive, broadcastable to [B, H, Sq, Sk]
};

struct AttentionOutput {
  Tensor out;      // [B, T, C]
  Tensor weights;  // [B, H, T, Sk] when asked (math backend)
};

class GroupedQueryAttention : public Module {
 public:
  GroupedQueryAttention(int64_t d_model, int64_t n_heads, int64_t n_kv_heads, double dropout = 0.1,
                        bool use_rope = false, int64_t max_seq_len = 4096);

  AttentionOutput forward(const Tensor& x, const AttentionMask& mask = {}, KVCache* cache = nullptr,
                          int64_t layer = 0, bool return_weights = false);

  AttentionBackend backend = AttentionBackend::flash;  // the math backend is used when weights are asked
  int64_t d_model, n_heads, n_kv_heads, head_dim;
  double dropout_p;
  bool use_rope;
  std::shared_ptr<Linear> q_proj, k_proj, v_proj, out_proj;
  std::shared_ptr<RotaryEmbedding> rope;

  // The attention-dropout generator (one draw per training forward with dropout_p > 0), exposed so a
  // training-state checkpoint can save and restore it for an exact resume.
  Generator& dropout_generator() { return dropout_gen_; }

 private:
  AttentionOutput forward_cached(Tensor q, Tensor k, const Tensor& v, const AttentionMask& mask, KVCache& cache,
                                 int64_t layer, bool return_weights);
  Generator dropout_gen_{0xa77e};
};

// The seed's pre-norm block: x + attn(norm1(x)); x + ff(norm2(x)), ff = Linear -> GELU -> Dropout ->
// Linear -> Dropout (names: attention, norm1, norm2, ff.0, ff.3).
class TransformerBlock : public Module {
 public:
  TransformerBlock(int64_t d_model, int64_t n_heads, int64_t n_kv_heads, int64_t d_ff, double dropout = 0.1,
                   bool use_rope = false, int64_t max_seq_len = 4096);
  AttentionOutput forward(const Tensor& x, const AttentionMask& mask = {}, KVCache* cache = nullptr,
                          int64_t layer = 0, bool return_weights = false);

  std::shared_ptr<GroupedQueryAttention> attention;
  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<Sequential> ff;
};

}  // namespace attnlab::nn
