// Internal to autograd/: the tensor-level helpers the derivative rules use. Backward closures run
// under NoGradGuard, so any differentiable op called inside one records nothing.
#pragma once
#include "tensor/ops.h"

namespace attnlab {
using ops::BinaryOp;
using ops::binary;
using ops::binary_scalar;
using ops::compare;
using ops::compare_scalar;
using ops::index_add;
using ops::log_softmax_backward;
using ops::rbinary_scalar;
using ops::softmax_backward;
using ops::sum_to;
using ops::unary;
using ops::UnaryOp;
}  // namespace attnlab
