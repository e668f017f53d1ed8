// Elementwise ops over strided, broadcast inputs. Each op is a lambda run by one strided loop; the
// unit-stride case gets a plain loop the compiler vectorizes.
#include <cmath>

#include "kernels/cpu/gelu.h"
#include "tensor/creation.h"
#include "tensor/cuda_ops.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace attnlab::ops {

namespace {

bool is_half(DType t) { return t == DType::bf16 || t == DType::f16; }

// out = f(a, b) elementwise with broadcasting. A: input type, O: output type.
template <class A, class O, class F>
Tensor map2(const Tensor& a, const Tensor& b, DType out_dtype, const char* op, F f) {
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor out = Tensor::empty(shape, out_dtype, result_device(a, b));
  StridedLoop<3> loop(shape, {out.strides(), broadcast_strides(a.shape(), a.strides(), shape),
                              broadcast_strides(b.shape(), b.strides(), shape)});
  O* po = out.data<O>();
  const A* pa = static_cast<const A*>(a.raw_data());
  const A* pb = static_cast<const A*>(b.raw_data());
  loop.run([&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& inc) {
    O* o = po + off[0];
    const A* x = pa + off[1];
    const A* y = pb + off[2];
    if (inc[0] == 1 && inc[1] == 1 && inc[2] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
    } else if (inc[0] == 1 && inc[1] == 1 && inc[2] == 0) {
      const A yv = *y;
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * inc[0]] = f(x[i * inc[1]], y[i * inc[2]]);
    }
  });
  return out;
}

// out = f(a) elementwise.
template <class A, class O, class F>
Tensor map1(const Tensor& a, DType out_dtype, F f) {
  Tensor out = Tensor::empty(a.shape(), out_dtype, a.device());
  StridedLoop<2> loop(a.shape(), {out.strides(), a.strides()});
  O* po = out.data<O>();
  const A* pa = static_cast<const A*>(a.raw_data());
  loop.run([&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& inc) {
    O* o = po + off[0];
    const A* x = pa + off[1];
    if (inc[0] == 1 && inc[1] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * inc[0]] = f(x[i * inc[1]]);
    }
  });
  return out;
}

// Calls g(functor) with the functor of `op`.
template <class G>
decltype(auto) with_binary(BinaryOp op, G&& g) {
  switch (op) {
    case BinaryOp::add: return g([](auto x, auto y) { return x + y; });
    case BinaryOp::sub: return g([](auto x, auto y) { return x - y; });
    case BinaryOp::mul: return g([](auto x, auto y) { return x * y; });
    case BinaryOp::div: return g([](auto x, auto y) { return x / y; });
    case BinaryOp::pow: return g([](auto x, auto y) { return decltype(x)(std::pow(x, y)); });
    case BinaryOp::maximum:
      return g([](auto x, auto y) { return (x != x || x > y) ? x : y; });  // NaN propagates
    case BinaryOp::minimum: return g([](auto x, auto y) { return (x != x || x < y) ? x : y; });
  }
  throw Error("unknown binary op");
}

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return "add";
    case BinaryOp::sub: return "sub";
    case BinaryOp::mul: return "mul";
    case BinaryOp::div: return "div";
    case BinaryOp::pow: return "pow";
    case BinaryOp::maximum: return "maximum";
    case BinaryOp::minimum: return "minimum";
  }
  return "?";
}

void check_devices(const Tensor& a, const Tensor& b, const char* op);

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  ATTNLAB_CHECK(a.defined() && b.defined(), op, ": undefined tensor argument");
  ATTNLAB_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch ", describe(a), " vs ", describe(b),
                " (convert one with to_dtype)");
  check_devices(a, b, op);
}

// Same device, except that a host scalar (a 0-dim cpu:0 tensor) may join an op on any device as a
// constant.
void check_devices(const Tensor& a, const Tensor& b, const char* op) {
  if (a.device() == b.device() || is_host_scalar(a) || is_host_scalar(b)) return;
  check_same_device(op, a, b);
}

}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_same_dtype(a, b, name);
  if (op == BinaryOp::div)
    ATTNLAB_CHECK(is_floating(a.dtype()), "div: integer division is not supported (", describe(a),
                  "); convert to a floating dtype");
  if (a.is_cuda() || b.is_cuda()) return cuda_ops::binary(op, a, b);
  if (is_half(a.dtype()))
    return to_dtype(binary(op, to_dtype(a, DType::f32), to_dtype(b, DType::f32)), a.dtype());
  Tensor out;
  dispatch_numeric(a.dtype(), name, [&]<class T>() {
    with_binary(op, [&](auto f) {
      out = map2<T, T>(a, b, a.dtype(), name, [f](T x, T y) { return T(f(x, y)); });
    });
  });
  return out;
}

Tensor binary_scalar(BinaryOp op, const Tensor& a, double s) {
  return binary(op, a, scalar_tensor(s, a.dtype()));
}
Tensor rbinary_scalar(BinaryOp op, double s, const Tensor& a) {
  return binary(op, scalar_tensor(s, a.dtype()), a);
}

