#include "nn/layers/linear.h"

#include <cmath>

#include "nn/functional.h"
#include "nn/init.h"

namespace attnlab::nn {

Linear::Linear(int64_t in, int64_t out, bool has_bias, DType dtype) : in_features(in), out_features(out) {
  ATTNLAB_CHECK(in > 0 && out > 0, "Linear: features must be positive, got in ", in, ", out ", out);
  weight = register_parameter("weight", zeros({out, in}, dtype));
  if (has_bias) bias = register_parameter("bias", zeros({out}, dtype));
  reset_parameters();
}

void Linear::reset_parameters(Generator* gen) {
  init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, init::Nonlinearity::leaky_relu, gen);
  if (bias.defined()) {
    const double b = 1.0 / std::sqrt(double(in_features));
    init::uniform_(bias, -b, b, gen);
  }
}

Tensor Linear::forward(const Tensor& x) { return functional::linear(x, weight, bias); }

}  // namespace attnlab::nn
