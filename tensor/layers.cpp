// Fused layer kernels as tensor ops (GELU backward, LayerNorm forward/backward), on the CPU kernels of
// kernels/cpu or, for CUDA tensors, kernels/cuda. autograd/ pairs them into differentiable functions.
#include "kernels/cpu/gelu.h"
#include "kernels/cpu/layernorm.h"
#include "tensor/creation.h"
#include "kernels/cuda/ops.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace attnlab::ops {

namespace {
// f32 for bf16/f16 (computed in f32, as every op here), else the dtype itself.
DType compute_dtype(const Tensor& t, const char* op) {
  ATTNLAB_CHECK(is_floating(t.dtype()), op, ": needs a floating dtype, got ", describe(t));
  return t.dtype() == DType::bf16 || t.dtype() == DType::f16 ? DType::f32 : t.dtype();
}
}  // namespace

Tensor gelu_backward(const Tensor& g, const Tensor& x, bool tanh_approx) {
  ATTNLAB_CHECK(g.shape() == x.shape() && g.dtype() == x.dtype(), "gelu_backward: gradient ", describe(g),
                " does not match input ", describe(x));
  check_same_device("gelu_backward", g, x);
  const DType ct = compute_dtype(x, "gelu_backward");
  const Tensor xc = contiguous(to_dtype(x, ct)), gc = contiguous(to_dtype(g, ct));
  Tensor d = zeros(x.shape(), ct, x.device());
  if (x.is_cuda()) {
    if (xc.numel())
      kernels::cuda::gelu_backward(ct, d.raw_data(), xc.raw_data(), gc.raw_data(), xc.numel(), tanh_approx,
                                   x.device().index);
  } else dispatch_float(ct, "gelu_backward", [&]<class T>() {
    kernels::gelu_backward<T>(d.data<T>(), xc.data<T>(), gc.data<T>(), xc.numel(),
                              tanh_approx ? kernels::GeluApprox::tanh : kernels::GeluApprox::none);
  });
  return to_dtype(d, x.dtype());
}

LayerNormOut layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  ATTNLAB_CHECK(x.dim() >= 1, "layer_norm: input must have at least 1 dim, got ", describe(x));
  const int64_t C = x.size(-1), N = C ? x.numel() / C : 0;
  for (const Tensor* p : {&weight, &bias})
    if (p->defined()) {
      ATTNLAB_CHECK(p->shape() == Shape{C} && p->dtype() == x.dtype(), "layer_norm: parameter ",
                    describe(*p), " does not match normalized shape [", C, "] of ", describe(x));
      check_same_device("layer_norm", x, *p);
    }
  const DType ct = compute_dtype(x, "layer_norm");
  const Device dev = x.device();
  const Tensor xc = contiguous(to_dtype(x, ct));
  const Tensor wc = weight.defined() ? contiguous(to_dtype(weight, ct)) : Tensor();
  const Tensor bc = bias.defined() ? contiguous(to_dtype(bias, ct)) : Tensor();
  LayerNormOut r{Tensor::empty(x.shape(), ct, dev), Tensor::empty({N}, ct, dev), Tensor::empty({N}, ct, dev)};
  if (x.is_cuda()) {
    if (N && C)
      kernels::cuda::layernorm_forward(ct, r.out.raw_data(), r.mean.raw_data(), r.rstd.raw_data(), xc.raw_data(),
                                       wc.defined() ? wc.raw_data() : nullptr, bc.defined() ? bc.raw_data() : nullptr,
                                       N, C, eps, dev.index);
  } else dispatch_float(ct, "layer_norm", [&]<class T>() {
    kernels::layernorm_forward<T>(r.out.data<T>(), r.mean.data<T>(), r.rstd.data<T>(), xc.data<T>(),
                                  wc.defined() ? wc.data<T>() : nullptr, bc.defined() ? bc.data<T>() : nullptr,
                                  N, C, eps);
  });
  r.out = to_dtype(r.out, x.dtype());
  return r;
}

LayerNormGrads layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                                   const Tensor& rstd, bool has_bias) {
  ATTNLAB_CHECK(g.shape() == x.shape(), "layer_norm_backward: gradient ", describe(g), " does not match input ",
                describe(x));
  for (const Tensor* p : {&g, &weight, &mean, &rstd})
    if (p->defined()) check_same_device("layer_norm_backward", x, *p);
  const DType ct = mean.dtype();
  const Device dev = x.device();
  const int64_t C = x.size(-1), N = C ? x.numel() / C : 0;
  const Tensor xc = contiguous(to_dtype(x, ct)), gc = contiguous(to_dtype(g, ct));
  const Tensor wc = weight.defined() ? contiguous(to_dtype(weight, ct)) : Tensor();
  LayerNormGrads r{zeros(x.shape(), ct, dev), wc.defined() ? zeros({C}, ct, dev) : Tensor(),
                   has_bias ? zeros({C}, ct, dev) : Tensor()};
  if (x.is_cuda()) {
    if (N && C)
      kernels::cuda::layernorm_backward(ct, r.dx.raw_data(), wc.defined() ? r.dweight.raw_data() : nullptr,
                                        has_bias ? r.dbias.raw_data() : nullptr, gc.raw_data(), xc.raw_data(),
                                        wc.defined() ? wc.raw_data() : nullptr, mean.raw_data(), rstd.raw_data(),
                                        N, C, dev.index);
  } else dispatch_float(ct, "layer_norm_backward", [&]<class T>() {
    kernels::layernorm_backward<T>(r.dx.data<T>(), wc.defined() ? r.dweight.data<T>() : nullptr,
                                   has_bias ? r.dbias.data<T>() : nullptr, gc.data<T>(), xc.data<T>(),
                                   wc.defined() ? wc.data<T>() : nullptr, mean.data<T>(), rstd.data<T>(), N, C);
  });
  r.dx = to_dtype(r.dx, x.dtype());
  if (r.dweight.defined()) r.dweight = to_dtype(r.dweight, weight.dtype());
  if (r.dbias.defined()) r.dbias = to_dtype(r.dbias, x.dtype());
  return r;
}

}  // namespace attnlab::ops
