#include "trading/stream/orderbook_stream.h"

#include <cmath>

#include "autograd/functions.h"

namespace attnlab::trading {

int64_t lob_feature_count(size_t levels) { return int64_t(4 * levels + 4); }

std::vector<double> lob_features(const data::OrderBookSnapshot& book, size_t levels, double prev_mid) {
  const data::OrderBookFeatures f = data::orderbook_features(book, levels);
  double total = 0;
  for (size_t i = 0; i < levels; ++i) {
    if (i < book.bids.size()) total += book.bids[i].size;
    if (i < book.asks.size()) total += book.asks[i].size;
  }
  std::vector<double> row;
  row.reserve(size_t(lob_feature_count(levels)));
  for (size_t i = 0; i < levels; ++i)
    for (const auto* side : {&book.bids, &book.asks}) {
      const bool has = i < side->size();
      row.push_back(has ? ((*side)[i].price / f.mid - 1) * 1e4 : 0.0);
      row.push_back(has && total > 0 ? (*side)[i].size / total : 0.0);
    }
  row.push_back(f.spread_bps);
  row.push_back(f.imbalance);
  row.push_back((f.microprice / f.mid - 1) * 1e4);
  row.push_back(prev_mid > 0 ? std::log(f.mid / prev_mid) * 1e4 : 0.0);
  return row;
}

OrderBookStream::OrderBookStream(size_t levels, size_t buffer_size, std::shared_ptr<GQATrader> model,
                                 const std::string& cache_kind, int64_t max_context)
    : levels_(levels), buffer_size_(buffer_size), model_(std::move(model)), max_context_(max_context) {
  ATTNLAB_CHECK(levels >= 1 && buffer_size >= 1, "OrderBookStream: levels and buffer_size must be >= 1");
  if (!model_) return;
  ATTNLAB_CHECK(model_->config.causal, "OrderBookStream: the model is not causal (config.causal); its cached ",
                "positions must not depend on later updates");
  ATTNLAB_CHECK(model_->config.input_dim == lob_feature_count(levels), "OrderBookStream: the model takes ",
                model_->config.input_dim, " inputs, the order-book rows of ", levels, " levels have ",
                lob_feature_count(levels));
  ATTNLAB_CHECK(int64_t(buffer_size) <= max_context, "OrderBookStream: buffer_size ", buffer_size,
                " exceeds max_context ", max_context);
  ATTNLAB_CHECK(model_->config.positions == PositionEncoding::rope || max_context <= model_->config.max_seq_len,
                "OrderBookStream: max_context ", max_context, " exceeds the model's learned positions (",
                model_->config.max_seq_len, ")");
  model_->eval();
  nn::CacheSpec spec;
  spec.kind = cache_kind;
  spec.max_len = max_context;
  cache_ = model_->make_cache(spec, 1);
}

std::optional<LobFlush> OrderBookStream::process_update(const data::OrderBookSnapshot& book) {
  std::vector<double> row = lob_features(book, levels_, prev_mid_);  // validates the book
  last_ = data::orderbook_features(book, levels_);
  prev_mid_ = last_.mid;
  last_time_ = book.ts_ms;
  buffer_.push_back(std::move(row));
  if (buffer_.size() >= buffer_size_) return flush();
  return std::nullopt;
}

std::optional<LobFlush> OrderBookStream::flush() {
  if (buffer_.empty()) return std::nullopt;
  LobFlush out;
  out.time_ms = last_time_;
  out.rows = int64_t(buffer_.size());
  out.mid = last_.mid, out.spread_bps = last_.spread_bps, out.imbalance = last_.imbalance;
  if (model_) {
    NoGradGuard ng;
    if (cache_->length(0) + out.rows > max_context_) cache_->clear();  // positions restart at 0
    std::vector<double> x;
    for (const auto& r : buffer_) x.insert(x.end(), r.begin(), r.end());
    const Tensor input = from_vector(x, {1, out.rows, model_->config.input_dim});
    out.prediction = model_->forward(input, cache_.get()).pred.to_vector<double>()[0];
    out.has_prediction = true;
    out.context = cache_->length(0);
    out.cache_bytes = cache_->bytes_used();
  }
  buffer_.clear();
  return out;
}

}  // namespace attnlab::trading
