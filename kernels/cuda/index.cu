// Indexing kernels: index_select (embedding lookup), index_add (its backward), gather, scatter_add.
// An out-of-range index cannot throw on the GPU: the kernel skips it and counts it in a small device
// status word, which the host reads back (a synchronisation point); the caller then finds the first bad
// index in its own copy of the index to name it (which thread saw a bad index first is not defined).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/runtime.h"

namespace attnlab::kernels::cuda {

namespace {

struct Status {
  unsigned long long bad = 0;  // number of out-of-range index reads
};

__device__ __forceinline__ int64_t load_index(const void* idx, DType t, int64_t i) {
  return t == DType::i64 ? static_cast<const int64_t*>(idx)[i] : int64_t(static_cast<const int32_t*>(idx)[i]);
}

__device__ __forceinline__ bool valid(int64_t j, int64_t n, Status* status) {
  if (j >= 0 && j < n) return true;
  atomicAdd(&status->bad, 1ull);
  return false;
}

// A device status word for one call, and the read-back at the end.
class StatusWord {
 public:
  explicit StatusWord(int device) : device_(device) {
    p_ = static_cast<Status*>(device_alloc(sizeof(Status), device));
    memset_zero(p_, sizeof(Status), device);
  }
  ~StatusWord() { device_free(p_, sizeof(Status), device_); }
  Status* get() const { return p_; }
  bool ok() const {
    Status h;
    copy_to_host(&h, p_, sizeof(Status), device_);
    return h.bad == 0;
  }

 private:
  int device_;
  Status* p_;
};

#define ATTNLAB_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// Rows of a [outer, n, inner] array picked by idx, against a compact [outer, n_idx, inner] one:
//   select: compact[e] = rows[o, idx[i], k]   (T: a word of the element's size)
//   add:    rows[o, idx[i], k] += compact[e]  (atomic; T: f32/f64)
template <class T, bool kAdd>
__global__ void index_rows_kernel(T* rows, T* compact, const void* idx, DType it, int64_t outer, int64_t n,
                                  int64_t n_idx, int64_t inner, Status* status) {
  const int64_t total = outer * n_idx * inner;
  ATTNLAB_GRID_STRIDE(e, total) {
    const int64_t k = e % inner, rest = e / inner, i = rest % n_idx, o = rest / n_idx;
    const int64_t j = load_index(idx, it, i);
    if (!valid(j, n, status)) continue;
    T* r = rows + (o * n + j) * inner + k;
    if constexpr (kAdd) atomicAdd(r, compact[e]);
    else compact[e] = *r;
  }
}

// Offsets of position p of the index tensor in big (dim replaced by index[p]), in src/out and in index.
struct IndexGeometry {
  int ndim, dim;
  int64_t size[kMaxDims];
  int64_t big[kMaxDims], other[kMaxDims], index[kMaxDims];
};

template <class T, bool kScatter>
__global__ void gather_scatter_kernel(IndexGeometry g, int64_t total, T* big, T* other, const void* idx, DType it,
                                      int64_t n, Status* status) {
  ATTNLAB_GRID_STRIDE(p, total) {
    int64_t rem = p, ob = 0, oo = 0, oi = 0;
    for (int d = g.ndim - 1; d >= 0; --d) {
      const int64_t c = rem % g.size[d];
      rem /= g.size[d];
      if (d != g.dim) ob += c * g.big[d];
      oo += c * g.other[d];
      oi += c * g.index[d];
    }
    const int64_t j = load_index(idx, it, oi);
    if (!valid(j, n, status)) continue;
    ob += j * g.big[g.dim];
    if constexpr (kScatter) atomicAdd(big + ob, other[oo]);
    else other[p] = big[ob];  // out is contiguous in the index's shape
  }
}

IndexGeometry index_geometry(const Operand& big, const Operand& other, const Operand& index, const Extent& e,
                             int dim) {
  IndexGeometry g{};
  g.ndim = e.ndim;
  g.dim = dim;
  for (int d = 0; d < e.ndim; ++d) {
    g.size[d] = e.size[d];
    g.big[d] = big.stride[d];
    g.other[d] = other.stride[d];
    g.index[d] = index.stride[d];
  }
  return g;
}

}  // namespace

bool index_select(DType dtype, void* out, const void* in, DType idx_dtype, const void* idx, int64_t outer,
                  int64_t n_in, int64_t n_idx, int64_t inner, int device) {
  const int64_t total = outer * n_idx * inner;
  if (total == 0) return true;
  StatusWord status(device);
  dispatch_word(dtype, [&](auto w) {
    using W = decltype(w);
    index_rows_kernel<W, false><<<grid_for(total), kThreads, 0, current_stream(device)>>>(
        static_cast<W*>(const_cast<void*>(in)), static_cast<W*>(out), idx, idx_dtype, outer, n_in, n_idx, inner,
        status.get());
  });
  ATTNLAB_CUDA_CHECK_LAUNCH();
  return status.ok();
}

bool index_add(DType dtype, void* out, const void* src, DType idx_dtype, const void* idx, int64_t outer,
               int64_t n_out, int64_t n_idx, int64_t inner, int device) {
  const int64_t total = outer * n_idx * inner;
  if (total == 0) return true;
  StatusWord status(device);
  dispatch_f32_f64(dtype, "index_add", [&](auto tag) {
    using T = decltype(tag);
    index_rows_kernel<T, true><<<grid_for(total), kThreads, 0, current_stream(device)>>>(
        static_cast<T*>(out), static_cast<T*>(const_cast<void*>(src)), idx, idx_dtype, outer, n_out, n_idx, inner,
        status.get());
  });
  ATTNLAB_CUDA_CHECK_LAUNCH();
  return status.ok();
}

bool gather(DType dtype, void* out, const Operand& big, const Operand& index, const Extent& e, int dim, int64_t n,
            int device) {
  const int64_t total = numel(e);
  if (total == 0) return true;
  StatusWord status(device);
  Operand contiguous_out;  // strides unused: out is written at p
  const IndexGeometry g = index_geometry(big, contiguous_out, index, e, dim);
  dispatch_word(dtype, [&](auto w) {
    using W = decltype(w);
    gather_scatter_kernel<W, false><<<grid_for(total), kThreads, 0, current_stream(device)>>>(
        g, total, static_cast<W*>(big.data), static_cast<W*>(out), index.data, index.dtype, n, status.get());
  });
  ATTNLAB_CUDA_CHECK_LAUNCH();
  return status.ok();
}

bool scatter_add(DType dtype, const Operand& big, const Operand& src, const Operand& index, const Extent& e,
                 int dim, int64_t n, int device) {
  const int64_t total = numel(e);
  if (total == 0) return true;
  StatusWord status(device);
  const IndexGeometry g = index_geometry(big, src, index, e, dim);
  dispatch_f32_f64(dtype, "scatter_add", [&](auto tag) {
    using T = decltype(tag);
    gather_scatter_kernel<T, true><<<grid_for(total), kThreads, 0, current_stream(device)>>>(
        g, total, static_cast<T*>(big.data), static_cast<T*>(src.data), index.data, index.dtype, n, status.get());
  });
  ATTNLAB_CUDA_CHECK_LAUNCH();
  return status.ok();
}

}  // namespace attnlab::kernels::cuda
