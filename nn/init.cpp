#include "nn/init.h"

#include <cmath>

#include "autograd/graph.h"
#include "tensor/ops.h"

namespace attnlab::nn::init {
namespace {
// Writes `values` (drawn in f64 so every dtype sees the same numbers) into t.
void assign(const Tensor& t, const Tensor& values) {
  NoGradGuard guard;
  ops::copy_(t, values);
}

void check_floating(const Tensor& t, const char* op) {
  ATTNLAB_CHECK(t.defined(), "init::", op, ": undefined tensor");
  ATTNLAB_CHECK(is_floating(t.dtype()), "init::", op, ": tensor must be floating point, got ", describe(t));
}
}  // namespace

std::pair<int64_t, int64_t> fans(const Tensor& t) {
  ATTNLAB_CHECK(t.dim() >= 2, "init: fan in and fan out need a tensor with at least 2 dims, got ",
                describe(t));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

double calculate_gain(Nonlinearity nl, double param) {
  switch (nl) {
    case Nonlinearity::linear:
    case Nonlinearity::sigmoid: return 1.0;
    case Nonlinearity::tanh: return 5.0 / 3.0;
    case Nonlinearity::relu: return std::sqrt(2.0);
    case Nonlinearity::leaky_relu: {
      const double slope = param < 0 ? 0.01 : param;
      return std::sqrt(2.0 / (1.0 + slope * slope));
    }
    case Nonlinearity::selu: return 0.75;
  }
  return 1.0;
}

void uniform_(const Tensor& t, double lo, double hi, Generator* gen) {
  check_floating(t, "uniform_");
  assign(t, uniform(t.shape(), lo, hi, DType::f64, gen));
}

void normal_(const Tensor& t, double mean, double std, Generator* gen) {
  check_floating(t, "normal_");
  assign(t, normal(t.shape(), mean, std, DType::f64, gen));
}

void constant_(const Tensor& t, double value) {
  ATTNLAB_CHECK(t.defined(), "init::constant_: undefined tensor");
  NoGradGuard guard;
  ops::fill_(t, value);
}
void zeros_(const Tensor& t) { constant_(t, 0.0); }
void ones_(const Tensor& t) { constant_(t, 1.0); }

void xavier_uniform_(const Tensor& t, double gain, Generator* gen) {
  const auto [fan_in, fan_out] = fans(t);
  const double b = gain * std::sqrt(6.0 / double(fan_in + fan_out));
  uniform_(t, -b, b, gen);
}

void xavier_normal_(const Tensor& t, double gain, Generator* gen) {
  const auto [fan_in, fan_out] = fans(t);
  normal_(t, 0.0, gain * std::sqrt(2.0 / double(fan_in + fan_out)), gen);
}

namespace {
double kaiming_std(const Tensor& t, double a, FanMode mode, Nonlinearity nl) {
  const auto [fan_in, fan_out] = fans(t);
  const int64_t fan = mode == FanMode::fan_in ? fan_in : fan_out;
  ATTNLAB_CHECK(fan > 0, "init::kaiming: zero fan for ", describe(t));
  return calculate_gain(nl, a) / std::sqrt(double(fan));
}
}  // namespace

void kaiming_uniform_(const Tensor& t, double a, FanMode mode, Nonlinearity nl, Generator* gen) {
  const double b = std::sqrt(3.0) * kaiming_std(t, a, mode, nl);
  uniform_(t, -b, b, gen);
}

void kaiming_normal_(const Tensor& t, double a, FanMode mode, Nonlinearity nl, Generator* gen) {
  normal_(t, 0.0, kaiming_std(t, a, mode, nl), gen);
}

}  // namespace attnlab::nn::init
