// One new position through a stack of TransformerBlocks without tensors: the streaming hot path.
//
// The tensor forward with a KV cache (TransformerBlock::forward -> GroupedQueryAttention::forward_cached)
// costs a tensor, a shape check and an allocation per op — some 30 ops per block, about a third of a
// one-position step of the seed model (d_model 256, 6 layers) on a 2-core machine. BlockDecoder runs the
// same kernels on preallocated rows: per block
//   a = norm1(h); q, k, v = projections of a; RoPE on q, k at the cache position; append k, v;
//   h += out_proj(attention of q over the cache); h += ff(norm2(h))     (ff = Linear, GELU, Linear)
// Linear::forward_row (packed weights included), LayerNorm::forward_row, RotaryEmbedding::rotate_rows,
// kernels::gelu_forward and ContiguousKVCache::append_row/attend_row are the pieces; the tensor path
// calls the same kernels, so the numbers agree (tested against it, including a wrapped ring).
//
// Scope: inference (eval mode), batch 1, f32 CPU parameters, a ContiguousKVCache (f32, bf16 or f16
// storage, plain or ring). Anything else stays on the tensor path (the constructor says why).
#pragma once
#include <vector>

#include "nn/attention/gqa.h"
#include "nn/attention/kv_cache.h"

namespace attnlab::nn {

class BlockDecoder {
 public:
  // A block's feed-forward as the seed builds it (Linear, GELU, Dropout, Linear, Dropout), resolved once.
  struct FeedForward {
    Linear* up;
    GELU* act;
    Linear* down;
  };

  // blocks[i] decodes through the cache's layer i. The blocks and the cache must outlive the decoder.
  // window: the blocks' sliding attention window (AttentionMask::window; 0: full causal, or the ring's).
  BlockDecoder(std::vector<TransformerBlock*> blocks, ContiguousKVCache& cache, int64_t window = 0);

  // h [d_model], in place: the residual stream of the next position (the cache's position(0)) in, the
  // last block's output out. Appends that position's K/V to every layer.
  void step(float* h);

  int64_t d_model() const { return d_model_; }

 private:
  std::vector<TransformerBlock*> blocks_;
  std::vector<FeedForward> ff_layers_;
  ContiguousKVCache& cache_;
  int64_t d_model_ = 0, d_ff_ = 0, window_ = 0;
  std::vector<float> a_, q_, k_, v_, attn_, proj_, ff_, cos_, sin_;
};

}  // namespace attnlab::nn
