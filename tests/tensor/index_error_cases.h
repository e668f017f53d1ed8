// The out-of-range index errors every device must give (issue 19: the first GPU run reported "index 0"
// for indices 7 and 4): the first bad index in the index's row-major order, its position in the index,
// the dim and its size. Run on the CPU and the test device by test_ops.cpp, on cuda:0 by
// cuda/test_ops_cuda.cpp.
#pragma once
#include "test_util.h"
#include "tensor/creation.h"
#include "tensor/ops.h"

namespace attnlab::testing {

inline void check_index_errors(Device d) {
  INFO("on " << d.str());
  const Tensor e = randn({5, 4}).to(d);
  const Tensor src = randn({3, 4}).to(d);  // index_add's rows; scatter_add a strided [2, 2] view of them
  // the index may live on the host or on the device
  for (Device idx_dev : {kCPU, d}) {
    INFO("index on " << idx_dev.str());
    auto idx = [&](std::vector<int64_t> v, Shape s = {}) { return from_vector_i64(v, s).to(idx_dev); };
    check_error([&] { (void)ops::index_select(e, 0, idx({1, 7})); },
                {"index_select: index 7 out of range for dim 0 of size 5", "element [1] of the index"});
    // several bad ones: the first is named, whatever order the GPU threads saw them in
    check_error([&] { (void)ops::index_select(e, 1, idx({2, 9, -1, 4})); },
                {"index_select: index 9 out of range for dim 1 of size 4", "element [1]"});
    check_error([&] { (void)ops::gather(e, 1, idx({0, 4}, {1, 2})); },
                {"gather: index 4 out of range for dim 1 of size 4", "element [0, 1] of the index i64[1, 2]"});
    check_error([&] { (void)ops::gather(e, 0, idx({0, 1, 2, 3, 4, 5, 6, 7}, {2, 4})); },
                {"gather: index 5 out of range for dim 0 of size 5", "element [1, 1]"});
    const Tensor strided_src = ops::slice(ops::slice(src, 1, 0, 4, 2), 0, 0, 2);  // [2, 2]
    check_error([&] { (void)ops::scatter_add(e, 1, idx({3, 1, 0, -2}, {2, 2}), strided_src); },
                {"scatter_add: index -2 out of range for dim 1 of size 4", "element [1, 1]"});
    check_error([&] { (void)ops::index_add({5, 4}, 0, idx({4, 5, 0}), src); },
                {"index_add: index 5 out of range for dim 0 of size 5", "element [1]"});
  }
}

}  // namespace attnlab::testing
