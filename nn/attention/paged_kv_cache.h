// Paged KV cache (vLLM's PagedAttention, Kwon et al. 2023): K/V live in a pool of fixed-size blocks
// shared by many sequences; each sequence owns a block table (logical block i -> physical block).
// Memory is taken a block at a time as sequences grow, so nothing is reserved per sequence up front
// and the waste is at most one partial block per sequence.
//
//   pool, per layer:  K, V [num_blocks, Hkv, block_size, D]   (f32 or f64; head-major inside a block
//                     so the decode kernel reads each head's positions contiguously)
//   sequence:         block table + positions appended per layer
//
// Blocks are reference counted. fork() gives a child that shares every block of its parent (prefix
// sharing, e.g. one market context and several what-if continuations); the first append that writes
// into a shared block copies it first (copy-on-write), so neither sequence sees the other's new
// positions. The prefix cache (prefix_cache.h) holds references too.
//
// Errors lose nothing: an append that needs more blocks than are free throws before writing anything
// ("pool exhausted"), naming the sequence, the blocks needed and the pool's size.
//
// PagedKVCache is the KVCache a model decodes through: a batch of sequences of one pool (row b =
// sequence seqs[b]); the rows may have different lengths (ragged batch), and attention reads K/V
// straight from the blocks through the block tables (kernels/cpu/decode_attention.h, PagedKVReader).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "nn/attention/kv_cache.h"

namespace attnlab::nn {

class PagedKVPool {
 public:
  using SeqId = int64_t;

  // block_size must be a power of two (16 by default, as vLLM).
  PagedKVPool(int64_t num_layers, int64_t num_blocks, int64_t kv_heads, int64_t head_dim, int64_t block_size = 16,
              DType dtype = DType::f32);

  SeqId add_sequence();
  // A new sequence whose first blocks are `blocks` (full, already filled for every layer, e.g. from the
  // prefix cache): each gets one more reference; the sequence starts at blocks.size() * block_size.
  SeqId add_sequence(const std::vector<int32_t>& blocks);
  // A child sharing all of the parent's blocks (all layers must be at the same position).
  SeqId fork(SeqId parent);
  void free_sequence(SeqId seq);
  // Releases every block of `seq` and starts it again empty (same id).
  void reset_sequence(SeqId seq);
  bool has_sequence(SeqId seq) const { return seqs_.count(seq) != 0; }
  // Makes sure `seq` has blocks for `num_positions` positions (the seed's allocate_blocks).
  void reserve(SeqId seq, int64_t num_positions);

  // Appends k, v [T, Hkv, D] to one layer of one sequence.
  void append(SeqId seq, int64_t layer, const Tensor& k, const Tensor& v);
  int64_t position(SeqId seq, int64_t layer) const;
  // Free blocks an append of t positions to `layer` of `seq` takes (new blocks and copy-on-write copies).
  int64_t blocks_needed(SeqId seq, int64_t layer, int64_t t) const;
  const std::vector<int32_t>& block_table(SeqId seq) const;

  // For holders other than sequences (the prefix cache).
  void retain(int32_t block);
  void release(int32_t block);
  int32_t ref_count(int32_t block) const { return refs_.at(size_t(block)); }

  int64_t num_layers() const { return int64_t(k_.size()); }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t num_free_blocks() const { return int64_t(free_.size()); }
  int64_t block_size() const { return block_size_; }
  int64_t kv_heads() const { return kv_heads_; }
  int64_t head_dim() const { return head_dim_; }
  DType dtype() const { return dtype_; }
  int64_t bytes_per_block() const;  // K and V of one block over all layers
  int64_t bytes_reserved() const { return num_blocks_ * bytes_per_block(); }
  int64_t bytes_used() const { return (num_blocks_ - num_free_blocks()) * bytes_per_block(); }
  // Pools [num_blocks, Hkv, block_size, D] of one layer.
  const Tensor& k_pool(int64_t layer) const { return k_.at(size_t(layer)); }
  const Tensor& v_pool(int64_t layer) const { return v_.at(size_t(layer)); }

 private:
  struct Sequence {
    std::vector<int32_t> table;
    std::vector<int64_t> pos;  // per layer
  };
  Sequence& seq(SeqId id);
  const Sequence& seq(SeqId id) const;
  int32_t take_block();
  // Blocks an append of t positions at `pos` into s needs: new ones plus copy-on-write copies.
  int64_t blocks_needed(const Sequence& s, int64_t pos, int64_t t) const;
  void copy_block(int32_t dst, int32_t src);

  int64_t num_blocks_, block_size_, block_shift_, kv_heads_, head_dim_;
  DType dtype_;
  std::vector<Tensor> k_, v_;
  std::vector<int32_t> refs_;
  std::vector<int32_t> free_;  // a stack: the most recently freed block is reused first
  std::unordered_map<SeqId, Sequence> seqs_;
  SeqId next_id_ = 0;
};

class PagedKVCache : public KVCache {
 public:
  PagedKVCache(std::shared_ptr<PagedKVPool> pool, std::vector<PagedKVPool::SeqId> seqs);
  int64_t num_layers() const override { return pool_->num_layers(); }
  int64_t batch() const override { return int64_t(seqs_.size()); }
  std::vector<int64_t> positions(int64_t layer) const override;
  int64_t length(int64_t layer) const override;
  void append(int64_t layer, const Tensor& k, const Tensor& v) override;
  CacheAttentionResult attend(int64_t layer, const Tensor& q, const CacheAttentionOptions& opt) override;
  void clear() override;  // frees the sequences' blocks and starts them empty (same ids)
  int64_t bytes_used() const override;      // distinct blocks of this batch's sequences
  int64_t bytes_reserved() const override;  // the whole pool
  std::string name() const override;

  const std::vector<PagedKVPool::SeqId>& sequences() const { return seqs_; }
  PagedKVPool& pool() const { return *pool_; }

 private:
  std::shared_ptr<PagedKVPool> pool_;
  std::vector<PagedKVPool::SeqId> seqs_;
};

}  // namespace attnlab::nn
