#include "nn/attention/kv_cache.h"

#include "tensor/creation.h"
#include "tensor/ops.h"

namespace attnlab::nn {

ContiguousKVCache::ContiguousKVCache(int64_t num_layers, int64_t batch, int64_t max_len, int64_t kv_heads,
                                     int64_t head_dim, DType dtype)
    : batch_(batch), max_len_(max_len), kv_heads_(kv_heads), head_dim_(head_dim), dtype_(dtype) {
  ATTNLAB_CHECK(num_layers > 0 && batch > 0 && max_len > 0 && kv_heads > 0 && head_dim > 0,
                "ContiguousKVCache: all sizes must be positive (layers ", num_layers, ", batch ", batch,
                ", max_len ", max_len, ", kv_heads ", kv_heads, ", head_dim ", head_dim, ")");
  for (int64_t l = 0; l < num_layers; ++l) {
    k_.push_back(zeros({batch, max_len, kv_heads, head_dim}, dtype));
    v_.push_back(zeros({batch, max_len, kv_heads, head_dim}, dtype));
  }
  len_.assign(size_t(num_layers), 0);
}

int64_t ContiguousKVCache::length(int64_t layer) const {
  ATTNLAB_CHECK(layer >= 0 && layer < num_layers(), "KVCache: layer ", layer, " out of range (", num_layers(), " layers)");
  return len_[size_t(layer)];
}

void ContiguousKVCache::append(int64_t layer, const Tensor& k, const Tensor& v) {
  const int64_t n = length(layer);
  const Shape want{batch_, k.dim() == 4 ? k.size(1) : -1, kv_heads_, head_dim_};
  ATTNLAB_CHECK(k.dim() == 4 && k.shape() == want && v.shape() == want, "ContiguousKVCache::append: k ",
                describe(k), " and v ", describe(v), " must be [", batch_, ", T_new, ", kv_heads_, ", ",
                head_dim_, "]");
  const int64_t t = k.size(1);
  ATTNLAB_CHECK(n + t <= max_len_, "ContiguousKVCache::append: ", n, " + ", t, " positions exceed max_len ",
                max_len_, " (layer ", layer, ")");
  ops::copy_(ops::narrow(k_[size_t(layer)], 1, n, t), k);
  ops::copy_(ops::narrow(v_[size_t(layer)], 1, n, t), v);
  len_[size_t(layer)] = n + t;
}

std::pair<Tensor, Tensor> ContiguousKVCache::get(int64_t layer) const {
  const int64_t n = length(layer);
  return {ops::narrow(k_[size_t(layer)], 1, 0, n), ops::narrow(v_[size_t(layer)], 1, 0, n)};
}

void ContiguousKVCache::clear() { std::fill(len_.begin(), len_.end(), 0); }

int64_t ContiguousKVCache::bytes_used() const {
  int64_t s = 0;
  for (int64_t n : len_) s += 2 * batch_ * n * kv_heads_ * head_dim_ * int64_t(itemsize(dtype_));
  return s;
}

int64_t ContiguousKVCache::bytes_reserved() const {
  return 2 * num_layers() * batch_ * max_len_ * kv_heads_ * head_dim_ * int64_t(itemsize(dtype_));
}

}  // namespace attnlab::nn
