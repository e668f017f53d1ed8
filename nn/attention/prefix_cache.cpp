#include "nn/attention/prefix_cache.h"

#include <algorithm>

#include "kernels/cpu/attention_params.h"
#include "tensor/ops.h"

namespace attnlab::nn {

PrefixCache::PrefixCache(std::shared_ptr<PagedKVPool> pool, int64_t byte_budget)
    : pool_(std::move(pool)), budget_(byte_budget) {
  ATTNLAB_CHECK(pool_ != nullptr, "PrefixCache: needs a pool");
  ATTNLAB_CHECK(byte_budget >= 0, "PrefixCache: byte_budget must be >= 0, got ", byte_budget);
}

double PrefixCache::hit_rate() const {
  const int64_t n = hit_blocks_ + miss_blocks_;
  return n > 0 ? double(hit_blocks_) / double(n) : 0.0;
}

std::vector<std::pair<uint64_t, std::vector<unsigned char>>> PrefixCache::block_keys(const Tensor& x0) const {
  ATTNLAB_CHECK(x0.dim() == 2 && x0.size(0) >= 1 && is_floating(x0.dtype()), "PrefixCache: input ", describe(x0),
                " must be the rows of one request, [T, F]");
  const Tensor x = ops::contiguous(x0);
  const int64_t bs = pool_->block_size(), row = x.size(1) * int64_t(itemsize(x.dtype()));
  const auto* bytes = static_cast<const unsigned char*>(x.raw_data());
  // The root depends on the row layout, so inputs of another width or dtype never match.
  uint64_t h = kernels::splitmix64(uint64_t(x.size(1)) * 16 + uint64_t(x.dtype()));
  std::vector<std::pair<uint64_t, std::vector<unsigned char>>> keys;
  for (int64_t b = 0; (b + 1) * bs <= x.size(0); ++b) {
    std::vector<unsigned char> block(bytes + b * bs * row, bytes + (b + 1) * bs * row);
    // FNV-1a over the block's bytes, seeded with the parent's hash, then mixed.
    uint64_t f = h ^ 0xcbf29ce484222325ull;
    for (unsigned char c : block) f = (f ^ c) * 0x100000001b3ull;
    h = kernels::splitmix64(f);
    keys.emplace_back(h, std::move(block));
  }
  return keys;
}

void PrefixCache::touch(Entry& e, uint64_t key) {
  lru_.erase(e.lru);
  lru_.push_front(key);
  e.lru = lru_.begin();
}

PrefixCache::Lookup PrefixCache::begin(const Tensor& x) {
  const auto keys = block_keys(x);
  const size_t usable = std::min(keys.size(), size_t((x.size(0) - 1) / pool_->block_size()));
  ++lookups_;
  std::vector<int32_t> blocks;
  std::vector<uint64_t> hit;
  for (size_t i = 0; i < usable; ++i) {
    auto it = entries_.find(keys[i].first);
    if (it == entries_.end() || it->second.rows != keys[i].second) break;
    blocks.push_back(it->second.block);
    hit.push_back(keys[i].first);
  }
  for (auto k = hit.rbegin(); k != hit.rend(); ++k) touch(entries_.at(*k), *k);  // root ends most recent
  hit_blocks_ += int64_t(blocks.size());
  miss_blocks_ += int64_t(usable - blocks.size());
  Lookup out;
  out.seq = pool_->add_sequence(blocks);
  out.cached = int64_t(blocks.size()) * pool_->block_size();
  return out;
}

void PrefixCache::commit(PagedKVPool::SeqId seq, const Tensor& x) {
  const auto keys = block_keys(x);
  for (int64_t l = 0; l < pool_->num_layers(); ++l)
    ATTNLAB_CHECK(pool_->position(seq, l) >= int64_t(keys.size()) * pool_->block_size(), "PrefixCache::commit: ",
                  "sequence ", seq, " holds ", pool_->position(seq, l), " positions in layer ", l, ", fewer than ",
                  "the input's full blocks");
  const auto& table = pool_->block_table(seq);
  for (size_t i = keys.size(); i-- > 0;) {  // last block first, so the root ends most recent
    const uint64_t key = keys[i].first;
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      if (it->second.rows == keys[i].second) touch(it->second, key);
      continue;  // a colliding key keeps its first owner
    }
    pool_->retain(table[i]);
    lru_.push_front(key);
    entries_.emplace(key, Entry{table[i], keys[i].second, lru_.begin()});
  }
  evict_over_budget();
}

void PrefixCache::evict_over_budget() {
  while (!lru_.empty() && bytes() > budget_) {
    const uint64_t key = lru_.back();
    lru_.pop_back();
    pool_->release(entries_.at(key).block);
    entries_.erase(key);
    ++evictions_;
  }
}

}  // namespace attnlab::nn
