// Shared helpers for the doctest suites.
#pragma once
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace attnlab::testing {

// The test device (tensor/dtype.h): host memory run by the CPU kernels, but distinct from cpu:0 in every
// device check, as a GPU is. A computation with all its tensors here throws at the first tensor made
// on the default device; its results equal the cpu:0 run's.
inline const Device kTestDevice{DeviceType::cpu, 1};

// A fresh scratch directory under the system temp dir, unique per process and name.
inline std::filesystem::path temp_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("attnlab_test_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::create_directories(d);
  return d;
}

// CHECKs every element of t against `expected` within atol + rtol * |expected|.
inline void check_close(const Tensor& t, const std::vector<double>& expected, double atol = 1e-6,
                        double rtol = 1e-6) {
  const auto v = t.to_vector<double>();
  REQUIRE(v.size() == expected.size());
  for (size_t i = 0; i < v.size(); ++i) {
    INFO("element " << i << ": got " << v[i] << ", expected " << expected[i]);
    if (std::isnan(expected[i])) CHECK(std::isnan(v[i]));
    else if (std::isinf(expected[i])) CHECK(v[i] == expected[i]);
    else CHECK(std::abs(v[i] - expected[i]) <= atol + rtol * std::abs(expected[i]));
  }
}

inline void check_close_tensor(const Tensor& a, const Tensor& b, double atol = 1e-6, double rtol = 1e-6) {
  REQUIRE(a.shape() == b.shape());
  check_close(a, b.to_vector<double>(), atol, rtol);
}

// CHECKs two named tensor lists (state dicts, loaded files) for the same names, in order, and
// bit-identical values.
inline void check_identical(const std::vector<std::pair<std::string, Tensor>>& a,
                            const std::vector<std::pair<std::string, Tensor>>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    CHECK(a[i].first == b[i].first);
    CHECK(a[i].second.to_vector<double>() == b[i].second.to_vector<double>());
  }
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  return ops::amax(ops::unary(ops::UnaryOp::abs, ops::sub(a, b))).item<double>();
}

// Asserts that `fn` throws attnlab::Error whose message contains every one of `parts`.
template <class F>
void check_error(F&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    FAIL("expected attnlab::Error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) {
      INFO("message: " << msg << " | missing: " << p);
      CHECK(msg.find(p) != std::string::npos);
    }
  }
}

}  // namespace attnlab::testing
