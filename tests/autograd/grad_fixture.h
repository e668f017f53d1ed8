// The per-device fixture for differentiable ops (the backward half of tests/tensor/device_fixture.h):
// one table of GradCases, each run forward and backward on a device, in every floating dtype, against
// an oracle run of the same dtype-rounded inputs with the same upstream gradient (a fixed random tensor,
// so every path through the backward carries its own weight). Checked: the output and the gradient of
// every input, their dtypes, and that all of them live on the device.
//   - the test device cpu:1 (tensor/dtype.h) runs the CPU kernels, so its oracle is the cpu:0 run in
//     the same dtype and the results must be identical; what it catches is a backward that creates a
//     tensor without its inputs' device (it meets a cpu:1 tensor and throws, naming the op):
//     tests/autograd/test_device_grads.cpp, tests/nn/test_device_grads.cpp;
//   - cuda:0 against the CPU f32 oracle with dtype-scaled tolerances: tests/autograd/cuda/test_grads_cuda.cpp,
//     tests/nn/cuda/test_grads_cuda.cpp (skipped without a GPU).
// A case's function receives the device leaves and takes its views (permute, slice, expand) itself, so
// the backward of each view runs on the device too.
#pragma once
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "tests/tensor/device_fixture.h"

namespace attnlab::testing {

struct GradCase {
  std::string name;
  std::vector<Tensor> inputs;  // on the CPU; floating ones f32 (leaves that require grad, except `constant`)
  std::function<Tensor(const std::vector<Tensor>&)> fn;  // records the graph; returns a floating tensor
  double tol_scale = 1;                  // for long reductions and compositions
  std::vector<DType> dtypes = kFloatDTypes;
  bool cpu_half = true;    // false: the CPU op has no bf16/f16 backward
  bool cuda = true;        // false: not on the GPU yet (key padding mask, attention bias)
  bool cuda_f64 = true;    // false: the CUDA op has no f64 (attention)
  bool cuda_half = true;   // false: the CUDA backward has no bf16/f16 (scatter_add)
  std::vector<size_t> constant = {};  // floating inputs that do not require grad (a bias, a target)
};

inline bool runs_on(const GradCase& c, Device d, DType t) {
  const bool half = t == DType::bf16 || t == DType::f16;
  if (d.is_host()) return c.cpu_half || !half;
  return c.cuda && (c.cuda_f64 || t != DType::f64) && (c.cuda_half || !half);
}

namespace detail {
struct GradRun {
  Tensor out;
  std::vector<Tensor> leaves;
};

// The case on `device`: floating inputs as `dtype` leaves (from values rounded to `round`, then
// converted), integer inputs moved as they are; backward with the upstream gradient N(0, 1) from a fixed
// seed (the same in every run of the case), rounded to `round`, in the output's dtype.
inline GradRun run_grad_case(const GradCase& c, Device device, DType round, DType dtype) {
  GradRun r;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Tensor& x = c.inputs[i];
    if (!is_floating(x.dtype())) {
      r.leaves.push_back(ops::clone(x).to(device));
      continue;
    }
    Tensor leaf = ops::clone(ops::to_dtype(ops::to_dtype(x, round), dtype).to(device));  // a fresh leaf
    const bool constant = std::find(c.constant.begin(), c.constant.end(), i) != c.constant.end();
    if (!constant) leaf.set_requires_grad();
    r.leaves.push_back(leaf);
  }
  r.out = c.fn(r.leaves);
  REQUIRE(is_floating(r.out.dtype()));
  Generator gen(4321);
  const Tensor upstream = randn(r.out.shape(), DType::f32, &gen);
  const Tensor g = ops::to_dtype(ops::to_dtype(upstream, round), r.out.dtype()).to(device);
  backward(r.out, g);
  return r;
}

inline void check_same(const Tensor& got, const Tensor& expect, bool exact, double tol) {
  REQUIRE(got.shape() == expect.shape());
  if (exact) CHECK(got.to_vector<double>() == expect.to_vector<double>());
  else check_close(got, expect.to_vector<double>(), tol, tol);
}
}  // namespace detail

// Runs one case on (device, dtype) and CHECKs the output and every input gradient against the oracle.
inline void check_grad_case(const GradCase& c, Device device, DType dtype) {
  INFO(c.name << " on " << device.str() << " " << std::string(dtype_name(dtype)));
  const bool exact = device.is_host();  // the test device: the same kernels as cpu:0, bit for bit
  const DType oracle_dtype = exact ? dtype : DType::f32;
  const detail::GradRun want = detail::run_grad_case(c, kCPU, dtype, oracle_dtype);
  const detail::GradRun got = detail::run_grad_case(c, device, dtype, dtype);
  const double tol = dtype_tolerance(dtype) * c.tol_scale;
  CHECK(got.out.device() == device);
  CHECK(got.out.dtype() == (exact ? want.out.dtype() : dtype));
  detail::check_same(got.out, want.out, exact, tol);
  for (size_t i = 0; i < got.leaves.size(); ++i) {
    const Tensor& leaf = got.leaves[i];
    if (!leaf.requires_grad()) continue;
    INFO("gradient of input " << i << " " << describe(leaf));
    const Tensor g = leaf.grad(), w = want.leaves[i].grad();
    REQUIRE(g.defined() == w.defined());
    if (!g.defined()) continue;
    CHECK(g.device() == device);
    CHECK(g.dtype() == leaf.dtype());
    detail::check_same(g, w, exact, tol);
  }
}

inline void for_each_grad_case(const std::vector<GradCase>& cases, const std::vector<Device>& devices) {
  for (const auto& c : cases)
    for (Device d : devices)
      for (DType t : c.dtypes)
        if (runs_on(c, d, t)) {
          try {
            check_grad_case(c, d, t);
          } catch (const Error& e) {  // report and go on with the other cases
            FAIL_CHECK(cat(c.name, " on ", d.str(), " ", dtype_name(t), " threw: ", e.what()));
          }
        }
}

}  // namespace attnlab::testing
