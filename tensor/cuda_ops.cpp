#include "tensor/cuda_ops.h"

#include "tensor/creation.h"
#include "tensor/dispatch.h"

namespace attnlab::cuda_ops {

namespace kc = kernels::cuda;

namespace {

bool is_half(DType t) { return t == DType::bf16 || t == DType::f16; }

kc::Operand operand(const Tensor& t) {
  kc::Operand o;
  o.dtype = t.dtype();
  if (is_host_scalar(t)) o.scalar = t.item<double>();  // a constant, data stays null
  else o.data = t.raw_data();
  return o;
}

// Strides of `t` broadcast to `shape` (all 0 for a host scalar).
Strides strides_in(const Tensor& t, const Shape& shape) {
  if (is_host_scalar(t)) return Strides(shape.size(), 0);
  return broadcast_strides(t.shape(), t.strides(), shape);
}

// Merges the dims of `shape` that every operand walks contiguously (StridedLoop's rule) and stores the
// resulting per-operand strides into the operands.
template <size_t N>
kc::Extent coalesce(const char* op, const Shape& shape, const std::array<Strides, N>& strides,
                    const std::array<kc::Operand*, N>& operands) {
  const StridedLoop<N> loop(shape, strides);
  ATTNLAB_CHECK(loop.shape.size() <= size_t(kc::kMaxDims), op, ": ", loop.shape.size(),
                " dims that cannot be merged, more than the ", kc::kMaxDims,
                " the CUDA kernels take; make the inputs contiguous first");
  kc::Extent e;
  e.ndim = int(loop.shape.size());
  for (int d = 0; d < e.ndim; ++d) {
    e.size[d] = loop.shape[size_t(d)];
    for (size_t k = 0; k < N; ++k) operands[k]->stride[d] = loop.strides[k][size_t(d)];
  }
  return e;
}

int64_t numel_of(const kc::Extent& e) {
  int64_t n = 1;
  for (int d = 0; d < e.ndim; ++d) n *= e.size[d];
  return n;
}

// True when two elements of t share memory (a broadcast view written in place).
bool overlaps_itself(const Tensor& t) {
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.strides()[size_t(d)] == 0 && t.shape()[size_t(d)] > 1) return true;
  return false;
}

void run_binary(ops::BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b, double alpha) {
  kc::Operand o = operand(out), oa = operand(a), ob = operand(b);
  const kc::Extent e = coalesce<3>("binary", out.shape(), {out.strides(), strides_in(a, out.shape()),
                                                            strides_in(b, out.shape())},
                                   {&o, &oa, &ob});
  if (numel_of(e)) kc::binary(op, e, o, oa, ob, alpha, out.device().index);
}

// After an index kernel: throws naming the first bad index (ops::index_error reads `index` back) when the
// kernel flagged one. The kernel's return value is taken before the check, never as an argument beside
// values it writes: the order in which a call's arguments are evaluated is unspecified (an earlier
// version passed the bad value next to the call that set it and reported "index 0" on GPUs).
void check_index(bool ok, const char* op, const Tensor& index, int64_t dim, int64_t n) {
  if (!ok) throw ops::index_error(op, index, dim, n);
}

// The index tensor on the device of `t`, contiguous.
Tensor index_on(const Tensor& index, const Tensor& t) { return ops::contiguous(ops::to_device(index, t.device())); }

}  // namespace

void copy_(const Tensor& dst, const Tensor& src) {
  kc::Operand od = operand(dst), os = operand(src);
  const kc::Extent e = coalesce<2>("copy_", dst.shape(), {dst.strides(), strides_in(src, dst.shape())},
                                   {&od, &os});
  if (numel_of(e)) kc::copy(e, od, os, dst.device().index);
}

void fill_(const Tensor& t, double value) {
  kc::Operand od = operand(t), os;
  os.scalar = value;
  const kc::Extent e = coalesce<2>("fill_", t.shape(), {t.strides(), Strides(size_t(t.dim()), 0)}, {&od, &os});
  if (numel_of(e)) kc::copy(e, od, os, t.device().index);
}

Tensor binary(ops::BinaryOp op, const Tensor& a, const Tensor& b, double alpha) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "binary");
  Tensor out = Tensor::empty(shape, a.dtype(), result_device(a, b));
  run_binary(op, out, a, b, alpha);
  return out;
}

