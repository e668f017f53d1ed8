#include "nn/attention/selective_kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "nn/attention/cache_attention.h"
#include "tensor/creation.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace attnlab::nn {

const char* to_string(RetentionStrategy s) {
  switch (s) {
    case RetentionStrategy::attention: return "attention";
    case RetentionStrategy::recency: return "recency";
    case RetentionStrategy::entropy: return "entropy";
    case RetentionStrategy::hybrid: return "hybrid";
  }
  return "?";
}

RetentionStrategy parse_retention(const std::string& s) {
  for (auto r : {RetentionStrategy::attention, RetentionStrategy::recency, RetentionStrategy::entropy,
                 RetentionStrategy::hybrid})
    if (s == to_string(r)) return r;
  throw Error("unknown retention strategy '" + s + "' (expected attention, recency, entropy or hybrid)");
}

SelectiveKVCache::SelectiveKVCache(int64_t num_layers, int64_t batch, int64_t kv_heads, int64_t head_dim,
                                   const SelectiveKVConfig& cfg, DType dtype)
    : batch_(batch), kv_heads_(kv_heads), head_dim_(head_dim), cfg_(cfg), dtype_(dtype) {
  ATTNLAB_CHECK(num_layers > 0 && batch > 0 && kv_heads > 0 && head_dim > 0, "SelectiveKVCache: sizes must be ",
                "positive (layers ", num_layers, ", batch ", batch, ", kv_heads ", kv_heads, ", head_dim ", head_dim,
                ")");
  ATTNLAB_CHECK(cfg.max_size > 0 && cfg.sinks >= 0 && cfg.recent >= 0 && cfg.sinks + cfg.recent <= cfg.max_size,
                "SelectiveKVCache: need max_size > 0 and sinks + recent <= max_size (max_size ", cfg.max_size,
                ", sinks ", cfg.sinks, ", recent ", cfg.recent, ")");
  ATTNLAB_CHECK(cfg.max_append >= 0, "SelectiveKVCache: max_append must be >= 0");
  ATTNLAB_CHECK(dtype == DType::f32 || dtype == DType::f64, "SelectiveKVCache: dtype must be f32 or f64");
  cfg_.max_append = cfg.max_append > 0 ? cfg.max_append : cfg.max_size;
  capacity_ = cfg_.max_size + cfg_.max_append;
  const size_t slots = size_t(batch * kv_heads * capacity_);
  for (int64_t l = 0; l < num_layers; ++l) {
    Layer L;
    L.k = zeros({batch, kv_heads, capacity_, head_dim}, dtype);
    L.v = zeros({batch, kv_heads, capacity_, head_dim}, dtype);
    L.pos.assign(slots, 0);
    L.score.assign(slots, 0.0);
    layers_.push_back(std::move(L));
  }
}

const SelectiveKVCache::Layer& SelectiveKVCache::layer_at(int64_t layer) const {
  return layers_[size_t(checked_layer(layer))];
}

std::vector<int64_t> SelectiveKVCache::positions(int64_t layer) const {
  return std::vector<int64_t>(size_t(batch_), layer_at(layer).appended);
}
int64_t SelectiveKVCache::length(int64_t layer) const { return layer_at(layer).n; }

void SelectiveKVCache::append(int64_t layer, const Tensor& k, const Tensor& v) {
  detail::check_append(name(), layer, num_layers(), k, v, batch_, kv_heads_, head_dim_);
  Layer& L = layers_[size_t(layer)];
  const int64_t T = k.size(1);
  ATTNLAB_CHECK(T <= cfg_.max_append, name(), "::append: ", T, " positions at once, at most max_append ",
                cfg_.max_append, " (split the input)");
  // [B, T, Hkv, D] -> slots n..n+T-1 of [B, Hkv, capacity, D]
  ops::copy_(ops::narrow(L.k, 2, L.n, T), ops::permute(k, {0, 2, 1, 3}));
  ops::copy_(ops::narrow(L.v, 2, L.n, T), ops::permute(v, {0, 2, 1, 3}));
  for (int64_t bg = 0; bg < batch_ * kv_heads_; ++bg)
    for (int64_t t = 0; t < T; ++t) {
      L.pos[size_t(bg * capacity_ + L.n + t)] = L.appended + t;
      L.score[size_t(bg * capacity_ + L.n + t)] = 0.0;
    }
  L.n += T;
  L.appended += T;
}

CacheAttentionResult SelectiveKVCache::attend(int64_t layer, const Tensor& q, const CacheAttentionOptions& opt) {
  detail::check_query(name(), q, batch_, kv_heads_, head_dim_, dtype_);
  Layer& L = layers_[size_t(checked_layer(layer))];
  const std::vector<int64_t> lengths(size_t(batch_), L.n), positions_b(size_t(batch_), L.appended);
  CacheAttentionOptions with_probs = opt;
  with_probs.return_weights = true;  // the scores need them
  CacheAttentionResult res;
  dispatch_float(dtype_, "SelectiveKVCache::attend", [&]<class T>() {
    kernels::DenseKVReader<T> r;
    r.k = L.k.data<T>(), r.v = L.v.data<T>();
    r.stride_b = kv_heads_ * capacity_ * head_dim_, r.stride_h = capacity_ * head_dim_, r.stride_s = head_dim_;
    r.D = head_dim_, r.capacity = capacity_, r.Hkv = kv_heads_;
    r.lengths = lengths.data(), r.positions_b = positions_b.data();
    r.positions = L.pos.data(), r.pos_stride = capacity_;
    res = detail::decode<T>(name(), q, r, kv_heads_, L.n, with_probs);
  });
  update_scores(L, res.weights, q.size(1));
  evict(L);
  if (!opt.return_weights) res.weights = Tensor();
  return res;
}