Tensor unary(UnaryOp op, const Tensor& a) {
  if (a.is_cuda()) {
    const bool integer_ok = op == UnaryOp::neg || op == UnaryOp::abs || op == UnaryOp::sign ||
                            op == UnaryOp::square || op == UnaryOp::relu;
    ATTNLAB_CHECK(is_floating(a.dtype()) || (integer_ok && a.dtype() != DType::u8), "unary: dtype ",
                  dtype_name(a.dtype()), " not supported here (need a floating dtype)");
    return cuda_ops::unary(op, a);
  }
  if (is_half(a.dtype())) return to_dtype(unary(op, to_dtype(a, DType::f32)), a.dtype());
  Tensor out;
  auto run = [&](auto f) {
    dispatch_float(a.dtype(), "unary", [&]<class T>() {
      out = map1<T, T>(a, a.dtype(), [f](T x) { return T(f(x)); });
    });
  };
  // Ops that make sense on integers too.
  if (op == UnaryOp::neg || op == UnaryOp::abs || op == UnaryOp::sign || op == UnaryOp::square ||
      op == UnaryOp::relu) {
    dispatch_numeric(a.dtype(), "unary", [&]<class T>() {
      switch (op) {
        case UnaryOp::neg: out = map1<T, T>(a, a.dtype(), [](T x) { return T(-x); }); break;
        case UnaryOp::abs: out = map1<T, T>(a, a.dtype(), [](T x) { return x < 0 ? T(-x) : x; }); break;
        case UnaryOp::sign:
          out = map1<T, T>(a, a.dtype(), [](T x) { return T((T(0) < x) - (x < T(0))); });
          break;
        case UnaryOp::square: out = map1<T, T>(a, a.dtype(), [](T x) { return T(x * x); }); break;
        default: out = map1<T, T>(a, a.dtype(), [](T x) { return x > T(0) ? x : T(0); }); break;
      }
    });
    return out;
  }
  switch (op) {
    case UnaryOp::exp: run([](auto x) { return std::exp(x); }); break;
    case UnaryOp::log: run([](auto x) { return std::log(x); }); break;
    case UnaryOp::sqrt: run([](auto x) { return std::sqrt(x); }); break;
    case UnaryOp::rsqrt: run([](auto x) { return decltype(x)(1) / std::sqrt(x); }); break;
    case UnaryOp::tanh: run([](auto x) { return std::tanh(x); }); break;
    case UnaryOp::sigmoid:
      // stable for both signs: never exponentiates a large positive number
      run([](auto x) {
        using T = decltype(x);
        if (x >= 0) return T(1) / (T(1) + std::exp(-x));
        const T e = std::exp(x);
        return e / (T(1) + e);
      });
      break;
    case UnaryOp::reciprocal: run([](auto x) { return decltype(x)(1) / x; }); break;
    case UnaryOp::sin: run([](auto x) { return std::sin(x); }); break;
    case UnaryOp::cos: run([](auto x) { return std::cos(x); }); break;
    case UnaryOp::erf: run([](auto x) { return std::erf(x); }); break;
    default: throw Error("unary: unknown op");
  }
  return out;
}

Tensor gelu(const Tensor& a, bool tanh_approx) {
  if (a.is_cuda()) {
    ATTNLAB_CHECK(is_floating(a.dtype()), "gelu: needs a floating dtype, got ", describe(a));
    return cuda_ops::gelu(a, tanh_approx);
  }
  if (is_half(a.dtype())) return to_dtype(gelu(to_dtype(a, DType::f32), tanh_approx), a.dtype());
  const Tensor c = contiguous(a);
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  dispatch_float(a.dtype(), "gelu", [&]<class T>() {
    kernels::gelu_forward<T>(out.data<T>(), c.data<T>(), c.numel(),
                             tanh_approx ? kernels::GeluApprox::tanh : kernels::GeluApprox::none);
  });
  return out;
}

Tensor compare(CompareOp op, const Tensor& a, const Tensor& b) {
  check_same_dtype(a, b, "compare");
  if (a.is_cuda() || b.is_cuda()) return cuda_ops::compare(op, a, b);
  if (is_half(a.dtype())) return compare(op, to_dtype(a, DType::f32), to_dtype(b, DType::f32));
  Tensor out;
  dispatch_numeric(a.dtype(), "compare", [&]<class T>() {
    switch (op) {
      case CompareOp::eq: out = map2<T, uint8_t>(a, b, DType::u8, "eq", [](T x, T y) { return uint8_t(x == y); }); break;
      case CompareOp::ne: out = map2<T, uint8_t>(a, b, DType::u8, "ne", [](T x, T y) { return uint8_t(x != y); }); break;
      case CompareOp::lt: out = map2<T, uint8_t>(a, b, DType::u8, "lt", [](T x, T y) { return uint8_t(x < y); }); break;
      case CompareOp::le: out = map2<T, uint8_t>(a, b, DType::u8, "le", [](T x, T y) { return uint8_t(x <= y); }); break;
      case CompareOp::gt: out = map2<T, uint8_t>(a, b, DType::u8, "gt", [](T x, T y) { return uint8_t(x > y); }); break;
      case CompareOp::ge: out = map2<T, uint8_t>(a, b, DType::u8, "ge", [](T x, T y) { return uint8_t(x >= y); }); break;
    }
  });
  return out;
}

