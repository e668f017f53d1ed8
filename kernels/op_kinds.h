// The elementwise op codes shared by tensor/ops.h (as ops::BinaryOp, ...) and the raw CUDA kernels, so
// both layers name the same ops from one definition.
#pragma once
#include <cstdint>

namespace attnlab::kernels {

enum class BinaryOp : uint8_t { add, sub, mul, div, pow, maximum, minimum };
enum class UnaryOp : uint8_t { neg, exp, log, sqrt, rsqrt, tanh, sigmoid, relu, abs, sign, square,
                               reciprocal, sin, cos, erf };
enum class CompareOp : uint8_t { eq, ne, lt, le, gt, ge };

}  // namespace attnlab::kernels
