// One new bar through a GQATrader without tensors, for streaming (trading/stream/symbol_stream.h):
// input_proj, the learned position row (if any), the blocks through nn::BlockDecoder, the final norm
// and the head — the prediction forward(x [1, 1, F], &cache) gives, at a fraction of
// its per-op cost. The cache is the model's ContiguousKVCache (f32, bf16 or f16; plain or ring) of
// batch 1; the prefill of a first window still runs through forward().
#pragma once
#include <vector>

#include "nn/attention/block_decoder.h"
#include "trading/models/gqa_trader.h"

namespace attnlab::trading {

class TraderDecoder {
 public:
  // The model (eval mode, f32 CPU parameters) and the cache must outlive the decoder.
  TraderDecoder(GQATrader& model, nn::ContiguousKVCache& cache);

  // x [input_dim] at the cache's next position -> the head's outputs [n_outputs].
  const std::vector<float>& step(const float* x);

  // Whether `cache` is one the decoder takes (else stay on forward()).
  static bool supports(const GQATrader& model, const nn::KVCache& cache);

 private:
  GQATrader& model_;
  nn::ContiguousKVCache& cache_;
  nn::BlockDecoder blocks_;
  nn::Linear* head_;
  bool head_tanh_;
  std::vector<float> h_, normed_, out_;
};

}  // namespace attnlab::trading
