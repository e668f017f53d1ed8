// Parameter initialisation, with torch.nn.init's formulas so models start from the same
// distributions as their PyTorch counterparts. Every function fills `t` in place (under NoGradGuard,
// so parameters that require grad are fine), draws from `gen` or the default generator (seed it with
// attnlab::manual_seed), and returns nothing.
//
// Fans (PyTorch's _calculate_fan_in_and_fan_out), for t of shape [out, in, k...] (dim >= 2):
//   receptive = prod(k...), fan_in = in * receptive, fan_out = out * receptive.
// A Linear weight [out, in] has fan_in = in, fan_out = out.
#pragma once
#include <cstdint>
#include <utility>

#include "tensor/creation.h"
#include "tensor/tensor.h"

namespace attnlab::nn::init {

enum class FanMode { fan_in, fan_out };
enum class Nonlinearity { linear, sigmoid, tanh, relu, leaky_relu, selu };

// (fan_in, fan_out); Error for dim < 2.
std::pair<int64_t, int64_t> fans(const Tensor& t);
// torch.nn.init.calculate_gain: linear/sigmoid 1, tanh 5/3, relu sqrt(2), selu 3/4,
// leaky_relu sqrt(2 / (1 + slope^2)) with `param` the negative slope (PyTorch's default 0.01 when < 0).
double calculate_gain(Nonlinearity nl, double param = -1.0);

void uniform_(const Tensor& t, double lo = 0.0, double hi = 1.0, Generator* gen = nullptr);
void normal_(const Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
void constant_(const Tensor& t, double value);
void zeros_(const Tensor& t);
void ones_(const Tensor& t);

// U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))
void xavier_uniform_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// N(0, s), s = gain * sqrt(2 / (fan_in + fan_out))
void xavier_normal_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// U(-b, b), b = sqrt(3) * gain(nl, a) / sqrt(fan). PyTorch's defaults: a = 0, fan_in, leaky_relu.
// Linear's own init is kaiming_uniform_(w, a = sqrt(5)), which gives b = 1 / sqrt(fan_in).
void kaiming_uniform_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                      Nonlinearity nl = Nonlinearity::leaky_relu, Generator* gen = nullptr);
// N(0, s), s = gain(nl, a) / sqrt(fan)
void kaiming_normal_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                     Nonlinearity nl = Nonlinearity::leaky_relu, Generator* gen = nullptr);

}  // namespace attnlab::nn::init
