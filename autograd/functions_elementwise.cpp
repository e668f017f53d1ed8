// Elementwise ops and their derivatives. Notation in comments: out = f(a, b), g = dL/dout.
#include <cmath>

#include "autograd/autocast.h"
#include "autograd/derivative_helpers.h"
#include "autograd/functions.h"

namespace attnlab {


namespace {
Tensor unb(const Tensor& g, const Shape& shape) { return sum_to(g, shape); }  // un-broadcast
}  // namespace

Tensor add(const Tensor& a0, const Tensor& b0) {
  const auto [a, b] = autocast::promote(a0, b0);
  // d/da = 1, d/db = 1
  return record("add", ops::add(a, b), {a, b}, [as = a.shape(), bs = b.shape()](const Tensor& g) {
    return Grads{unb(g, as), unb(g, bs)};
  });
}

Tensor sub(const Tensor& a0, const Tensor& b0) {
  const auto [a, b] = autocast::promote(a0, b0);
  // d/da = 1, d/db = -1
  return record("sub", ops::sub(a, b), {a, b}, [as = a.shape(), bs = b.shape()](const Tensor& g) {
    return Grads{unb(g, as), unb(unary(UnaryOp::neg, g), bs)};
  });
}

Tensor mul(const Tensor& a0, const Tensor& b0) {
  const auto [a, b] = autocast::promote(a0, b0);
  // d/da = b, d/db = a
  Tensor out = ops::mul(a, b);
  if (!needs_grad({a, b})) return out;
  return record("mul", out, {a, b},
                [sa = SavedTensor(b.requires_grad() ? a : Tensor(), "mul"),
                 sb = SavedTensor(a.requires_grad() ? b : Tensor(), "mul"), as = a.shape(),
                 bs = b.shape()](const Tensor& g) {
                  return Grads{sb.defined() ? unb(ops::mul(g, sb.get()), as) : Tensor(),
                               sa.defined() ? unb(ops::mul(g, sa.get()), bs) : Tensor()};
                });
}

Tensor div(const Tensor& a0, const Tensor& b0) {
  const auto [a, b] = autocast::promote(a0, b0);
  // d/da = 1/b, d/db = -a/b² = -out/b
  Tensor out = ops::div(a, b);
  if (!needs_grad({a, b})) return out;
  return record("div", out, {a, b},
                [sb = SavedTensor(b, "div"), so = SavedTensor(out, "div"), as = a.shape(),
                 bs = b.shape()](const Tensor& g) {
                  const Tensor ga = ops::div(g, sb.get());
                  return Grads{unb(ga, as), unb(unary(UnaryOp::neg, ops::mul(ga, so.get())), bs)};
                });
}

Tensor pow(const Tensor& a0, const Tensor& b0) {
  const auto [a, b] = autocast::promote(a0, b0);
  // d/da = b a^(b-1), d/db = a^b log a
  Tensor out = binary(BinaryOp::pow, a, b);
  if (!needs_grad({a, b})) return out;
  return record("pow", out, {a, b},
                [sa = SavedTensor(a, "pow"), sb = SavedTensor(b, "pow"), so = SavedTensor(out, "pow"),
                 as = a.shape(), bs = b.shape()](const Tensor& g) {
                  const Tensor A = sa.get(), B = sb.get();
                  const Tensor da = ops::mul(B, binary(BinaryOp::pow, A, binary_scalar(BinaryOp::sub, B, 1)));
                  const Tensor db = ops::mul(so.get(), unary(UnaryOp::log, A));
                  return Grads{unb(ops::mul(g, da), as), unb(ops::mul(g, db), bs)};
                });
}

Tensor pow(const Tensor& a, double e) {
  // d/da = e a^(e-1)
  Tensor out = binary_scalar(BinaryOp::pow, a, e);
  if (!needs_grad({a})) return out;
  return record("pow", out, {a}, [sa = SavedTensor(a, "pow"), e](const Tensor& g) {
    const Tensor d = binary_scalar(BinaryOp::mul, binary_scalar(BinaryOp::pow, sa.get(), e - 1), e);
    return Grads{ops::mul(g, d)};
  });
}

namespace {
// maximum/minimum: the gradient goes to the selected input; on ties it is split in half (PyTorch).
Tensor extremum(const Tensor& a, const Tensor& b, bool is_max) {
  const char* name = is_max ? "maximum" : "minimum";
  Tensor out = binary(is_max ? BinaryOp::maximum : BinaryOp::minimum, a, b);
  if (!needs_grad({a, b})) return out;
  return record(name, out, {a, b},
                [sa = SavedTensor(a, name), sb = SavedTensor(b, name), as = a.shape(), bs = b.shape(),
                 is_max](const Tensor& g) {
                  const Tensor A = sa.get(), B = sb.get();
                  const Tensor wins = compare(is_max ? ops::CompareOp::gt : ops::CompareOp::lt, A, B);
                  const Tensor ties = compare(ops::CompareOp::eq, A, B);
                  const Tensor one = scalar_tensor(1, g.dtype()), half = scalar_tensor(0.5, g.dtype()),
                               zero = scalar_tensor(0, g.dtype());
                  const Tensor wa = ops::where(wins, one, ops::where(ties, half, zero));
                  const Tensor wb = ops::sub(one, wa);
                  return Grads{unb(ops::mul(g, wa), as), unb(ops::mul(g, wb), bs)};
                });
}
}  // namespace

Tensor maximum(const Tensor& a0, const Tensor& b0) {
  const auto [a, b] = autocast::promote(a0, b0);
  return extremum(a, b, true);
}
Tensor minimum(const Tensor& a0, const Tensor& b0) {
  const auto [a, b] = autocast::promote(a0, b0);
  return extremum(a, b, false);
}

Tensor add(const Tensor& a, double s) {
  return record("add", binary_scalar(BinaryOp::add, a, s), {a}, [](const Tensor& g) { return Grads{g}; });
}

Tensor mul(const Tensor& a, double s) {
  return record("mul", binary_scalar(BinaryOp::mul, a, s), {a},
                [s](const Tensor& g) { return Grads{binary_scalar(BinaryOp::mul, g, s)}; });
}

Tensor neg(const Tensor& a) {
  return record("neg", unary(UnaryOp::neg, a), {a}, [](const Tensor& g) { return Grads{unary(UnaryOp::neg, g)}; });
}

// Unary ops whose derivative is a function of the output y (saved) or the input x.
Tensor exp(const Tensor& a0) {
  const Tensor a = autocast::to_f32(a0);
  Tensor out = unary(UnaryOp::exp, a);  // d = y
  if (!needs_grad({a})) return out;
  return record("exp", out, {a}, [so = SavedTensor(out, "exp")](const Tensor& g) { return Grads{ops::mul(g, so.get())}; });
}

Tensor log(const Tensor& a0) {
  const Tensor a = autocast::to_f32(a0);
  // d = 1/x
  return record("log", unary(UnaryOp::log, a), {a},
                [sa = SavedTensor(needs_grad({a}) ? a : Tensor(), "log")](const Tensor& g) {
                  return Grads{ops::div(g, sa.get())};
                });
}

Tensor sqrt(const Tensor& a) {
  Tensor out = unary(UnaryOp::sqrt, a);  // d = 1 / (2 y)
  if (!needs_grad({a})) return out;
  return record("sqrt", out, {a}, [so = SavedTensor(out, "sqrt")](const Tensor& g) {
    return Grads{ops::div(g, binary_scalar(BinaryOp::mul, so.get(), 2))};
  });
}

Tensor rsqrt(const Tensor& a0) {
  const Tensor a = autocast::to_f32(a0);
  Tensor out = unary(UnaryOp::rsqrt, a);  // d = -y³ / 2
  if (!needs_grad({a})) return out;
  return record("rsqrt", out, {a}, [so = SavedTensor(out, "rsqrt")](const Tensor& g) {
    const Tensor y = so.get();
    return Grads{ops::mul(g, binary_scalar(BinaryOp::mul, ops::mul(y, ops::mul(y, y)), -0.5))};
  });
}

Tensor tanh(const Tensor& a) {
  Tensor out = unary(UnaryOp::tanh, a);  // d = 1 - y²
  if (!needs_grad({a})) return out;
  return record("tanh", out, {a}, [so = SavedTensor(out, "tanh")](const Tensor& g) {
    const Tensor y = so.get();
    return Grads{ops::mul(g, rbinary_scalar(BinaryOp::sub, 1, ops::mul(y, y)))};
  });
}

Tensor sigmoid(const Tensor& a) {
  Tensor out = unary(UnaryOp::sigmoid, a);  // d = y (1 - y)
  if (!needs_grad({a})) return out;
  return record("sigmoid", out, {a}, [so = SavedTensor(out, "sigmoid")](const Tensor& g) {
    const Tensor y = so.get();
    return Grads{ops::mul(g, ops::mul(y, rbinary_scalar(BinaryOp::sub, 1, y)))};
  });
}

Tensor relu(const Tensor& a) {
  Tensor out = unary(UnaryOp::relu, a);  // d = [y > 0]
  if (!needs_grad({a})) return out;
  return record("relu", out, {a}, [so = SavedTensor(out, "relu")](const Tensor& g) {
    return Grads{ops::where(compare_scalar(ops::CompareOp::gt, so.get(), 0), g, scalar_tensor(0, g.dtype()))};
  });
}

Tensor gelu(const Tensor& a, bool tanh_approx) {
  // Fused: forward and backward each one kernel pass (kernels/cpu/gelu.h or the CUDA kernel;
  // bf16/f16 computed in f32).
  Tensor out = ops::gelu(a, tanh_approx);
  if (!needs_grad({a})) return out;
  return record("gelu", out, {a}, [sa = SavedTensor(a, "gelu"), tanh_approx](const Tensor& g) {
    return Grads{ops::gelu_backward(g, sa.get(), tanh_approx)};
  });
}

Tensor abs(const Tensor& a) {
  // d = sign(x)   (0 at x = 0, as PyTorch)
  return record("abs", unary(UnaryOp::abs, a), {a},
                [sa = SavedTensor(needs_grad({a}) ? a : Tensor(), "abs")](const Tensor& g) {
                  return Grads{ops::mul(g, unary(UnaryOp::sign, sa.get()))};
                });
}

Tensor sign(const Tensor& a) {
  return record("sign", unary(UnaryOp::sign, a), {a}, [](const Tensor& g) { return Grads{zeros_like(g)}; });
}

Tensor square(const Tensor& a) {
  // d = 2x
  return record("square", unary(UnaryOp::square, a), {a},
                [sa = SavedTensor(needs_grad({a}) ? a : Tensor(), "square")](const Tensor& g) {
                  return Grads{ops::mul(g, binary_scalar(BinaryOp::mul, sa.get(), 2))};
                });
}

Tensor clamp(const Tensor& a, double lo, double hi) {
  // d = 1 where lo <= x <= hi, else 0
  return record("clamp", ops::clamp(a, lo, hi), {a},
                [sa = SavedTensor(needs_grad({a}) ? a : Tensor(), "clamp"), lo, hi](const Tensor& g) {
                  const Tensor x = sa.get();
                  const Tensor inside = ops::mul(compare_scalar(ops::CompareOp::ge, x, lo),
                                                 compare_scalar(ops::CompareOp::le, x, hi));
                  return Grads{ops::where(inside, g, scalar_tensor(0, g.dtype()))};
                });
}

Tensor where(const Tensor& cond, const Tensor& a0, const Tensor& b0) {
  const auto [a, b] = autocast::promote(a0, b0);
  // d/da = [cond], d/db = [!cond]
  Tensor out = ops::where(cond, a, b);
  if (!needs_grad({a, b})) return out;
  return record("where", out, {a, b},
                [c = cond.detach(), as = a.shape(), bs = b.shape()](const Tensor& g) {
                  const Tensor zero = scalar_tensor(0, g.dtype());
                  return Grads{unb(ops::where(c, g, zero), as), unb(ops::where(c, zero, g), bs)};
                });
}

Tensor masked_fill(const Tensor& a, const Tensor& mask, double value) {
  // d/da = [!mask]
  return record("masked_fill", ops::masked_fill(a, mask, value), {a}, [m = mask.detach()](const Tensor& g) {
    return Grads{ops::masked_fill(g, m, 0.0)};
  });
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double s) { return add(a, s); }
Tensor operator+(double s, const Tensor& a) { return add(a, s); }
Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
Tensor operator-(double s, const Tensor& a) { return add(neg(a), s); }
Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }
Tensor operator/(double s, const Tensor& a) {
  // d/da = -s / a² = -out / a
  Tensor out = rbinary_scalar(BinaryOp::div, s, a);
  if (!needs_grad({a})) return out;
  return record("rdiv", out, {a}, [sa = SavedTensor(a, "rdiv"), so = SavedTensor(out, "rdiv")](const Tensor& g) {
    return Grads{unary(UnaryOp::neg, ops::div(ops::mul(g, so.get()), sa.get()))};
  });
}

