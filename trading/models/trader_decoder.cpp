#include "trading/models/trader_decoder.h"

#include <cmath>

namespace attnlab::trading {

namespace {

std::vector<nn::TransformerBlock*> blocks_of(GQATrader& m) {
  std::vector<nn::TransformerBlock*> b;
  for (size_t i = 0; i < m.layers->size(); ++i) b.push_back(m.layer(i).get());
  return b;
}

// The head is a Linear (regression, direction) or Linear -> Tanh (allocation).
nn::Linear* head_linear(nn::UnaryModule& head) {
  if (auto* lin = dynamic_cast<nn::Linear*>(&head)) return lin;
  auto* seq = dynamic_cast<nn::Sequential*>(&head);
  ATTNLAB_CHECK(seq && seq->size() == 2 && dynamic_cast<nn::Tanh*>((*seq)[1].get()), "TraderDecoder: unknown head ",
                head.type_name());
  return seq->get<nn::Linear>(0).get();
}

}  // namespace

bool TraderDecoder::supports(const GQATrader& model, const nn::KVCache& cache) {
  const auto* c = dynamic_cast<const nn::ContiguousKVCache*>(&cache);
  const Tensor& w = model.input_proj->weight;
  return c && c->batch() == 1 && c->dtype() != DType::f64 && w.dtype() == DType::f32 && w.device() == kCPU;
}

TraderDecoder::TraderDecoder(GQATrader& model, nn::ContiguousKVCache& cache)
    : model_(model), cache_(cache), blocks_(blocks_of(model), cache, model.config.window), head_(head_linear(*model.head)),
      head_tanh_(dynamic_cast<nn::Linear*>(model.head.get()) == nullptr) {
  const int64_t C = model.config.d_model;
  h_.resize(size_t(C)), normed_.resize(size_t(C)), out_.resize(size_t(head_->out_features));
}

const std::vector<float>& TraderDecoder::step(const float* x) {
  model_.input_proj->forward_row(x, h_.data());
  if (model_.pos_encoding.defined()) {  // learned positions: the row of the new position
    const int64_t pos = cache_.position(0), C = model_.config.d_model;
    ATTNLAB_CHECK(pos < model_.config.max_seq_len, "TraderDecoder: position ", pos, " exceeds max_seq_len ",
                  model_.config.max_seq_len, " of the learned position embedding");
    const float* row = model_.pos_encoding.data<float>() + pos * C;
    for (int64_t c = 0; c < C; ++c) h_[size_t(c)] += row[c];
  }
  blocks_.step(h_.data());
  model_.norm->forward_row(h_.data(), normed_.data());
  head_->forward_row(normed_.data(), out_.data());
  if (head_tanh_)
    for (float& v : out_) v = std::tanh(v);
  return out_;
}

}  // namespace attnlab::trading
