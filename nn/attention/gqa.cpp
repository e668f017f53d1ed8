#include "nn/attention/gqa.h"

#include <cmath>

#include "autograd/autocast.h"
#include "autograd/functions.h"

namespace attnlab::nn {

GroupedQueryAttention::GroupedQueryAttention(int64_t d_model_, int64_t n_heads_, int64_t n_kv_heads_,
                                             double dropout, bool use_rope_, int64_t max_seq_len)
    : d_model(d_model_), n_heads(n_heads_), n_kv_heads(n_kv_heads_), dropout_p(dropout), use_rope(use_rope_) {
  ATTNLAB_CHECK(n_heads > 0 && d_model % n_heads == 0, "GroupedQueryAttention: d_model ", d_model,
                " is not divisible by n_heads ", n_heads);
  ATTNLAB_CHECK(n_kv_heads > 0 && n_heads % n_kv_heads == 0, "GroupedQueryAttention: n_heads ", n_heads,
                " is not divisible by n_kv_heads ", n_kv_heads, " (each KV head serves a whole group)");
  ATTNLAB_CHECK(dropout >= 0 && dropout < 1, "GroupedQueryAttention: dropout must be in [0, 1), got ", dropout);
  head_dim = d_model / n_heads;
  q_proj = register_module("q_proj", std::make_shared<Linear>(d_model, n_heads * head_dim, false));
  k_proj = register_module("k_proj", std::make_shared<Linear>(d_model, n_kv_heads * head_dim, false));
  v_proj = register_module("v_proj", std::make_shared<Linear>(d_model, n_kv_heads * head_dim, false));
  out_proj = register_module("out_proj", std::make_shared<Linear>(d_model, d_model, false));
  if (use_rope) rope = register_module("rope", std::make_shared<RotaryEmbedding>(head_dim, 10000.0, max_seq_len));
}

AttentionOutput GroupedQueryAttention::forward(const Tensor& x, const AttentionMask& mask, KVCache* cache,
                                               int64_t layer, bool return_weights) {
  ATTNLAB_CHECK(x.dim() == 3 && x.size(2) == d_model, "GroupedQueryAttention: expected x [B, T, ", d_model,
                "], got ", describe(x));
  const int64_t B = x.size(0), T = x.size(1);
  Tensor q = view((*q_proj)(x), {B, T, n_heads, head_dim});
  Tensor k = view((*k_proj)(x), {B, T, n_kv_heads, head_dim});
  Tensor v = view((*v_proj)(x), {B, T, n_kv_heads, head_dim});
  if (cache) return forward_cached(q, k, v, mask, *cache, layer, return_weights);
  if (rope) {
    q = rope->forward(q);
    k = rope->forward(k);
  }
  // Autocast (autograd/autocast.h): attention is a lower-precision op. q, k, v arrive from the
  // projections in the autocast dtype. The GPU kernels take them as they are (f32 accumulation); the
  // CPU kernels take f32, so there they compute from the rounded values and the output is rounded back
  // to the autocast dtype (the same numbers up to summation order).
  q = autocast::to_low(q), k = autocast::to_low(k), v = autocast::to_low(v);
  const DType low = q.dtype();
  const bool widen = (low == DType::bf16 || low == DType::f16) && !q.is_cuda();
  if (widen) q = to_dtype(q, DType::f32), k = to_dtype(k, DType::f32), v = to_dtype(v, DType::f32);
  AttentionOptions opt;
  opt.causal = mask.causal;
  opt.window = mask.window;
  opt.key_padding_mask = mask.key_padding_mask;
  if (mask.attn_mask.defined())
    opt.attn_bias = mask.attn_mask.dtype() == DType::u8 ? mask_to_bias(mask.attn_mask, q.dtype())
                                                        : to_dtype(mask.attn_mask, q.dtype());
  if (is_training() && dropout_p > 0) {
    opt.dropout_p = dropout_p;
    opt.dropout_seed = dropout_gen_.next_u64();  // a fresh mask per call, reproducible from the seed
  }
  opt.backend = return_weights ? AttentionBackend::math : backend;
  opt.return_weights = return_weights;
  const AttentionResult r = scaled_dot_product_attention(q, k, v, opt);
  const Tensor out = widen ? to_dtype(r.out, low) : r.out;
  return {(*out_proj)(reshape(out, {B, T, d_model})), r.weights};
}

AttentionOutput GroupedQueryAttention::forward_cached(Tensor q, Tensor k, const Tensor& v, const AttentionMask& mask,
                                                      KVCache& cache, int64_t layer, bool return_weights) {
  ATTNLAB_CHECK(!mask.key_padding_mask.defined() && !mask.attn_mask.defined(),
                "GroupedQueryAttention: masks other than causal are not supported with a KV cache ",
                "(batch sequences of different lengths through a paged cache instead)");
  ATTNLAB_CHECK(!(is_training() && dropout_p > 0), "GroupedQueryAttention: KV-cache decoding runs in eval mode ",
                "(attention dropout ", dropout_p, " is on; call eval())");
  const int64_t B = q.size(0), T = q.size(1);
  if (rope) {  // new positions start where each row's cache ends
    const std::vector<int64_t> start = cache.positions(layer);
    std::vector<int64_t> pos;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) pos.push_back(start[size_t(b)] + t);
    const Tensor positions = from_vector_i64(pos, {B, T});
    q = rope->forward(q, positions);
    k = rope->forward(k, positions);
  }
  cache.append(layer, k.detach(), v.detach());
  CacheAttentionOptions opt;
  opt.causal = mask.causal;
  opt.window = mask.window;
  opt.return_weights = return_weights;
  const CacheAttentionResult r = cache.attend(layer, q, opt);
  return {(*out_proj)(reshape(r.out, {B, T, d_model})), r.weights};
}

TransformerBlock::TransformerBlock(int64_t d_model, int64_t n_heads, int64_t n_kv_heads, int64_t d_ff,
                                   double dropout, bool use_rope, int64_t max_seq_len) {
  attention = register_module("attention", std::make_shared<GroupedQueryAttention>(d_model, n_heads, n_kv_heads,
                                                                                     dropout, use_rope, max_seq_len));
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(d_model));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(d_model));
  ff = register_module("ff", std::make_shared<Sequential>());
  ff->push_back(std::make_shared<Linear>(d_model, d_ff))
      .push_back(std::make_shared<GELU>())
      .push_back(std::make_shared<Dropout>(dropout, 0xd20b1))
      .push_back(std::make_shared<Linear>(d_ff, d_model))
      .push_back(std::make_shared<Dropout>(dropout, 0xd20b2));
}

AttentionOutput TransformerBlock::forward(const Tensor& x, const AttentionMask& mask, KVCache* cache, int64_t layer,
                                          bool return_weights) {
  AttentionOutput a = attention->forward((*norm1)(x), mask, cache, layer, return_weights);
  const Tensor h = x + a.out;
  return {h + (*ff)((*norm2)(h)), a.weights};
}

}  // namespace attnlab::nn
