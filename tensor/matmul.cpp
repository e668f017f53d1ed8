// matmul with torch.matmul's semantics, on OpenBLAS. Each operand matrix is handed to BLAS as it is
// stored: row-major with its row stride as leading dimension, or — for a transposed view — as a
// transpose with its column stride as leading dimension. Only matrices with neither unit stride are
// copied. A batched left operand times a single right matrix (the Linear layer's case) becomes one big
// GEMM when the batch folds into the rows.
#include "kernels/cpu/gemm.h"
#include "kernels/cuda/ops.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace attnlab::ops {

namespace {

// How BLAS should read one [rows, cols] matrix with strides (rs, cs).
struct BlasMat {
  bool trans = false;
  int64_t ld = 0;
};

bool blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, BlasMat& m) {
  if (cs == 1 || cols == 1) {  // row-major
    m.trans = false;
    m.ld = rows == 1 ? std::max<int64_t>(cols, 1) : rs;
    return m.ld >= std::max<int64_t>(cols, 1);
  }
  if (rs == 1 || rows == 1) {  // column-major = transpose of a row-major [cols, rows]
    m.trans = true;
    m.ld = cols == 1 ? std::max<int64_t>(rows, 1) : cs;
    return m.ld >= std::max<int64_t>(rows, 1);
  }
  return false;
}

// The batch-broadcast strides of a and b and how BLAS reads their matrices, handed to f(a, b, layout);
// a matrix with neither unit stride is first copied contiguous (so f may get copies of a and b).
struct BatchedLayout {
  Strides as, bs;
  BlasMat ma, mb;
};
template <class F>
void with_blas_layout(const Tensor& a, const Tensor& b, const Shape& batch, F&& f) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  Shape ab = batch, bb = batch;
  ab.insert(ab.end(), {M, K});
  bb.insert(bb.end(), {K, N});
  BatchedLayout l{broadcast_strides(a.shape(), a.strides(), ab), broadcast_strides(b.shape(), b.strides(), bb), {}, {}};
  const size_t nd = batch.size();
  const bool ok_a = blas_layout(M, K, l.as[nd], l.as[nd + 1], l.ma);
  const bool ok_b = blas_layout(K, N, l.bs[nd], l.bs[nd + 1], l.mb);
  if (!ok_a || !ok_b) {  // neither stride is 1: copy to a contiguous matrix and retry
    with_blas_layout(ok_a ? a : contiguous(a), ok_b ? b : contiguous(b), batch, f);
    return;
  }
  f(a, b, l);
}

template <class T>
void gemm_batched(const Tensor& a0, const Tensor& b0, Tensor& out, const Shape& batch) {
  with_blas_layout(a0, b0, batch, [&](const Tensor& a, const Tensor& b, const BatchedLayout& l) {
    const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
    const int64_t nb = numel(batch);
    const size_t nd = batch.size();
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
    std::vector<int64_t> idx(nd, 0);
    for (int64_t i = 0; i < nb; ++i) {
      int64_t oa = 0, ob = 0;
      for (size_t d = 0; d < nd; ++d) {
        oa += idx[d] * l.as[d];
        ob += idx[d] * l.bs[d];
      }
      kernels::gemm(l.ma.trans, l.mb.trans, M, N, K, T(1), pa + oa, l.ma.ld, pb + ob, l.mb.ld, T(0),
                    po + i * M * N, N);
      for (int64_t d = int64_t(nd) - 1; d >= 0; --d) {
        if (++idx[size_t(d)] < batch[size_t(d)]) break;
        idx[size_t(d)] = 0;
      }
    }
  });
}

