// Token and learned positional embeddings.
#pragma once
#include "nn/module.h"
#include "tensor/creation.h"

namespace attnlab::nn {

// Embedding(N, C): index i64/i32 of any shape [...] -> [..., C], weight [N, C] initialised N(0, 1) as
// torch.nn.Embedding. Gradient rows accumulate through index_select's backward.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, DType dtype = DType::f32);
  Tensor forward(const Tensor& index);
  Tensor operator()(const Tensor& index) { return forward(index); }

  int64_t num_embeddings, embedding_dim;
  Tensor weight;  // [N, C]
};

// A learned absolute position table as the seed's GQATrader has it:
//   self.pos_encoding = nn.Parameter(torch.randn(1, max_seq_len, d) * 0.02)
// Returns a fresh leaf [1, max_seq_len, d] (requires_grad) drawn N(0, 0.02). The trader registers this
// raw tensor under the seed's name "pos_encoding" directly on the model (not via the module below), so
// its checkpoints keep the key "pos_encoding".
Tensor make_positional_parameter(int64_t max_seq_len, int64_t d, DType dtype = DType::f32,
                                 Generator* gen = nullptr);

// The same table as a module with the parameter "weight" [1, max_seq_len, C]:
//   forward(x [B, T, C], offset) = x + weight[:, offset : offset + T, :]
class LearnedPositionalEmbedding : public UnaryModule {
 public:
  LearnedPositionalEmbedding(int64_t max_seq_len, int64_t d, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) override { return forward(x, 0); }
  Tensor forward(const Tensor& x, int64_t offset);

  int64_t max_seq_len, d;
  Tensor weight;  // [1, max_seq_len, C]
};

}  // namespace attnlab::nn