void binary_(ops::BinaryOp op, const Tensor& t, const Tensor& other, double alpha) {
  const bool aliased = !is_host_scalar(other) && other.storage() == t.storage() &&
                       (other.offset() != t.offset() || other.strides() != t.strides());
  if (overlaps_itself(t) || aliased) {
    copy_(t, binary(op, t, other, alpha));
    return;
  }
  run_binary(op, t, t, other, alpha);
}

Tensor unary(ops::UnaryOp op, const Tensor& a) {
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  kc::Operand o = operand(out), oa = operand(a);
  const kc::Extent e = coalesce<2>("unary", a.shape(), {out.strides(), a.strides()}, {&o, &oa});
  if (numel_of(e)) kc::unary(op, e, o, oa, a.device().index);
  return out;
}

Tensor compare(ops::CompareOp op, const Tensor& a, const Tensor& b) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), "compare");
  Tensor out = Tensor::empty(shape, DType::u8, result_device(a, b));
  kc::Operand o = operand(out), oa = operand(a), ob = operand(b);
  const kc::Extent e = coalesce<3>("compare", shape, {out.strides(), strides_in(a, shape), strides_in(b, shape)},
                                   {&o, &oa, &ob});
  if (numel_of(e)) kc::compare(op, e, o, oa, ob, out.device().index);
  return out;
}

Tensor clamp(const Tensor& a, double lo, double hi) {
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  kc::Operand o = operand(out), oa = operand(a);
  const kc::Extent e = coalesce<2>("clamp", a.shape(), {out.strides(), a.strides()}, {&o, &oa});
  if (numel_of(e)) kc::clamp(e, o, oa, lo, hi, a.device().index);
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const Shape shape = broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  const Device d = is_host_scalar(cond) ? result_device(a, b) : cond.device();
  Tensor out = Tensor::empty(shape, a.dtype(), d);
  const Tensor c = is_host_scalar(cond) ? ops::to_device(cond, d) : cond;  // the kernel reads cond as u8 array
  kc::Operand o = operand(out), oc = operand(c), oa = operand(a), ob = operand(b);
  const kc::Extent e = coalesce<4>(
      "where", shape, {out.strides(), strides_in(c, shape), strides_in(a, shape), strides_in(b, shape)},
      {&o, &oc, &oa, &ob});
  if (numel_of(e)) kc::where(e, o, oc, oa, ob, d.index);
  return out;
}

Tensor gelu(const Tensor& a, bool tanh_approx) {
  const Tensor c = ops::contiguous(a);
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  if (c.numel()) kc::gelu_forward(a.dtype(), out.raw_data(), c.raw_data(), c.numel(), tanh_approx, a.device().index);
  return out;
}

Tensor reduce_rows(kc::Reduction r, const Tensor& rows, int64_t outer, int64_t inner, const Shape& out_shape,
                   int64_t correction) {
  Tensor out = Tensor::empty(out_shape, rows.dtype(), rows.device());
  if (outer) kc::reduce_rows(r, rows.dtype(), out.raw_data(), rows.raw_data(), outer, inner, correction,
                             rows.device().index);
  return out;
}

std::pair<Tensor, Tensor> arg_reduce_rows(bool is_max, const Tensor& rows, int64_t outer, int64_t inner,
                                          const Shape& out_shape) {
  Tensor val = Tensor::empty(out_shape, rows.dtype(), rows.device());
  Tensor idx = Tensor::empty(out_shape, DType::i64, rows.device());
  if (outer) kc::arg_reduce_rows(is_max, rows.dtype(), val.raw_data(), idx.data<int64_t>(), rows.raw_data(),
                                 outer, inner, rows.device().index);
  return {val, idx};
}

void softmax_forward(bool log, const Tensor& out, const Tensor& in, int64_t N, int64_t C) {
  if (N && C) kc::softmax_forward(log, in.dtype(), out.raw_data(), in.raw_data(), N, C, in.device().index);
}

void softmax_backward(bool log, const Tensor& dinp, const Tensor& dout, const Tensor& out, int64_t N,
                      int64_t C) {
  if (N && C)
    kc::softmax_backward(log, out.dtype(), dinp.raw_data(), dout.raw_data(), out.raw_data(), N, C,
                         out.device().index);
}

