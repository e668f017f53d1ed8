#include "nn/layers/rotary.h"

#include <cmath>

#include "autograd/functions.h"

namespace attnlab::nn {

Tensor apply_rotary(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  ATTNLAB_CHECK(x.dim() >= 1 && x.size(-1) % 2 == 0, "rope: last dim of ", describe(x), " must be even");
  ATTNLAB_CHECK(cos.dtype() == x.dtype() && sin.dtype() == x.dtype(), "rope: cos ", describe(cos),
                " and sin ", describe(sin), " must have x's dtype (", describe(x), ")");
  const int64_t h = x.size(-1) / 2;
  Shape half = x.shape();
  half.back() = h;
  for (const Tensor* t : {&cos, &sin})
    ATTNLAB_CHECK(broadcast_shapes(half, t->shape(), "rope") == half, "rope: ", describe(*t),
                  " must broadcast to ", shape_str(half), " (x ", describe(x), ")");
  // out = [x1 c - x2 s, x2 c + x1 s]
  auto rotate = [h](const Tensor& v, const Tensor& c, const Tensor& s) {
    const Tensor v1 = ops::narrow(v, -1, 0, h), v2 = ops::narrow(v, -1, h, h);
    const Tensor o1 = ops::sub(ops::mul(v1, c), ops::mul(v2, s));
    const Tensor o2 = ops::add(ops::mul(v2, c), ops::mul(v1, s));
    return ops::cat({o1, o2}, -1);
  };
  const Tensor out = rotate(x, cos, sin);
  if (!needs_grad({x})) return out;
  // Backward: the transpose of a rotation is the rotation by -theta (sin -> -sin).
  const Tensor c = cos.detach(), s = sin.detach();
  return record("rope", out, {x}, [rotate, c, s](const Tensor& g) -> Grads {
    return {rotate(g, c, ops::unary(ops::UnaryOp::neg, s))};
  });
}

RotaryEmbedding::RotaryEmbedding(int64_t d, double base_, int64_t max_len)
    : head_dim(d), max_seq_len(max_len), base(base_) {
  ATTNLAB_CHECK(d > 0 && d % 2 == 0, "RotaryEmbedding: head_dim must be positive and even, got ", d);
  ATTNLAB_CHECK(base > 0, "RotaryEmbedding: base must be positive, got ", base);
  for (int64_t i = 0; i < d / 2; ++i) inv_freq_.push_back(std::pow(base, -2.0 * double(i) / double(d)));
}

std::pair<Tensor, Tensor> RotaryEmbedding::cos_sin(const std::vector<int64_t>& positions,
                                                   const Shape& shape) const {
  const int64_t h = head_dim / 2;
  std::vector<double> c(positions.size() * size_t(h)), s(c.size());
  for (size_t p = 0; p < positions.size(); ++p) {
    const int64_t pos = positions[p];
    check_position(pos);
    for (int64_t i = 0; i < h; ++i) {
      const double theta = double(pos) * inv_freq_[size_t(i)];
      c[p * size_t(h) + size_t(i)] = std::cos(theta);
      s[p * size_t(h) + size_t(i)] = std::sin(theta);
    }
  }
  Shape out_shape = shape;
  out_shape.push_back(h);
  return {from_vector(c, out_shape, DType::f64), from_vector(s, out_shape, DType::f64)};
}

void RotaryEmbedding::check_position(int64_t pos) const {
  ATTNLAB_CHECK(pos >= 0 && (max_seq_len == 0 || pos < max_seq_len), "RotaryEmbedding: position ", pos,
                " outside [0, ", max_seq_len, ")");
}

namespace {

template <class T>
void cos_sin_values(const std::vector<double>& inv_freq, int64_t pos, T* c, T* s) {
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const double theta = double(pos) * inv_freq[i];
    c[i] = T(std::cos(theta));
    s[i] = T(std::sin(theta));
  }
}

template <class T>
void rotate_half_rows(T* x, int64_t heads, int64_t head_dim, const T* c, const T* s) {
  const int64_t h = head_dim / 2;
  for (int64_t r = 0; r < heads; ++r) {
    T* x1 = x + r * head_dim;
    T* x2 = x1 + h;
    for (int64_t i = 0; i < h; ++i) {
      const T a = x1[i], b = x2[i];
      x1[i] = a * c[i] - b * s[i];
      x2[i] = b * c[i] + a * s[i];
    }
  }
}

}  // namespace

void RotaryEmbedding::cos_sin_row(int64_t pos, float* c, float* s) const {
  check_position(pos);
  cos_sin_values(inv_freq_, pos, c, s);
}
void RotaryEmbedding::cos_sin_row(int64_t pos, double* c, double* s) const {
  check_position(pos);
  cos_sin_values(inv_freq_, pos, c, s);
}
void RotaryEmbedding::rotate_rows(float* x, int64_t heads, const float* c, const float* s) const {
  rotate_half_rows(x, heads, head_dim, c, s);
}
void RotaryEmbedding::rotate_rows(double* x, int64_t heads, const double* c, const double* s) const {
  rotate_half_rows(x, heads, head_dim, c, s);
}

namespace {
// The host-computed table t in x's dtype on x's device.
Tensor on_device_of(const Tensor& t, const Tensor& x) { return ops::to_device(ops::to_dtype(t, x.dtype()), x.device()); }

void check_input(const Tensor& x, int64_t head_dim) {
  ATTNLAB_CHECK(x.dim() == 4 && x.size(3) == head_dim, "RotaryEmbedding(", head_dim, "): input ",
                describe(x), " must be [B, T, H, ", head_dim, "]");
}
}  // namespace

Tensor RotaryEmbedding::forward(const Tensor& x, int64_t offset) {
  check_input(x, head_dim);
  const int64_t T = x.size(1);
  std::vector<int64_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[size_t(t)] = offset + t;
  auto [c, s] = cos_sin(pos, {T, 1});  // [T, 1, h] broadcasts over B and H
  return apply_rotary(x, on_device_of(c, x), on_device_of(s, x));
}

Tensor RotaryEmbedding::forward(const Tensor& x, const Tensor& positions) {
  check_input(x, head_dim);
  const int64_t B = x.size(0), T = x.size(1);
  ATTNLAB_CHECK(positions.dtype() == DType::i64 || positions.dtype() == DType::i32,
                "RotaryEmbedding: positions must be i64 or i32, got ", describe(positions));
  Shape shape;
  if (positions.dim() == 1 && positions.size(0) == T) shape = {T, 1};
  else if (positions.dim() == 2 && positions.size(0) == B && positions.size(1) == T) shape = {B, T, 1};
  ATTNLAB_CHECK(!shape.empty(), "RotaryEmbedding: positions ", describe(positions), " must be [", T,
                "] or [", B, ", ", T, "] for input ", describe(x));
  auto [c, s] = cos_sin(positions.to_vector<int64_t>(), shape);
  return apply_rotary(x, on_device_of(c, x), on_device_of(s, x));
}

}  // namespace attnlab::nn
