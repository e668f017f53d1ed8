#include "nn/functional.h"

#include "autograd/autocast.h"
#include "autograd/functions.h"

namespace attnlab::nn::functional {

Tensor linear(const Tensor& x0, const Tensor& w0, const Tensor& b0) {
  // Autocast: a lower-precision op (input, weight and bias in the autocast dtype; see autocast.h).
  const Tensor x = autocast::to_low(x0), w = autocast::to_low(w0), b = autocast::to_low(b0);
  ATTNLAB_CHECK(w.dim() == 2, "linear: weight must be [out, in], got ", describe(w));
  ATTNLAB_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "linear: input ", describe(x),
                " does not end in in_features = ", w.size(1), " (weight ", describe(w), ")");
  ATTNLAB_CHECK(x.dtype() == w.dtype(), "linear: input ", describe(x), " and weight ", describe(w),
                " have different dtypes");
  // The transposed view goes to BLAS as a transpose flag; no copy of w is made.
  Tensor y = matmul(x, transpose(w, 0, 1));
  if (b.defined()) {
    ATTNLAB_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "linear: bias ", describe(b),
                  " must be [", w.size(0), "]");
    y = y + b;
  }
  return y;
}

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  ATTNLAB_CHECK(p >= 0.0 && p <= 1.0, "dropout: p must be in [0, 1], got ", p);
  if (!training || p == 0.0) return x;
  if (p == 1.0) return x * 0.0;  // keeps the graph (zero gradient) rather than detaching
  const Tensor u = rand(x.shape(), DType::f64, &gen);
  const Tensor keep = ops::compare_scalar(ops::CompareOp::lt, u, 1.0 - p);  // u8
  const Tensor mask =
      ops::binary_scalar(ops::BinaryOp::mul, ops::to_dtype(keep, DType::f64), 1.0 / (1.0 - p));
  return x * ops::to_device(ops::to_dtype(mask, x.dtype()), x.device());  // drawn on the host
}

Tensor embedding(const Tensor& weight, const Tensor& index) {
  ATTNLAB_CHECK(weight.dim() == 2, "embedding: weight must be [N, C], got ", describe(weight));
  ATTNLAB_CHECK(index.dtype() == DType::i64 || index.dtype() == DType::i32,
                "embedding: index must be i64 or i32, got ", describe(index));
  Shape out_shape = index.shape();
  out_shape.push_back(weight.size(1));
  const Tensor flat = ops::reshape(index, {index.numel()});
  return reshape(index_select(weight, 0, flat), out_shape);
}

}  // namespace attnlab::nn::functional
