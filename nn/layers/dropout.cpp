#include "nn/layers/dropout.h"

#include "nn/functional.h"

namespace attnlab::nn {

Dropout::Dropout(double p_, uint64_t seed) : p(p_), gen(seed) {
  ATTNLAB_CHECK(p >= 0.0 && p <= 1.0, "Dropout: p must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return functional::dropout(x, p, is_training(), gen); }

}  // namespace attnlab::nn
