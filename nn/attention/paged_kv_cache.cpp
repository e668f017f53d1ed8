#include "nn/attention/paged_kv_cache.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <set>

#include "nn/attention/cache_attention.h"
#include "tensor/creation.h"
#include "tensor/ops.h"

namespace attnlab::nn {

PagedKVPool::PagedKVPool(int64_t num_layers, int64_t num_blocks, int64_t kv_heads, int64_t head_dim,
                         int64_t block_size, DType dtype)
    : num_blocks_(num_blocks), block_size_(block_size), kv_heads_(kv_heads), head_dim_(head_dim), dtype_(dtype) {
  ATTNLAB_CHECK(num_layers > 0 && num_blocks > 0 && kv_heads > 0 && head_dim > 0, "PagedKVPool: sizes must be ",
                "positive (layers ", num_layers, ", blocks ", num_blocks, ", kv_heads ", kv_heads, ", head_dim ",
                head_dim, ")");
  ATTNLAB_CHECK(block_size > 0 && std::has_single_bit(uint64_t(block_size)), "PagedKVPool: block_size must be a ",
                "power of two, got ", block_size);
  ATTNLAB_CHECK(num_blocks < (int64_t(1) << 31), "PagedKVPool: at most 2^31 - 1 blocks, got ", num_blocks);
  ATTNLAB_CHECK(dtype == DType::f32 || dtype == DType::f64, "PagedKVPool: dtype must be f32 or f64, got ",
                dtype_name(dtype));
  block_shift_ = std::countr_zero(uint64_t(block_size));
  for (int64_t l = 0; l < num_layers; ++l) {
    k_.push_back(zeros({num_blocks, kv_heads, block_size, head_dim}, dtype));
    v_.push_back(zeros({num_blocks, kv_heads, block_size, head_dim}, dtype));
  }
  refs_.assign(size_t(num_blocks), 0);
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));  // block 0 is handed out first
}

int64_t PagedKVPool::bytes_per_block() const {
  return 2 * num_layers() * kv_heads_ * block_size_ * head_dim_ * int64_t(itemsize(dtype_));
}

PagedKVPool::Sequence& PagedKVPool::seq(SeqId id) {
  auto it = seqs_.find(id);
  ATTNLAB_CHECK(it != seqs_.end(), "PagedKVPool: no sequence ", id);
  return it->second;
}
const PagedKVPool::Sequence& PagedKVPool::seq(SeqId id) const { return const_cast<PagedKVPool*>(this)->seq(id); }

PagedKVPool::SeqId PagedKVPool::add_sequence() { return add_sequence(std::vector<int32_t>{}); }

PagedKVPool::SeqId PagedKVPool::add_sequence(const std::vector<int32_t>& blocks) {
  for (int32_t b : blocks)
    ATTNLAB_CHECK(b >= 0 && b < num_blocks_ && refs_[size_t(b)] > 0, "PagedKVPool::add_sequence: block ", b,
                  " is not a live block");
  Sequence s;
  s.table = blocks;
  s.pos.assign(size_t(num_layers()), int64_t(blocks.size()) * block_size_);
  for (int32_t b : blocks) retain(b);
  seqs_.emplace(next_id_, std::move(s));
  return next_id_++;
}

PagedKVPool::SeqId PagedKVPool::fork(SeqId parent) {
  const Sequence& p = seq(parent);
  ATTNLAB_CHECK(std::all_of(p.pos.begin(), p.pos.end(), [&](int64_t x) { return x == p.pos[0]; }),
                "PagedKVPool::fork: sequence ", parent, " is in the middle of a step (layers at different positions)");
  Sequence child = p;
  for (int32_t b : child.table) retain(b);
  seqs_.emplace(next_id_, std::move(child));
  return next_id_++;
}

void PagedKVPool::free_sequence(SeqId id) {
  reset_sequence(id);
  seqs_.erase(id);
}

void PagedKVPool::reset_sequence(SeqId id) {
  Sequence& s = seq(id);
  for (int32_t b : s.table) release(b);
  s.table.clear();
  std::fill(s.pos.begin(), s.pos.end(), 0);
}

void PagedKVPool::retain(int32_t block) {
  ATTNLAB_CHECK(block >= 0 && block < num_blocks_, "PagedKVPool: block ", block, " out of range");
  ++refs_[size_t(block)];
}

void PagedKVPool::release(int32_t block) {
  ATTNLAB_CHECK(block >= 0 && block < num_blocks_ && refs_[size_t(block)] > 0, "PagedKVPool: release of free block ",
                block);
  if (--refs_[size_t(block)] == 0) free_.push_back(block);
}