void SelectiveKVCache::update_scores(Layer& L, const Tensor& probs, int64_t Tq) {
  if (cfg_.strategy == RetentionStrategy::recency) return;
  const std::vector<double> p = probs.to_vector<double>();  // [B, H, Tq, n]
  const int64_t H = probs.size(1), G = H / kv_heads_, n = L.n;
  for (int64_t b = 0; b < batch_; ++b)
    for (int64_t g = 0; g < kv_heads_; ++g) {
      double* score = L.score.data() + (b * kv_heads_ + g) * capacity_;
      for (int64_t hh = 0; hh < G; ++hh)
        for (int64_t i = 0; i < Tq; ++i) {
          const double* row = p.data() + ((b * H + g * G + hh) * Tq + i) * n;
          if (cfg_.strategy == RetentionStrategy::entropy) {  // the new position i's own attention row
            double h = 0;
            for (int64_t j = 0; j < n; ++j)
              if (row[j] > 0) h -= row[j] * std::log(row[j]);
            score[n - Tq + i] += h / double(G);
          } else {  // attention received, pooled over the group
            for (int64_t j = 0; j < n; ++j) score[j] += row[j] / double(G);
          }
        }
    }
}

void SelectiveKVCache::evict(Layer& L) {
  const int64_t drop = L.n - cfg_.max_size;
  if (drop <= 0) return;
  const int64_t newest = L.appended - 1;
  const size_t row_bytes = size_t(head_dim_) * itemsize(dtype_);
  auto* kbase = static_cast<char*>(L.k.raw_data());
  auto* vbase = static_cast<char*>(L.v.raw_data());
  std::vector<int64_t> candidates;
  std::vector<double> importance(size_t(L.n));
  std::vector<char> keep(size_t(L.n));
  for (int64_t bg = 0; bg < batch_ * kv_heads_; ++bg) {
    int64_t* pos = L.pos.data() + bg * capacity_;
    double* score = L.score.data() + bg * capacity_;
    const double max_score = std::max(*std::max_element(score, score + L.n), 1e-300);
    candidates.clear();
    for (int64_t j = 0; j < L.n; ++j) {
      switch (cfg_.strategy) {
        case RetentionStrategy::recency: importance[size_t(j)] = double(pos[j]); break;
        case RetentionStrategy::hybrid:
          importance[size_t(j)] = 0.7 * score[j] / max_score + 0.3 * double(pos[j]) / double(std::max<int64_t>(newest, 1));
          break;
        default: importance[size_t(j)] = score[j];
      }
      keep[size_t(j)] = 1;
      if (pos[j] >= cfg_.sinks && pos[j] <= newest - cfg_.recent) candidates.push_back(j);
    }
    // The `drop` least important candidates go; ties evict the older position (stable by slot order).
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&](int64_t a, int64_t b) { return importance[size_t(a)] < importance[size_t(b)]; });
    for (int64_t i = 0; i < drop; ++i) keep[size_t(candidates[size_t(i)])] = 0;
    // Compact in place, keeping temporal order.
    int64_t w = 0;
    for (int64_t j = 0; j < L.n; ++j) {
      if (!keep[size_t(j)]) continue;
      if (w != j) {
        std::memcpy(kbase + size_t(bg * capacity_ + w) * row_bytes, kbase + size_t(bg * capacity_ + j) * row_bytes, row_bytes);
        std::memcpy(vbase + size_t(bg * capacity_ + w) * row_bytes, vbase + size_t(bg * capacity_ + j) * row_bytes, row_bytes);
        pos[w] = pos[j];
        score[w] = score[j];
      }
      ++w;
    }
  }
  L.n = cfg_.max_size;
}

std::vector<int64_t> SelectiveKVCache::held_positions(int64_t layer, int64_t b, int64_t g) const {
  const Layer& L = layer_at(layer);
  const int64_t* p = L.pos.data() + (b * kv_heads_ + g) * capacity_;
  return {p, p + L.n};
}

std::vector<double> SelectiveKVCache::scores(int64_t layer, int64_t b, int64_t g) const {
  const Layer& L = layer_at(layer);
  const double* s = L.score.data() + (b * kv_heads_ + g) * capacity_;
  return {s, s + L.n};
}

void SelectiveKVCache::clear() {
  for (Layer& L : layers_) L.n = L.appended = 0;
}

int64_t SelectiveKVCache::bytes_used() const {
  int64_t n = 0;
  for (const Layer& L : layers_) n += L.n;
  return n * 2 * batch_ * kv_heads_ * head_dim_ * int64_t(itemsize(dtype_));
}

int64_t SelectiveKVCache::bytes_reserved() const {
  return num_layers() * 2 * batch_ * kv_heads_ * capacity_ * head_dim_ * int64_t(itemsize(dtype_));
}

std::string SelectiveKVCache::name() const {
  return cat("SelectiveKVCache(", to_string(cfg_.strategy), ", max ", cfg_.max_size, ", sinks ", cfg_.sinks, ")");
}

}  // namespace attnlab::nn
