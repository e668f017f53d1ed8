// One place to set the CPU thread count, kept consistent between OpenMP loops and OpenBLAS.
#pragma once

namespace attnlab::kernels {

// Sets the threads used by our OpenMP loops AND by OpenBLAS (n >= 1).
void set_num_threads(int n);
int get_num_threads();

// Below this many elements an elementwise/reduction loop runs single-threaded (thread start-up costs
// more than the work).
constexpr long kParallelGrain = 1 << 15;

}  // namespace attnlab::kernels