namespace {
// [outer, n, inner] sizes of a contiguous tensor split at `dim`.
void split_at(const Shape& shape, int64_t dim, int64_t& outer, int64_t& inner) {
  outer = inner = 1;
  for (int64_t i = 0; i < int64_t(shape.size()); ++i) {
    if (i < dim) outer *= shape[size_t(i)];
    if (i > dim) inner *= shape[size_t(i)];
  }
}
}  // namespace

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  const Tensor tc = ops::contiguous(t), idx = index_on(index, t);
  Shape shape = t.shape();
  const int64_t n = t.dim() ? shape[size_t(dim)] : 1;
  if (t.dim()) shape[size_t(dim)] = idx.numel();
  Tensor out = Tensor::empty(shape, t.dtype(), t.device());
  int64_t outer, inner;
  split_at(t.shape(), dim, outer, inner);
  if (out.numel()) {
    const bool ok = kc::index_select(t.dtype(), out.raw_data(), tc.raw_data(), idx.dtype(), idx.raw_data(), outer,
                                     n, idx.numel(), inner, t.device().index);
    check_index(ok, "index_select", index, dim, n);
  }
  return out;
}

Tensor index_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  // bf16/f16 accumulate in f32 and round once at the end.
  const DType ct = is_half(src.dtype()) ? DType::f32 : src.dtype();
  ATTNLAB_CHECK(ct == DType::f32 || ct == DType::f64, "index_add: dtype ", dtype_name(src.dtype()),
                " not implemented on ", src.device().str(), " (floating dtypes only)");
  const Tensor sc = ops::contiguous(ops::to_dtype(src, ct)), idx = index_on(index, src);
  Tensor out = zeros(shape, ct, src.device());
  const int64_t n = shape.empty() ? 1 : shape[size_t(dim)];
  int64_t outer, inner;
  split_at(shape, dim, outer, inner);
  ATTNLAB_CHECK(idx.numel() == (src.dim() ? src.shape()[size_t(dim)] : 1), "index_add: index ", describe(index),
                " does not match src ", describe(src), " in dim ", dim);
  if (sc.numel()) {
    const bool ok = kc::index_add(ct, out.raw_data(), sc.raw_data(), idx.dtype(), idx.raw_data(), outer, n,
                                  idx.numel(), inner, src.device().index);
    check_index(ok, "index_add", index, dim, n);
  }
  return ops::to_dtype(out, src.dtype());
}

namespace {
// The Extent of `index` and the operands' strides over it (index keeps its own layout).
kc::Extent index_extent(const char* op, const Tensor& index) {
  ATTNLAB_CHECK(index.dim() <= kc::kMaxDims, op, ": index ", describe(index), " has more than ", kc::kMaxDims,
                " dims (not implemented on cuda)");
  kc::Extent e;
  e.ndim = int(index.dim());
  for (int d = 0; d < e.ndim; ++d) e.size[d] = index.shape()[size_t(d)];
  return e;
}
kc::Operand strided(const Tensor& t) {
  kc::Operand o = operand(t);
  for (int64_t d = 0; d < t.dim(); ++d) o.stride[d] = t.strides()[size_t(d)];
  return o;
}
}  // namespace

Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) {
  const Tensor idx = ops::to_device(index, t.device());
  const kc::Extent e = index_extent("gather", idx);
  Tensor out = Tensor::empty(idx.shape(), t.dtype(), t.device());
  const int64_t n = t.dim() ? t.shape()[size_t(dim)] : 1;
  if (out.numel()) {
    const bool ok = kc::gather(t.dtype(), out.raw_data(), strided(t), strided(idx), e, int(dim), n, t.device().index);
    check_index(ok, "gather", index, dim, n);
  }
  return out;
}

Tensor scatter_add(const Tensor& t, int64_t dim, const Tensor& index, const Tensor& src) {
  ATTNLAB_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, "scatter_add: dtype ",
                dtype_name(t.dtype()), " not implemented on ", t.device().str(), " (f32, f64)");
  const Tensor idx = ops::to_device(index, t.device());
  const kc::Extent e = index_extent("scatter_add", idx);
  Tensor out = ops::clone(t);
  const int64_t n = t.dim() ? t.shape()[size_t(dim)] : 1;
  if (idx.numel()) {
    const bool ok = kc::scatter_add(t.dtype(), strided(out), strided(src), strided(idx), e, int(dim), n,
                                    t.device().index);
    check_index(ok, "scatter_add", index, dim, n);
  }
  return out;
}

}  // namespace attnlab::cuda_ops
