#include "nn/losses.h"

#include "autograd/autocast.h"
#include "autograd/functions.h"

namespace attnlab::nn {
namespace {

Tensor reduce(const Tensor& loss, Reduction r) {
  switch (r) {
    case Reduction::mean: return mean(loss);
    case Reduction::sum: return sum(loss);
    case Reduction::none: return loss;
  }
  return loss;
}

void check_same(const char* op, const Tensor& pred, const Tensor& target) {
  ATTNLAB_CHECK(pred.defined() && target.defined(), op, ": undefined input");
  ATTNLAB_CHECK(pred.shape() == target.shape(), op, ": input ", describe(pred), " and target ",
                describe(target), " must have the same shape");
  ATTNLAB_CHECK(pred.dtype() == target.dtype(), op, ": input ", describe(pred), " and target ",
                describe(target), " must have the same dtype");
  ATTNLAB_CHECK(is_floating(pred.dtype()), op, ": input must be floating point, got ", describe(pred));
}

}  // namespace

Tensor mse_loss(const Tensor& pred0, const Tensor& target0, Reduction r) {
  const Tensor pred = autocast::to_f32(pred0), target = autocast::to_f32(target0);  // losses run in f32
  check_same("mse_loss", pred, target);
  return reduce(square(pred - target), r);
}

Tensor binary_cross_entropy_with_logits(const Tensor& x0, const Tensor& y0, Reduction r) {
  const Tensor x = autocast::to_f32(x0), y = autocast::to_f32(y0);  // losses run in f32
  check_same("binary_cross_entropy_with_logits", x, y);
  using ops::UnaryOp;
  // Forward on plain tensors: relu(x) - x*y + log(1 + exp(-|x|)); exp(-|x|) <= 1 cannot overflow.
  const Tensor tail = ops::unary(UnaryOp::log, ops::binary_scalar(ops::BinaryOp::add,
      ops::unary(UnaryOp::exp, ops::unary(UnaryOp::neg, ops::unary(UnaryOp::abs, x))), 1.0));
  Tensor loss = ops::add(ops::sub(ops::unary(UnaryOp::relu, x), ops::mul(x, y)), tail);
  if (needs_grad({x, y})) {
    const char* op = "binary_cross_entropy_with_logits";
    const SavedTensor sx(x, op), sy(y, op);
    const bool gx = x.requires_grad(), gy = y.requires_grad();
    loss = record(op, loss, {x, y}, [sx, sy, gx, gy](const Tensor& g) -> Grads {
      const Tensor xv = sx.get(), yv = sy.get();
      Grads out(2);
      if (gx) out[0] = ops::mul(g, ops::sub(ops::unary(UnaryOp::sigmoid, xv), yv));
      if (gy) out[1] = ops::mul(g, ops::unary(UnaryOp::neg, xv));
      return out;
    });
  }
  return reduce(loss, r);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction r) {
  ATTNLAB_CHECK(logits.dim() == 2, "cross_entropy: logits must be [N, C], got ", describe(logits));
  ATTNLAB_CHECK(target.dtype() == DType::i64 && target.dim() == 1 && target.size(0) == logits.size(0),
                "cross_entropy: target must be i64 [", logits.size(0), "], got ", describe(target),
                " for logits ", describe(logits));
  const int64_t C = logits.size(1);
  for (int64_t c : target.to_vector<int64_t>())
    ATTNLAB_CHECK(c >= 0 && c < C, "cross_entropy: target class ", c, " out of range [0, ", C, ")");
  const Tensor picked = gather(log_softmax(logits, 1), 1, ops::unsqueeze(target, 1));  // [N, 1]
  return reduce(neg(squeeze(picked, 1)), r);
}

Tensor huber_loss(const Tensor& pred0, const Tensor& target0, double delta, Reduction r) {
  const Tensor pred = autocast::to_f32(pred0), target = autocast::to_f32(target0);  // losses run in f32
  check_same("huber_loss", pred, target);
  ATTNLAB_CHECK(delta > 0, "huber_loss: delta must be positive, got ", delta);
  const Tensor d = pred - target;
  const Tensor a = abs(d);
  const Tensor quadratic = 0.5 * square(d);
  const Tensor linear = delta * (a - 0.5 * delta);
  return reduce(where(lt(a, delta), quadratic, linear), r);
}

Tensor allocation_loss(const Tensor& pred0, const Tensor& target0, Reduction r) {
  const Tensor pred = autocast::to_f32(pred0), target = autocast::to_f32(target0);  // losses run in f32
  check_same("allocation_loss", pred, target);
  return reduce(neg(pred * target), r);
}

}  // namespace attnlab::nn