// The CUDA path (cuBLAS, kernels/cuda/ops.h): the same layouts; the batch dims of out, a and b are
// merged where their strides allow, the innermost merged dim becomes one strided-batched call, and any
// outer batch dims that cannot merge loop here.
void gemm_batched_cuda(const Tensor& a0, const Tensor& b0, Tensor& out, const Shape& batch) {
  if (out.numel() == 0) return;
  if (a0.size(-1) == 0) {  // K = 0
    fill_(out, 0.0);
    return;
  }
  with_blas_layout(a0, b0, batch, [&](const Tensor& a, const Tensor& b, const BatchedLayout& l) {
    const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
    const size_t nd = batch.size();
    auto head = [nd](const Strides& st) { return Strides(st.begin(), st.begin() + int64_t(nd)); };
    const StridedLoop<3> loop(batch, {head(out.strides()), head(l.as), head(l.bs)});
    const int64_t inner = loop.shape.back(), outer = numel(loop.shape) / inner;
    const int64_t isz = int64_t(itemsize(a.dtype()));
    const char* pa = static_cast<const char*>(a.raw_data());
    const char* pb = static_cast<const char*>(b.raw_data());
    char* po = static_cast<char*>(out.raw_data());
    for (int64_t o = 0; o < outer; ++o) {
      int64_t off[3] = {0, 0, 0}, rem = o;
      for (int64_t d = int64_t(loop.shape.size()) - 2; d >= 0; --d) {
        const int64_t i = rem % loop.shape[size_t(d)];
        rem /= loop.shape[size_t(d)];
        for (size_t k = 0; k < 3; ++k) off[k] += i * loop.strides[k][size_t(d)];
      }
      kernels::cuda::gemm_strided_batched(a.dtype(), l.ma.trans, l.mb.trans, M, N, K, pa + off[1] * isz, l.ma.ld,
                                          loop.strides[1].back(), pb + off[2] * isz, l.mb.ld,
                                          loop.strides[2].back(), po + off[0] * isz, N,
                                          loop.strides[0].back(), inner, out.device().index);
    }
  });
}

}  // namespace

Tensor matmul(const Tensor& a0, const Tensor& b0) {
  ATTNLAB_CHECK(a0.dtype() == b0.dtype(), "matmul: dtype mismatch ", describe(a0), " vs ", describe(b0));
  ATTNLAB_CHECK(a0.dim() >= 1 && b0.dim() >= 1, "matmul: both arguments need at least 1 dim, got ",
                describe(a0), " and ", describe(b0));
  check_same_device("matmul", a0, b0);
  if (!a0.is_cuda() && (a0.dtype() == DType::bf16 || a0.dtype() == DType::f16))
    return to_dtype(matmul(to_dtype(a0, DType::f32), to_dtype(b0, DType::f32)), a0.dtype());
  ATTNLAB_CHECK(is_floating(a0.dtype()), "matmul: dtype ", dtype_name(a0.dtype()),
                " not supported (f32, f64, bf16, f16)");
  // 1-D operands: a vector on the left is a row [1, K], on the right a column [K, 1]; removed after.
  const Tensor a = a0.dim() == 1 ? unsqueeze(a0, 0) : a0;
  const Tensor b = b0.dim() == 1 ? unsqueeze(b0, 1) : b0;
  const int64_t M = a.size(-2), K = a.size(-1), K2 = b.size(-2), N = b.size(-1);
  ATTNLAB_CHECK(K == K2, "matmul: shapes ", shape_str(a0.shape()), " and ", shape_str(b0.shape()),
                " are not compatible (inner dims ", K, " != ", K2, ")");
  const Shape abatch(a.shape().begin(), a.shape().end() - 2), bbatch(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shapes(abatch, bbatch, "matmul");
  Shape out_shape = batch;
  out_shape.insert(out_shape.end(), {M, N});
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());

  // Fold a's batch into its rows when b is a single matrix and a's rows are evenly strided.
  Tensor folded;
  if (bbatch.empty() && !abatch.empty() && abatch == batch) folded = try_view(a, {numel(batch) * M, K});
  if (a.is_cuda()) {
    if (folded.defined()) {
      Tensor o2 = out.as_strided({numel(batch) * M, N}, {N, 1}, 0);
      gemm_batched_cuda(folded, b, o2, {});
    } else {
      gemm_batched_cuda(a, b, out, batch);
    }
  } else dispatch_float(a.dtype(), "matmul", [&]<class T>() {
    if (folded.defined()) {
      Tensor o2 = out.as_strided({numel(batch) * M, N}, {N, 1}, 0);
      gemm_batched<T>(folded, b, o2, {});
    } else {
      gemm_batched<T>(a, b, out, batch);
    }
  });
  if (a0.dim() == 1 && b0.dim() == 1) return reshape(out, {});
  if (a0.dim() == 1) return squeeze(out, -2);
  if (b0.dim() == 1) return squeeze(out, -1);
  return out;
}

}  // namespace attnlab::ops
