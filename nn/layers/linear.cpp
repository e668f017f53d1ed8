#include "nn/layers/linear.h"

#include <cmath>

#include "autograd/graph.h"
#include "kernels/cpu/convert.h"
#include "nn/functional.h"
#include "nn/init.h"
#include "tensor/ops.h"

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

Tensor Linear::forward(const Tensor& x) {
  if (format_ != kernels::WeightFormat::f32 && !GradMode::is_enabled() && x.dtype() == DType::f32 &&
      x.device() == kCPU && weight.dtype() == DType::f32 && weight.device() == kCPU)
    return packed_forward(x);
  return functional::linear(x, weight, bias);
}

void Linear::pack_weights(kernels::WeightFormat format) {
  format_ = format;
  packed_ = packed_scales_ = Tensor();
  if (format == kernels::WeightFormat::f32) return;
  ATTNLAB_CHECK(weight.dtype() == DType::f32 && weight.device() == kCPU, "Linear::pack_weights: ",
                kernels::weight_format_name(format), " packing needs an f32 CPU weight, got ", describe(weight),
                " on ", weight.device().str());
  repack_if_stale();
}

void Linear::repack_if_stale() {
  if (packed_.defined() && packed_version_ == weight.version()) return;
  const Tensor w = ops::contiguous(weight.detach());
  const float* src = w.data<float>();
  if (format_ == kernels::WeightFormat::bf16) {
    packed_ = Tensor::empty({out_features, in_features}, DType::bf16);
    kernels::f32_to_bf16(src, static_cast<uint16_t*>(packed_.raw_data()), w.numel());
  } else {
    packed_ = Tensor::empty({out_features, in_features}, DType::i8);
    packed_scales_ = Tensor::empty({out_features}, DType::f32);
    kernels::pack_int8_rows(src, out_features, in_features, packed_.data<int8_t>(), packed_scales_.data<float>());
  }
  packed_version_ = weight.version();
}

Tensor Linear::unpacked_weight() const {
  Tensor w = Tensor::empty({out_features, in_features}, DType::f32);
  if (format_ == kernels::WeightFormat::bf16)
    kernels::bf16_to_f32(static_cast<const uint16_t*>(packed_.raw_data()), w.data<float>(), w.numel());
  else
    kernels::unpack_int8_rows(packed_.data<int8_t>(), packed_scales_.data<float>(), out_features, in_features,
                              w.data<float>());
  return w;
}

Tensor Linear::packed_forward(const Tensor& x) {
  ATTNLAB_CHECK(x.dim() >= 1 && x.size(-1) == in_features, "Linear: input ", describe(x),
                " does not end in in_features = ", in_features);
  repack_if_stale();
  const int64_t rows = x.numel() / in_features;
  // Many positions (a prefill) are a matrix product: multiply by the unpacked values, so every
  // position, cached or not, sees the same rounded weights.
  if (rows != 1) return functional::linear(x, unpacked_weight(), bias);
  const Tensor xc = ops::contiguous(x);
  Shape shape = x.shape();
  shape.back() = out_features;
  Tensor y = Tensor::empty(shape, DType::f32);
  forward_row(xc.data<float>(), y.data<float>());
  return y;
}

void Linear::forward_row(const float* x, float* y) {
  ATTNLAB_CHECK(weight.dtype() == DType::f32 && weight.device() == kCPU && weight.is_contiguous(),
                "Linear::forward_row needs a contiguous f32 CPU weight, got ", describe(weight), " on ",
                weight.device().str());
  switch (format_) {
    case kernels::WeightFormat::f32:
      kernels::gemv(out_features, in_features, 1.f, weight.data<float>(), in_features, x, 0.f, y);
      break;
    case kernels::WeightFormat::bf16:
      repack_if_stale();
      kernels::gemv_bf16(out_features, in_features, static_cast<const uint16_t*>(packed_.raw_data()), x, y);
      break;
    case kernels::WeightFormat::int8:
      repack_if_stale();
      kernels::gemv_int8(out_features, in_features, packed_.data<int8_t>(), packed_scales_.data<float>(), x, y);
      break;
    case kernels::WeightFormat::w8a8:
      repack_if_stale();
      kernels::gemv_w8a8(out_features, in_features, packed_.data<int8_t>(), packed_scales_.data<float>(), x, y);
      break;
  }
  if (bias.defined()) {
    const float* b = bias.data<float>();
    for (int64_t i = 0; i < out_features; ++i) y[i] += b[i];
  }
}

void pack_linear_weights(Module& m, kernels::WeightFormat format) {
  m.apply([format](Module& mod) {
    if (auto* lin = dynamic_cast<Linear*>(&mod)) lin->pack_weights(format);
  });
}

}  // namespace attnlab::nn
