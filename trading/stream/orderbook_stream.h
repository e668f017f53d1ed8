// Streaming order-book analysis (the seeds' StreamingOrderBookAnalyzer): each snapshot becomes one
// feature row; rows are buffered and flushed together — through a model with a KV cache when one is
// given (the seed uses an int8 cache), so each flush computes only the new rows.
//
// Features of a snapshot (scale-free, unlike the seed's raw prices and sizes, so one model serves any
// price level), over the top `levels` of each side (missing levels are 0):
//   per level i:  bid offset (bid_i / mid - 1) in bps, bid size share (size_i / total size of the top
//                 levels of both sides), the same two for ask_i
//   then:         spread in bps, depth imbalance, microprice offset from mid in bps, and the mid's log
//                 return since the previous snapshot in bps (0 for the first)
// input_dim = 4 * levels + 4.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nn/attention/cache_factory.h"
#include "trading/data/orderbook.h"
#include "trading/models/gqa_trader.h"

namespace attnlab::trading {

int64_t lob_feature_count(size_t levels);
// The row above; prev_mid <= 0 means no previous snapshot. Throws what orderbook_features throws.
std::vector<double> lob_features(const data::OrderBookSnapshot& book, size_t levels, double prev_mid);

struct LobFlush {
  int64_t time_ms = 0;        // the last snapshot's time
  int64_t rows = 0;           // rows flushed
  double mid = 0, spread_bps = 0, imbalance = 0;  // of the last snapshot
  bool has_prediction = false;
  double prediction = 0;      // the model's output after the last row (pred[0, 0])
  int64_t context = 0;        // positions in the cache
  int64_t cache_bytes = 0;
};

class OrderBookStream {
 public:
  // model: optional (config.causal, input_dim = lob_feature_count(levels)); cache kind as nn::make_kv_cache
  // with room for max_context positions, cleared when full (positions restart at 0).
  OrderBookStream(size_t levels = 5, size_t buffer_size = 100, std::shared_ptr<GQATrader> model = nullptr,
                  const std::string& cache_kind = "int8", int64_t max_context = 1024);

  // A result when the buffer is full, else nothing.
  std::optional<LobFlush> process_update(const data::OrderBookSnapshot& book);
  std::optional<LobFlush> flush();  // whatever is buffered (nothing if empty)

  size_t buffered() const { return buffer_.size(); }

 private:
  size_t levels_, buffer_size_;
  std::shared_ptr<GQATrader> model_;
  std::unique_ptr<nn::KVCache> cache_;
  int64_t max_context_;
  double prev_mid_ = 0;
  std::vector<std::vector<double>> buffer_;
  data::OrderBookFeatures last_;
  int64_t last_time_ = 0;
};

}  // namespace attnlab::trading
