// The seeds' OptimizedInferenceEngine: many requests (symbols, strategies, what-if scenarios), each
// with its own KV cache, under one memory budget.
//
// Every request is a sequence of one paged pool (nn/attention/paged_kv_cache.h) sized to the budget,
// so memory is taken a block at a time and a request never reserves more than it holds. A request
// sends all its rows so far, x [T, F] (normalized features); when its cache holds a prefix of x (the
// rows are kept and compared, so a changed history is never served from a stale cache) only the new
// rows are computed — a hit — otherwise the whole of x is — a miss. When the pool has too few free
// blocks, the least recently used other requests are evicted until it has enough.
//
// predict_batch() decodes every request whose cache holds all but its last row in ONE batched step
// over their ragged lengths (the paged decode reads each row's blocks through its own table) and
// prefills the others one by one, which is what batching across symbols buys.
//
// The model must be causal (config.causal; a cached prefix must not depend on later rows). Predictions are pred[0] in the model's output units (multiply regression
// outputs by the checkpoint's target_std for log returns).
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "nn/attention/paged_kv_cache.h"
#include "trading/backtest/latency.h"
#include "trading/models/gqa_trader.h"

namespace attnlab::trading {

struct EngineOptions {
  int64_t memory_budget_bytes = 64ll << 20;  // the pool's size: K/V of every request together
  int64_t block_size = 16;
};

struct EngineResult {
  std::string id;
  double prediction = 0;  // pred[0, 0]
  bool cache_hit = false;
  int64_t computed = 0;   // positions computed for this request in this call
  double latency_ms = 0;
};

struct EngineMetrics {
  int64_t requests = 0, hits = 0, misses = 0, evictions = 0;
  double hit_rate = 0;     // hits / requests
  int64_t active = 0;      // requests holding a cache
  int64_t bytes_used = 0;  // blocks in use
  int64_t bytes_budget = 0;
  backtest::LatencySummary latency;  // per request
};

class InferenceEngine {
 public:
  InferenceEngine(std::shared_ptr<GQATrader> model, const EngineOptions& opt = {});

  // x: [T, F], every row of request `id` so far.
  EngineResult predict(const std::string& id, const Tensor& x);
  std::vector<EngineResult> predict_batch(const std::vector<std::pair<std::string, Tensor>>& requests);
  void drop(const std::string& id);  // frees the request's cache
  EngineMetrics metrics() const;
  const nn::PagedKVPool& pool() const { return *pool_; }

 private:
  struct Request {
    nn::PagedKVPool::SeqId seq = 0;
    std::vector<float> rows;  // [held, F]: what the cache was computed from
    double last_prediction = 0;
    std::list<std::string>::iterator lru;
  };
  // The request's state, its cache reset unless it holds a prefix of x; sets `hit`.
  Request& lookup(const std::string& id, const Tensor& x, bool& hit);
  // Frees least recently used requests (never those in `keep`) until `blocks` are free.
  void make_room(int64_t blocks, const std::vector<std::string>& keep);
  void touch(Request& r, const std::string& id);

  std::shared_ptr<GQATrader> model_;
  EngineOptions opt_;
  std::shared_ptr<nn::PagedKVPool> pool_;
  std::unordered_map<std::string, Request> requests_;
  std::list<std::string> lru_;  // most recently used first
  int64_t n_requests_ = 0, hits_ = 0, misses_ = 0, evictions_ = 0;
  backtest::LatencyRecorder latency_;
};

// The seeds' compute_allocations: long-only weights in proportion to the positive predictions, equal
// weight over every asset when none is positive. Weights sum to 1.
std::vector<double> long_only_allocations(const std::vector<double>& predictions);

}  // namespace attnlab::trading
