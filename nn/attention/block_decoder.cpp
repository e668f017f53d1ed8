#include "nn/attention/block_decoder.h"

#include <algorithm>

#include "kernels/cpu/gelu.h"

namespace attnlab::nn {

namespace {

BlockDecoder::FeedForward feed_forward(const TransformerBlock& b, size_t i) {
  const Sequential& ff = *b.ff;
  auto at = [&](size_t j) { return j < ff.size() ? ff[j].get() : nullptr; };
  const BlockDecoder::FeedForward f{dynamic_cast<Linear*>(at(0)), dynamic_cast<GELU*>(at(1)),
                                    dynamic_cast<Linear*>(at(3))};
  ATTNLAB_CHECK(ff.size() == 5 && f.up && f.act && f.down && dynamic_cast<Dropout*>(at(2)) &&
                    dynamic_cast<Dropout*>(at(4)),
                "BlockDecoder: block ", i, "'s ff is not Linear, GELU, Dropout, Linear, Dropout");
  return f;
}

}  // namespace

BlockDecoder::BlockDecoder(std::vector<TransformerBlock*> blocks, ContiguousKVCache& cache, int64_t window)
    : blocks_(std::move(blocks)), cache_(cache), window_(window) {
  ATTNLAB_CHECK(window >= 0 && (cache.window() == 0 || window <= cache.window()), "BlockDecoder: attention window ",
                window, " must be >= 0 and fit the ", cache.name());
  ATTNLAB_CHECK(!blocks_.empty(), "BlockDecoder: no blocks");
  ATTNLAB_CHECK(cache_.num_layers() >= int64_t(blocks_.size()), "BlockDecoder: ", blocks_.size(), " blocks but the ",
                cache_.name(), " has ", cache_.num_layers(), " layers");
  ATTNLAB_CHECK(cache_.batch() == 1 && cache_.dtype() != DType::f64, "BlockDecoder: needs a batch-1 cache in f32, ",
                "bf16 or f16, got ", cache_.name(), " of batch ", cache_.batch());
  const GroupedQueryAttention& a0 = *blocks_[0]->attention;
  d_model_ = a0.d_model;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const GroupedQueryAttention& a = *blocks_[i]->attention;
    // One cos/sin row serves every block: the same heads and the same RoPE (or none) throughout.
    ATTNLAB_CHECK(a.d_model == d_model_ && a.n_heads == a0.n_heads && a.n_kv_heads == a0.n_kv_heads &&
                      bool(a.rope) == bool(a0.rope) && (!a.rope || a.rope->base == a0.rope->base),
                  "BlockDecoder: block ", i, " has different heads or RoPE from block 0");
    const FeedForward f = feed_forward(*blocks_[i], i);
    ff_layers_.push_back(f);
    d_ff_ = std::max(d_ff_, f.up->out_features);
  }
  const int64_t H = a0.n_heads, Hkv = a0.n_kv_heads, D = a0.head_dim;
  a_.resize(size_t(d_model_)), q_.resize(size_t(H * D)), k_.resize(size_t(Hkv * D)), v_.resize(size_t(Hkv * D));
  attn_.resize(size_t(H * D)), proj_.resize(size_t(d_model_)), ff_.resize(size_t(d_ff_));
  cos_.resize(size_t(D / 2)), sin_.resize(size_t(D / 2));
}

void BlockDecoder::step(float* h) {
  // Every layer of the cache sits at the same position: the new one, the same for every block's RoPE.
  // Everything that can refuse is checked before the first append, so a refused step leaves the
  // cache as it was.
  const int64_t pos = cache_.position(0);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    ATTNLAB_CHECK(!blocks_[i]->is_training(), "BlockDecoder: block ", i, " is in training mode (call eval())");
    ATTNLAB_CHECK(cache_.position(int64_t(i)) == pos, "BlockDecoder: cache layer ", i, " is at position ",
                  cache_.position(int64_t(i)), ", layer 0 at ", pos);
  }
  ATTNLAB_CHECK(cache_.window() > 0 || pos < cache_.max_len(), "BlockDecoder: position ", pos, " exceeds max_len ",
                cache_.max_len(), " of the ", cache_.name());
  if (blocks_[0]->attention->rope) blocks_[0]->attention->rope->cos_sin_row(pos, cos_.data(), sin_.data());
  for (size_t i = 0; i < blocks_.size(); ++i) {
    TransformerBlock& b = *blocks_[i];
    GroupedQueryAttention& at = *b.attention;
    // x + attn(norm1(x))
    b.norm1->forward_row(h, a_.data());
    at.q_proj->forward_row(a_.data(), q_.data());
    at.k_proj->forward_row(a_.data(), k_.data());
    at.v_proj->forward_row(a_.data(), v_.data());
    if (at.rope) {
      at.rope->rotate_rows(q_.data(), at.n_heads, cos_.data(), sin_.data());
      at.rope->rotate_rows(k_.data(), at.n_kv_heads, cos_.data(), sin_.data());
    }
    cache_.append_row(int64_t(i), k_.data(), v_.data());
    cache_.attend_row(int64_t(i), q_.data(), at.n_heads, attn_.data(), window_);
    at.out_proj->forward_row(attn_.data(), proj_.data());
    for (int64_t c = 0; c < d_model_; ++c) h[c] += proj_[size_t(c)];
    // x + ff(norm2(x)); dropout is the identity in eval mode
    const FeedForward& f = ff_layers_[i];
    b.norm2->forward_row(h, a_.data());
    f.up->forward_row(a_.data(), ff_.data());
    kernels::gelu_forward<float>(ff_.data(), ff_.data(), f.up->out_features,
                                 f.act->tanh_approx ? kernels::GeluApprox::tanh : kernels::GeluApprox::none);
    f.down->forward_row(ff_.data(), proj_.data());
    for (int64_t c = 0; c < d_model_; ++c) h[c] += proj_[size_t(c)];
  }
}

}  // namespace attnlab::nn
