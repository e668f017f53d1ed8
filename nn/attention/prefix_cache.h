// Prefix cache (vLLM's automatic prefix caching): requests whose inputs start with a prefix seen
// before reuse that prefix's K/V and compute only the rest.
//
// The unit is a full block of the paged pool (block_size positions). Block i of an input is keyed by
// a chained hash h_i = hash(h_{i-1}, the block's input rows): equal keys mean equal content *and*
// equal history, so a block is reused only after the same prefix. The rows are stored with the entry
// and compared on a hit, so a hash collision can never return wrong K/V. A hit puts the cached blocks
// at the start of a new sequence's block table (shared, reference counted — no copy); the model then
// appends only the suffix.
//
// Valid for causal models only: there a position's K/V depend on it and the positions before it,
// never on later ones. (Without a causal mask every K/V of layers >= 1 depends on the whole input.)
//
// Entries are evicted least recently used first when the cached blocks exceed the byte budget. A hit
// touches a chain from its last block to its first, so a prefix's root is always evicted after its
// descendants and chains never lose their head first. The pool must be large enough for the budget
// plus the sequences in flight (the cache holds references, never more than the budget).
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "nn/attention/paged_kv_cache.h"

namespace attnlab::nn {

class PrefixCache {
 public:
  PrefixCache(std::shared_ptr<PagedKVPool> pool, int64_t byte_budget);

  struct Lookup {
    PagedKVPool::SeqId seq = 0;  // a new sequence of the pool, starting with the cached blocks
    int64_t cached = 0;          // positions already in it; compute x[cached:] next
  };
  // x [T, F]: the input rows of one request. Reuses at most (T - 1) / block_size blocks, so at least
  // the last position is computed (its output is the prediction).
  Lookup begin(const Tensor& x);
  // After all T positions of x are appended to `seq` (every layer): caches its full blocks that are not
  // cached yet, then evicts over budget. The caller still owns (and frees) the sequence.
  void commit(PagedKVPool::SeqId seq, const Tensor& x);

  int64_t hit_blocks() const { return hit_blocks_; }    // blocks reused
  int64_t miss_blocks() const { return miss_blocks_; }  // full blocks looked up and not found
  int64_t lookups() const { return lookups_; }
  int64_t evictions() const { return evictions_; }
  double hit_rate() const;  // hit_blocks / (hit_blocks + miss_blocks), 0 when nothing was looked up
  int64_t entries() const { return int64_t(entries_.size()); }
  int64_t bytes() const { return entries() * pool_->bytes_per_block(); }
  int64_t byte_budget() const { return budget_; }
  PagedKVPool& pool() const { return *pool_; }

 private:
  struct Entry {
    int32_t block;
    std::vector<unsigned char> rows;  // the block's input bytes, compared on every hit
    std::list<uint64_t>::iterator lru;
  };
  // Chained hashes of the full blocks of x, and each block's bytes.
  std::vector<std::pair<uint64_t, std::vector<unsigned char>>> block_keys(const Tensor& x) const;
  void touch(Entry& e, uint64_t key);
  void evict_over_budget();

  std::shared_ptr<PagedKVPool> pool_;
  int64_t budget_;
  std::unordered_map<uint64_t, Entry> entries_;
  std::list<uint64_t> lru_;  // most recently used first
  int64_t hit_blocks_ = 0, miss_blocks_ = 0, lookups_ = 0, evictions_ = 0;
};

}  // namespace attnlab::nn