int32_t PagedKVPool::take_block() {
  const int32_t b = free_.back();  // callers check availability first
  free_.pop_back();
  refs_[size_t(b)] = 1;
  return b;
}

int64_t PagedKVPool::blocks_needed(SeqId id, int64_t layer, int64_t t) const {
  return blocks_needed(seq(id), position(id, layer), t);
}

int64_t PagedKVPool::blocks_needed(const Sequence& s, int64_t pos, int64_t t) const {
  const int64_t have = int64_t(s.table.size());
  const int64_t need = (pos + t + block_size_ - 1) >> block_shift_;
  int64_t n = std::max<int64_t>(0, need - have);
  for (int64_t i = pos >> block_shift_; i < std::min(have, need); ++i)
    if (refs_[size_t(s.table[size_t(i)])] > 1) ++n;  // shared: copied before the write
  return n;
}

void PagedKVPool::copy_block(int32_t dst, int32_t src) {
  const int64_t n = kv_heads_ * block_size_ * head_dim_ * int64_t(itemsize(dtype_));
  for (int64_t l = 0; l < num_layers(); ++l)
    for (const Tensor* pool : {&k_[size_t(l)], &v_[size_t(l)]}) {
      auto* base = static_cast<char*>(pool->raw_data());
      std::memcpy(base + dst * n, base + src * n, size_t(n));
    }
}

void PagedKVPool::reserve(SeqId id, int64_t num_positions) {
  Sequence& s = seq(id);
  const int64_t need = ((num_positions + block_size_ - 1) >> block_shift_) - int64_t(s.table.size());
  ATTNLAB_CHECK(need <= num_free_blocks(), "PagedKVPool: pool exhausted: sequence ", id, " needs ", need,
                " more blocks for ", num_positions, " positions, ", num_free_blocks(), " of ", num_blocks_, " are free");
  for (int64_t i = 0; i < need; ++i) s.table.push_back(take_block());
}

void PagedKVPool::append(SeqId id, int64_t layer, const Tensor& k0, const Tensor& v0) {
  Sequence& s = seq(id);
  ATTNLAB_CHECK(layer >= 0 && layer < num_layers(), "PagedKVPool::append: layer ", layer, " out of range (",
                num_layers(), " layers)");
  ATTNLAB_CHECK(k0.dim() == 3 && k0.size(0) >= 1 && k0.size(1) == kv_heads_ && k0.size(2) == head_dim_ &&
                    v0.shape() == k0.shape(),
                "PagedKVPool::append: k ", describe(k0), " and v ", describe(v0), " must be [T, ", kv_heads_, ", ",
                head_dim_, "]");
  const int64_t t = k0.size(0), pos = s.pos[size_t(layer)];
  const int64_t need = blocks_needed(s, pos, t);
  ATTNLAB_CHECK(need <= num_free_blocks(), "PagedKVPool: pool exhausted: sequence ", id, " needs ", need,
                " more blocks to append ", t, " positions at ", pos, ", ", num_free_blocks(), " of ", num_blocks_,
                " are free");
  // Copy-on-write: a shared block this append writes into becomes private first.
  for (int64_t i = pos >> block_shift_; i < int64_t(s.table.size()) && i * block_size_ < pos + t; ++i) {
    int32_t& b = s.table[size_t(i)];
    if (refs_[size_t(b)] == 1) continue;
    const int32_t copy = take_block();
    copy_block(copy, b);
    release(b);
    b = copy;
  }
  reserve(id, pos + t);
  const Tensor k = ops::to_dtype(ops::contiguous(k0), dtype_), v = ops::to_dtype(ops::contiguous(v0), dtype_);
  const size_t row = size_t(head_dim_) * itemsize(dtype_);
  const auto* ks = static_cast<const char*>(k.raw_data());
  const auto* vs = static_cast<const char*>(v.raw_data());
  auto* kd = static_cast<char*>(k_[size_t(layer)].raw_data());
  auto* vd = static_cast<char*>(v_[size_t(layer)].raw_data());
  for (int64_t i = 0; i < t; ++i) {
    const int64_t p = pos + i, block = s.table[size_t(p >> block_shift_)], off = p & (block_size_ - 1);
    for (int64_t g = 0; g < kv_heads_; ++g) {
      const size_t dst = size_t((block * kv_heads_ + g) * block_size_ + off) * row, src = size_t(i * kv_heads_ + g) * row;
      std::memcpy(kd + dst, ks + src, row);
      std::memcpy(vd + dst, vs + src, row);
    }
  }
  s.pos[size_t(layer)] = pos + t;
}

