// Creating tensors. Random tensors draw from a seedable Generator (a global default one, or pass your
// own); results are identical across runs and platforms for a given seed.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "tensor/tensor.h"

namespace attnlab {

// SplitMix64-seeded xoshiro256** generator; normal() by Box–Muller. Our own so that sequences do not
// depend on the standard library's distribution implementations.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) { manual_seed(seed); }
  void manual_seed(uint64_t seed);
  uint64_t next_u64();
  double uniform();  // [0, 1)
  double normal();   // N(0, 1)
  // State for exact resume (checkpoints).
  std::vector<uint64_t> state() const;
  void set_state(const std::vector<uint64_t>& s);

 private:
  uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0;
};

Generator& default_generator();
void manual_seed(uint64_t seed);  // seeds the default generator

// empty/zeros/ones/full allocate on `device` (filled there); the *_like versions use t's dtype and
// device. The other creation functions build on the CPU: move the result with .to(device).
Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = kCPU);
Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = kCPU);
Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = kCPU);
Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = kCPU);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor scalar_tensor(double value, DType dtype = DType::f32);  // shape []
// [start, end) with step, like torch.arange; dtype i64 unless given
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::i64);
Tensor arange(int64_t end, DType dtype = DType::i64);
Tensor linspace(double start, double end, int64_t steps, DType dtype = DType::f32);
Tensor rand(const Shape& shape, DType dtype = DType::f32, Generator* gen = nullptr);   // U[0,1)
Tensor randn(const Shape& shape, DType dtype = DType::f32, Generator* gen = nullptr);  // N(0,1)
Tensor uniform(const Shape& shape, double lo, double hi, DType dtype = DType::f32,
               Generator* gen = nullptr);
Tensor normal(const Shape& shape, double mean, double std, DType dtype = DType::f32,
              Generator* gen = nullptr);
// From host values (converted to dtype). Shape defaults to 1-D of values.size().
Tensor from_vector(const std::vector<double>& values, Shape shape = {}, DType dtype = DType::f32);
Tensor from_vector_i64(const std::vector<int64_t>& values, Shape shape = {});
// Nested literals: tensor({{1, 2}, {3, 4}})
Tensor tensor(std::initializer_list<double> values, DType dtype = DType::f32);
Tensor tensor(std::initializer_list<std::initializer_list<double>> rows, DType dtype = DType::f32);

}  // namespace attnlab
