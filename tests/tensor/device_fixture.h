// The per-device op fixture (ggml's test-backend-ops idea): one table of op cases, each run on every
// device and floating dtype, checked against the CPU f32 result of the same (dtype-rounded) inputs.
//   for_each_case(op_cases(), {kCPU, kTestDevice}) in tests/tensor/test_device_ops.cpp (runs everywhere);
//   for_each_case(op_cases(), {cuda:0}) in tests/tensor/cuda/test_ops_cuda.cpp (skipped without a GPU).
// A case is inputs (CPU, f32 for floating ones) and a function of the moved inputs; views (permute,
// expand, slice) are taken inside the function, so they are views of the device tensors.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "test_util.h"
#include "tensor/creation.h"
#include "tensor/ops.h"

namespace attnlab::testing {

inline const std::vector<DType> kFloatDTypes = {DType::f32, DType::f64, DType::bf16, DType::f16};

// Tolerance of a dtype against the f32 oracle (atol and rtol; scaled per case).
inline double dtype_tolerance(DType t) {
  switch (t) {
    case DType::f32: return 2e-5;
    case DType::f64: return 2e-5;  // vs the f32 oracle
    case DType::bf16: return 3e-2;
    case DType::f16: return 4e-3;
    default: return 0;
  }
}

struct OpCase {
  std::string name;
  std::vector<Tensor> inputs;  // on the CPU; floating ones f32
  std::function<Tensor(const std::vector<Tensor>&)> fn;
  double tol_scale = 1;                  // for long reductions and compositions
  std::vector<DType> dtypes = kFloatDTypes;
  bool cpu_half = true;  // false: the CPU op has no bf16/f16 path (the CUDA one does)
};

// The case inputs for (dtype, device): floating inputs converted to dtype, all moved to device.
inline std::vector<Tensor> case_inputs(const std::vector<Tensor>& in, DType dtype, Device device) {
  std::vector<Tensor> out;
  for (const auto& t : in) out.push_back((is_floating(t.dtype()) ? ops::to_dtype(t, dtype) : t).to(device));
  return out;
}

// Runs one case on (device, dtype) and CHECKs it against the CPU f32 oracle on the same rounded inputs.
inline void check_case(const OpCase& c, Device device, DType dtype) {
  INFO(c.name << " on " << device.str() << " " << std::string(dtype_name(dtype)));
  std::vector<Tensor> rounded;  // the inputs as the device sees them, back in f32 on the CPU
  for (const auto& t : c.inputs)
    rounded.push_back(is_floating(t.dtype()) ? ops::to_dtype(ops::to_dtype(t, dtype), DType::f32) : t);
  const Tensor expect = c.fn(rounded);
  const Tensor got = c.fn(case_inputs(c.inputs, dtype, device));
  CHECK(got.device() == device);
  REQUIRE(got.shape() == expect.shape());
  if (!is_floating(expect.dtype())) {  // indices, masks: exact
    CHECK(got.dtype() == expect.dtype());
    CHECK(got.to_vector<double>() == expect.to_vector<double>());
    return;
  }
  CHECK(got.dtype() == dtype);
  const double tol = dtype_tolerance(dtype) * c.tol_scale;
  check_close(got, expect.to_vector<double>(), tol, tol);
}

inline void for_each_case(const std::vector<OpCase>& cases, const std::vector<Device>& devices) {
  for (const auto& c : cases)
    for (Device d : devices)
      for (DType t : c.dtypes)
        if (c.cpu_half || d.type != DeviceType::cpu || !(t == DType::bf16 || t == DType::f16)) {
          try {
            check_case(c, d, t);
          } catch (const Error& e) {  // report and go on with the other cases
            FAIL_CHECK(cat(c.name, " on ", d.str(), " ", dtype_name(t), " threw: ", e.what()));
          }
        }
}

}  // namespace attnlab::testing
