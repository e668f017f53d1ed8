#include "trading/stream/inference_engine.h"

#include <algorithm>
#include <set>

#include "autograd/functions.h"

namespace attnlab::trading {

namespace {

Tensor check_rows(const Tensor& x, int64_t F, const std::string& id) {
  ATTNLAB_CHECK(x.dim() == 2 && x.size(0) >= 1 && x.size(1) == F, "InferenceEngine: request '", id, "' rows ",
                describe(x), " must be [T, ", F, "] with T >= 1");
  return ops::contiguous(ops::to_dtype(x, DType::f32));
}

}  // namespace

InferenceEngine::InferenceEngine(std::shared_ptr<GQATrader> model, const EngineOptions& opt)
    : model_(std::move(model)), opt_(opt) {
  ATTNLAB_CHECK(model_ != nullptr, "InferenceEngine: no model");
  ATTNLAB_CHECK(model_->config.causal, "InferenceEngine: the model is not causal (config.causal); a cached prefix ",
                "must not depend on later rows");
  const TraderConfig& c = model_->config;
  const int64_t block_bytes = 2 * c.n_layers * c.n_kv_heads * opt.block_size * c.head_dim() * 4;
  const int64_t blocks = opt.memory_budget_bytes / block_bytes;
  ATTNLAB_CHECK(blocks >= 1, "InferenceEngine: a memory budget of ", opt.memory_budget_bytes, " bytes holds no ",
                "block (one block of ", opt.block_size, " positions is ", block_bytes, " bytes)");
  pool_ = std::make_shared<nn::PagedKVPool>(c.n_layers, blocks, c.n_kv_heads, c.head_dim(), opt.block_size);
  model_->eval();
}

void InferenceEngine::touch(Request& r, const std::string& id) {
  lru_.erase(r.lru);
  lru_.push_front(id);
  r.lru = lru_.begin();
}

InferenceEngine::Request& InferenceEngine::lookup(const std::string& id, const Tensor& x, bool& hit) {
  ++n_requests_;
  auto it = requests_.find(id);
  if (it == requests_.end()) {
    lru_.push_front(id);
    Request r;
    r.seq = pool_->add_sequence();
    r.lru = lru_.begin();
    it = requests_.emplace(id, std::move(r)).first;
  }
  Request& r = it->second;
  const auto* rows = x.data<float>();
  hit = !r.rows.empty() && r.rows.size() <= size_t(x.numel()) && std::equal(r.rows.begin(), r.rows.end(), rows);
  if (!hit && !r.rows.empty()) {  // a different history: the cache is stale
    pool_->reset_sequence(r.seq);
    r.rows.clear();
  }
  ++(hit ? hits_ : misses_);
  touch(r, id);
  return r;
}

void InferenceEngine::make_room(int64_t blocks, const std::vector<std::string>& keep) {
  auto it = lru_.end();
  while (pool_->num_free_blocks() < blocks) {
    while (it != lru_.begin() && std::find(keep.begin(), keep.end(), *std::prev(it)) != keep.end()) --it;
    ATTNLAB_CHECK(it != lru_.begin(), "InferenceEngine: the requests need ", blocks, " free blocks, more than the ",
                  "memory budget holds (", pool_->num_blocks(), " blocks of ", pool_->block_size(), " positions, ",
                  pool_->bytes_reserved(), " bytes)");
    const std::string victim = *std::prev(it);
    drop(victim);
    ++evictions_;
    it = lru_.end();
  }
}

void InferenceEngine::drop(const std::string& id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  pool_->free_sequence(it->second.seq);
  lru_.erase(it->second.lru);
  requests_.erase(it);
}

EngineResult InferenceEngine::predict(const std::string& id, const Tensor& x0) {
  NoGradGuard ng;
  const auto t0 = backtest::LatencyRecorder::now();
  const Tensor x = check_rows(x0, model_->config.input_dim, id);
  const int64_t F = x.size(1), T = x.size(0);
  EngineResult res;
  res.id = id;
  Request* r = &lookup(id, x, res.cache_hit);
  const int64_t held = int64_t(r->rows.size()) / F;
  if (held == T) {  // nothing new: the last answer stands
    res.prediction = r->last_prediction;
  } else {
    make_room(pool_->blocks_needed(r->seq, 0, T - held), {id});
    nn::PagedKVCache cache(pool_, {r->seq});
    const Tensor fresh = ops::unsqueeze(ops::narrow(x, 0, held, T - held), 0);
    res.prediction = model_->forward(fresh, &cache).pred.to_vector<double>()[0];
    res.computed = T - held;
    r->rows.assign(x.data<float>(), x.data<float>() + x.numel());
    r->last_prediction = res.prediction;
  }
  latency_.record_since(t0);
  res.latency_ms = latency_.samples_ms().back();
  return res;
}

std::vector<EngineResult> InferenceEngine::predict_batch(const std::vector<std::pair<std::string, Tensor>>& reqs) {
  NoGradGuard ng;
  const auto t0 = backtest::LatencyRecorder::now();
  std::set<std::string> seen;
  for (const auto& [id, x] : reqs) ATTNLAB_CHECK(seen.insert(id).second, "InferenceEngine: request '", id, "' twice in one batch");
  std::vector<EngineResult> out(reqs.size());
  std::vector<size_t> decode;  // requests whose cache holds all rows but the last
  std::vector<Tensor> rows(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    rows[i] = check_rows(reqs[i].second, model_->config.input_dim, reqs[i].first);
    auto it = requests_.find(reqs[i].first);
    if (it != requests_.end() && int64_t(it->second.rows.size()) == (rows[i].size(0) - 1) * rows[i].size(1) &&
        std::equal(it->second.rows.begin(), it->second.rows.end(), rows[i].data<float>()))
      decode.push_back(i);
  }
  if (!decode.empty()) {
    std::vector<std::string> ids;
    std::vector<nn::PagedKVPool::SeqId> seqs;
    std::vector<Tensor> last;
    int64_t need = 0;
    for (size_t i : decode) {
      bool hit = false;
      Request& r = lookup(reqs[i].first, rows[i], hit);
      ids.push_back(reqs[i].first);
      seqs.push_back(r.seq);
      last.push_back(ops::narrow(rows[i], 0, rows[i].size(0) - 1, 1));
      need += pool_->blocks_needed(r.seq, 0, 1);
    }
    make_room(need, ids);
    nn::PagedKVCache cache(pool_, seqs);
    const auto preds = model_->forward(ops::stack(last, 0), &cache).pred.to_vector<double>();
    const int64_t n_out = model_->config.n_outputs;
    for (size_t k = 0; k < decode.size(); ++k) {
      const size_t i = decode[k];
      Request& r = requests_.at(ids[k]);
      r.rows.assign(rows[i].data<float>(), rows[i].data<float>() + rows[i].numel());
      r.last_prediction = preds[k * size_t(n_out)];
      out[i] = {ids[k], r.last_prediction, true, 1, 0.0};
    }
    latency_.record_since(t0);
    for (size_t i : decode) out[i].latency_ms = latency_.samples_ms().back();  // each waited for the batch
  }
  for (size_t i = 0; i < reqs.size(); ++i)
    if (std::find(decode.begin(), decode.end(), i) == decode.end()) out[i] = predict(reqs[i].first, rows[i]);
  return out;
}

EngineMetrics InferenceEngine::metrics() const {
  EngineMetrics m;
  m.requests = n_requests_, m.hits = hits_, m.misses = misses_, m.evictions = evictions_;
  m.hit_rate = n_requests_ > 0 ? double(hits_) / double(n_requests_) : 0.0;
  m.active = int64_t(requests_.size());
  m.bytes_used = pool_->bytes_used();
  m.bytes_budget = pool_->bytes_reserved();
  m.latency = latency_.summary();
  return m;
}

std::vector<double> long_only_allocations(const std::vector<double>& predictions) {
  ATTNLAB_CHECK(!predictions.empty(), "long_only_allocations: no predictions");
  double positive = 0;
  for (double p : predictions) positive += p > 0 ? p : 0.0;
  std::vector<double> w(predictions.size());
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = positive > 0 ? std::max(0.0, predictions[i]) / positive : 1.0 / double(w.size());
  return w;
}

}  // namespace attnlab::trading
