#include "nn/layers/embedding.h"

#include "autograd/functions.h"
#include "nn/functional.h"
#include "nn/init.h"

namespace attnlab::nn {

Embedding::Embedding(int64_t n, int64_t c, DType dtype) : num_embeddings(n), embedding_dim(c) {
  ATTNLAB_CHECK(n > 0 && c > 0, "Embedding: sizes must be positive, got ", n, " x ", c);
  weight = register_parameter("weight", zeros({n, c}, dtype));
  init::normal_(weight, 0.0, 1.0);
}

Tensor Embedding::forward(const Tensor& index) { return functional::embedding(weight, index); }

Tensor make_positional_parameter(int64_t max_seq_len, int64_t d, DType dtype, Generator* gen) {
  ATTNLAB_CHECK(max_seq_len > 0 && d > 0, "make_positional_parameter: sizes must be positive, got ",
                max_seq_len, " x ", d);
  Tensor t = normal({1, max_seq_len, d}, 0.0, 0.02, dtype, gen);
  t.set_requires_grad(true);
  return t;
}

LearnedPositionalEmbedding::LearnedPositionalEmbedding(int64_t max_len, int64_t d_, DType dtype)
    : max_seq_len(max_len), d(d_) {
  weight = register_parameter("weight", make_positional_parameter(max_len, d_, dtype));
}

Tensor LearnedPositionalEmbedding::forward(const Tensor& x, int64_t offset) {
  ATTNLAB_CHECK(x.dim() == 3 && x.size(2) == d, "LearnedPositionalEmbedding: input ", describe(x),
                " must be [B, T, ", d, "]");
  const int64_t T = x.size(1);
  ATTNLAB_CHECK(offset >= 0 && offset + T <= max_seq_len, "LearnedPositionalEmbedding: positions [",
                offset, ", ", offset + T, ") exceed max_seq_len ", max_seq_len);
  return x + narrow(weight, 1, offset, T);
}

}  // namespace attnlab::nn
