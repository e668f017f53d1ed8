#include "kernels/cpu/parallel.h"

#include <cblas.h>
#include <omp.h>

#include "kernels/error.h"

namespace attnlab::kernels {

void set_num_threads(int n) {
  ATTNLAB_CHECK(n >= 1, "set_num_threads: need n >= 1, got ", n);
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace attnlab::kernels