int64_t PagedKVPool::position(SeqId id, int64_t layer) const {
  ATTNLAB_CHECK(layer >= 0 && layer < num_layers(), "PagedKVPool: layer ", layer, " out of range");
  return seq(id).pos[size_t(layer)];
}

const std::vector<int32_t>& PagedKVPool::block_table(SeqId id) const { return seq(id).table; }

// ---- PagedKVCache -------------------------------------------------------------------------------------

PagedKVCache::PagedKVCache(std::shared_ptr<PagedKVPool> pool, std::vector<PagedKVPool::SeqId> seqs)
    : pool_(std::move(pool)), seqs_(std::move(seqs)) {
  ATTNLAB_CHECK(pool_ != nullptr && !seqs_.empty(), "PagedKVCache: needs a pool and at least one sequence");
  for (auto s : seqs_) ATTNLAB_CHECK(pool_->has_sequence(s), "PagedKVCache: the pool has no sequence ", s);
  ATTNLAB_CHECK(std::set<PagedKVPool::SeqId>(seqs_.begin(), seqs_.end()).size() == seqs_.size(),
                "PagedKVCache: a sequence appears twice in the batch");
}

std::vector<int64_t> PagedKVCache::positions(int64_t layer) const {
  std::vector<int64_t> p;
  for (auto s : seqs_) p.push_back(pool_->position(s, layer));
  return p;
}

int64_t PagedKVCache::length(int64_t layer) const {
  const auto p = positions(layer);
  return *std::max_element(p.begin(), p.end());
}

void PagedKVCache::append(int64_t layer, const Tensor& k, const Tensor& v) {
  detail::check_append(name(), layer, num_layers(), k, v, batch(), pool_->kv_heads(), pool_->head_dim());
  // All rows or none: check the free blocks for the whole batch before the first write (an upper
  // bound: rows sharing a block both count its copy, though only the first writer copies it).
  int64_t need = 0;
  for (auto s : seqs_) need += pool_->blocks_needed(s, layer, k.size(1));
  ATTNLAB_CHECK(need <= pool_->num_free_blocks(), "PagedKVPool: pool exhausted: the batch needs ", need,
                " more blocks to append ", k.size(1), " positions per sequence, ", pool_->num_free_blocks(), " of ",
                pool_->num_blocks(), " are free");
  for (size_t b = 0; b < seqs_.size(); ++b) pool_->append(seqs_[b], layer, ops::select(k, 0, int64_t(b)),
                                                          ops::select(v, 0, int64_t(b)));
}

CacheAttentionResult PagedKVCache::attend(int64_t layer, const Tensor& q, const CacheAttentionOptions& opt) {
  detail::check_query(name(), q, batch(), pool_->kv_heads(), pool_->head_dim(), pool_->dtype());
  std::vector<int64_t> lengths = positions(layer);
  std::vector<const int32_t*> tables;
  for (auto s : seqs_) tables.push_back(pool_->block_table(s).data());
  const int64_t max_len = *std::max_element(lengths.begin(), lengths.end());
  auto run = [&]<class T>() {
    kernels::PagedKVReader<T> r;
    r.k_pool = pool_->k_pool(layer).data<T>();
    r.v_pool = pool_->v_pool(layer).data<T>();
    r.Hkv = pool_->kv_heads(), r.D = pool_->head_dim();
    r.block_shift = std::countr_zero(uint64_t(pool_->block_size()));
    r.block_tables = tables.data();
    r.lengths = lengths.data();
    return detail::decode<T>(name(), q, r, pool_->kv_heads(), max_len, opt);
  };
  return pool_->dtype() == DType::f64 ? run.template operator()<double>() : run.template operator()<float>();
}

void PagedKVCache::clear() {
  for (auto s : seqs_) pool_->reset_sequence(s);
}

int64_t PagedKVCache::bytes_used() const {
  std::set<int32_t> blocks;
  for (auto s : seqs_) blocks.insert(pool_->block_table(s).begin(), pool_->block_table(s).end());
  return int64_t(blocks.size()) * pool_->bytes_per_block();
}

int64_t PagedKVCache::bytes_reserved() const { return pool_->bytes_reserved(); }

std::string PagedKVCache::name() const {
  return cat("PagedKVCache(", dtype_name(pool_->dtype()), ", block ", pool_->block_size(), ")");
}

}  // namespace attnlab::nn