Tensor eq(const Tensor& a, const Tensor& b) { return compare(ops::CompareOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare(ops::CompareOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare(ops::CompareOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare(ops::CompareOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare(ops::CompareOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare(ops::CompareOp::ge, a, b); }
Tensor gt(const Tensor& a, double s) { return compare_scalar(ops::CompareOp::gt, a, s); }
Tensor lt(const Tensor& a, double s) { return compare_scalar(ops::CompareOp::lt, a, s); }

// ---- in-place ---------------------------------------------------------------------------------
namespace {
void check_inplace(const Tensor& t, const char* op) {
  ATTNLAB_CHECK(!(GradMode::is_enabled() && t.requires_grad()), op, ": in-place modification of ",
                describe(t), " which requires grad, while grad mode is on (wrap it in NoGradGuard, as "
                "optimizers do)");
}
}  // namespace

void add_(const Tensor& t, const Tensor& other, double alpha) { check_inplace(t, "add_"); ops::add_(t, other, alpha); }
void mul_(const Tensor& t, double s) { check_inplace(t, "mul_"); ops::mul_(t, s); }
void fill_(const Tensor& t, double v) { check_inplace(t, "fill_"); ops::fill_(t, v); }
void zero_(const Tensor& t) { fill_(t, 0.0); }
void copy_(const Tensor& dst, const Tensor& src) { check_inplace(dst, "copy_"); ops::copy_(dst, src); }
Tensor& masked_fill_(Tensor& t, const Tensor& mask, double value) {
  check_inplace(t, "masked_fill_");
  ops::copy_(t, ops::masked_fill(t, mask, value));
  return t;
}

}  // namespace attnlab