Tensor compare_scalar(CompareOp op, const Tensor& a, double s) {
  return compare(op, a, scalar_tensor(s, a.dtype()));
}

Tensor clamp(const Tensor& a, double lo, double hi) {
  ATTNLAB_CHECK(!(lo > hi), "clamp: min ", lo, " > max ", hi);
  if (a.is_cuda()) return cuda_ops::clamp(a, lo, hi);
  if (is_half(a.dtype())) return to_dtype(clamp(to_dtype(a, DType::f32), lo, hi), a.dtype());
  Tensor out;
  dispatch_numeric(a.dtype(), "clamp", [&]<class T>() {
    out = map1<T, T>(a, a.dtype(), [lo, hi](T x) {
      if (x != x) return x;
      return double(x) < lo ? T(lo) : double(x) > hi ? T(hi) : x;
    });
  });
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  ATTNLAB_CHECK(cond.dtype() == DType::u8, "where: condition must be u8 (a comparison result), got ",
                describe(cond));
  check_same_dtype(a, b, "where");
  // The op's device: that of the first operand that is not a host scalar (cpu:0 when all are).
  const Tensor& any = !is_host_scalar(cond) ? cond : !is_host_scalar(a) ? a : b;
  check_devices(cond, any, "where");
  check_devices(a, any, "where");
  check_devices(b, any, "where");
  if (any.is_cuda()) return cuda_ops::where(cond, a, b);
  if (is_half(a.dtype()))
    return to_dtype(where(cond, to_dtype(a, DType::f32), to_dtype(b, DType::f32)), a.dtype());
  const Shape shape = broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  Tensor out = Tensor::empty(shape, a.dtype(), any.device());
  StridedLoop<4> loop(shape, {out.strides(), broadcast_strides(cond.shape(), cond.strides(), shape),
                              broadcast_strides(a.shape(), a.strides(), shape),
                              broadcast_strides(b.shape(), b.strides(), shape)});
  dispatch_numeric(a.dtype(), "where", [&]<class T>() {
    T* po = out.data<T>();
    const uint8_t* pc = cond.data<uint8_t>();
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    loop.run([&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& inc) {
      for (int64_t i = 0; i < n; ++i)
        po[off[0] + i * inc[0]] =
            pc[off[1] + i * inc[1]] ? pa[off[2] + i * inc[2]] : pb[off[3] + i * inc[3]];
    });
  });
  return out;
}

Tensor masked_fill(const Tensor& a, const Tensor& mask, double value) {
  ATTNLAB_CHECK(broadcast_shapes(mask.shape(), a.shape(), "masked_fill") == a.shape(),
                "masked_fill: mask ", describe(mask), " does not broadcast to ", describe(a));
  return where(mask, scalar_tensor(value, a.dtype()), a);
}

// ---- in-place ---------------------------------------------------------------------------------
void binary_(BinaryOp op, const Tensor& t, const Tensor& other) {
  const Tensor r = binary(op, t, other);
  ATTNLAB_CHECK(r.shape() == t.shape(), binary_name(op), "_: in-place result shape ", shape_str(r.shape()),
                " differs from ", describe(t));
  copy_(t, r);
}

void add_(const Tensor& t, const Tensor& other, double alpha) {
  ATTNLAB_CHECK(broadcast_shapes(other.shape(), t.shape(), "add_") == t.shape(), "add_: cannot add ",
                describe(other), " into ", describe(t));
  if (!is_host_scalar(other)) check_same_device("add_", t, other);
  check_same_dtype(t, other, "add_");
  if (t.is_cuda()) {
    cuda_ops::binary_(BinaryOp::add, t, other, alpha);
    t.bump_version();
    return;
  }
  // Fast path for the optimizer and gradient accumulation: contiguous, same shape, f32/f64.
  if (t.is_contiguous() && other.is_contiguous() && t.shape() == other.shape() && !is_half(t.dtype()) &&
      is_floating(t.dtype())) {
    dispatch_float(t.dtype(), "add_", [&]<class T>() {
      T* p = t.data<T>();
      const T* q = other.data<T>();
      const T a = T(alpha);
      const int64_t n = t.numel();
#pragma omp parallel for if (n > kernels::kParallelGrain)
      for (int64_t i = 0; i < n; ++i) p[i] += a * q[i];
    });
    t.bump_version();
    return;
  }
  copy_(t, binary(BinaryOp::add, t, alpha == 1.0 ? other : binary_scalar(BinaryOp::mul, other, alpha)));
}

void mul_(const Tensor& t, double s) {
  if (t.is_cuda()) {  // in place: one launch and no temporary (clipping and loss unscaling, per parameter)
    cuda_ops::binary_(BinaryOp::mul, t, scalar_tensor(s, t.dtype()));
    t.bump_version();
    return;
  }
  copy_(t, binary_scalar(BinaryOp::mul, t, s));
}

}  // namespace attnlab::ops
