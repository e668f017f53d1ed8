#include "tensor/creation.h"

#include <cmath>
#include <cstring>

#include "kernels/cpu/convert.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace attnlab {

// ---- Generator ----------------------------------------------------------------------------------
namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

void Generator::manual_seed(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
  has_spare_ = false;
}

uint64_t Generator::next_u64() {  // xoshiro256**
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Generator::uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }

double Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = uniform();
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2.0 * M_PI * u2);
  has_spare_ = true;
  return r * std::cos(2.0 * M_PI * u2);
}

std::vector<uint64_t> Generator::state() const {
  uint64_t spare_bits;
  std::memcpy(&spare_bits, &spare_, 8);
  return {s_[0], s_[1], s_[2], s_[3], has_spare_ ? 1u : 0u, spare_bits};
}

void Generator::set_state(const std::vector<uint64_t>& s) {
  ATTNLAB_CHECK(s.size() == 6, "Generator::set_state: expected 6 words, got ", s.size());
  for (int i = 0; i < 4; ++i) s_[i] = s[size_t(i)];
  has_spare_ = s[4] != 0;
  std::memcpy(&spare_, &s[5], 8);
}

Generator& default_generator() {
  static Generator g(0x5eed);
  return g;
}
void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

// ---- creation -----------------------------------------------------------------------------------
Tensor from_vector(const std::vector<double>& values, Shape shape, DType dtype) {
  if (shape.empty() && values.size() != 1) shape = {int64_t(values.size())};
  ATTNLAB_CHECK(numel(shape) == int64_t(values.size()), "from_vector: ", values.size(),
                " values do not fill shape ", shape_str(shape));
  Tensor t = Tensor::empty(shape, dtype);
  const int64_t n = int64_t(values.size());
  if (dtype == DType::bf16 || dtype == DType::f16) {
    uint16_t* p = t.data<uint16_t>();
    for (int64_t i = 0; i < n; ++i)
      p[i] = dtype == DType::bf16 ? kernels::f32_to_bf16(float(values[size_t(i)]))
                                  : kernels::f32_to_f16(float(values[size_t(i)]));
    return t;
  }
  dispatch_numeric(dtype, "from_vector", [&]<class T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = T(values[size_t(i)]);
  });
  return t;
}

Tensor from_vector_i64(const std::vector<int64_t>& values, Shape shape) {
  if (shape.empty() && values.size() != 1) shape = {int64_t(values.size())};
  ATTNLAB_CHECK(numel(shape) == int64_t(values.size()), "from_vector_i64: ", values.size(),
                " values do not fill shape ", shape_str(shape));
  Tensor t = Tensor::empty(shape, DType::i64);
  std::copy(values.begin(), values.end(), t.data<int64_t>());
  return t;
}

Tensor empty(const Shape& shape, DType dtype, Device device) { return Tensor::empty(shape, dtype, device); }

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  ops::fill_(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor full_like(const Tensor& t, double v) { return full(t.shape(), v, t.dtype(), t.device()); }
Tensor scalar_tensor(double value, DType dtype) { return full({}, value, dtype); }

Tensor arange(double start, double end, double step, DType dtype) {
  ATTNLAB_CHECK(step != 0, "arange: step must be non-zero");
  const int64_t n = std::max<int64_t>(0, int64_t(std::ceil((end - start) / step)));
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = start + double(i) * step;
  return from_vector(v, {n}, dtype);
}
Tensor arange(int64_t end, DType dtype) { return arange(0, double(end), 1, dtype); }

Tensor linspace(double start, double end, int64_t steps, DType dtype) {
  ATTNLAB_CHECK(steps >= 0, "linspace: steps must be >= 0, got ", steps);
  std::vector<double> v(static_cast<size_t>(steps));
  const double step = steps > 1 ? (end - start) / double(steps - 1) : 0.0;
  for (int64_t i = 0; i < steps; ++i)  // symmetric formula, as torch, so the end point is exact
    v[size_t(i)] = i < steps / 2 ? start + step * double(i) : end - step * double(steps - 1 - i);
  return from_vector(v, {steps}, dtype);
}

Tensor uniform(const Shape& shape, double lo, double hi, DType dtype, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (auto& x : v) x = lo + (hi - lo) * g.uniform();
  return from_vector(v, shape, dtype);
}
Tensor rand(const Shape& shape, DType dtype, Generator* gen) { return uniform(shape, 0, 1, dtype, gen); }

Tensor normal(const Shape& shape, double mean, double std, DType dtype, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  std::vector<double> v(static_cast<size_t>(numel(shape)));
  for (auto& x : v) x = mean + std * g.normal();
  return from_vector(v, shape, dtype);
}
Tensor randn(const Shape& shape, DType dtype, Generator* gen) { return normal(shape, 0, 1, dtype, gen); }

Tensor tensor(std::initializer_list<double> values, DType dtype) {
  return from_vector(std::vector<double>(values), {int64_t(values.size())}, dtype);
}

Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, DType dtype) {
  std::vector<double> v;
  const int64_t ncols = rows.size() ? int64_t(rows.begin()->size()) : 0;
  for (const auto& r : rows) {
    ATTNLAB_CHECK(int64_t(r.size()) == ncols, "tensor: ragged rows (", r.size(), " vs ", ncols, ")");
    v.insert(v.end(), r.begin(), r.end());
  }
  return from_vector(v, {int64_t(rows.size()), ncols}, dtype);
}

}  // namespace attnlab
