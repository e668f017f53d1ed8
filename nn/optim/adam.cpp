#include "nn/optim/adam.h"

#include <cmath>

#include "kernels/cuda/ops.h"
#include "tensor/creation.h"
#include "tensor/ops.h"

namespace attnlab::optim {

Adam::Adam(std::vector<ParamGroup> groups, double lr, Betas betas, double eps,
           double weight_decay, bool amsgrad, bool decoupled, const char* who)
    : Optimizer(std::move(groups), lr, weight_decay, who),
      betas_(betas),
      eps_(eps),
      amsgrad_(amsgrad),
      decoupled_(decoupled) {
  check_nonnegative(eps, "eps", who);
  ATTNLAB_CHECK(betas.first >= 0 && betas.first < 1, who, ": invalid beta1 ", betas.first,
                " (must be in [0, 1))");
  ATTNLAB_CHECK(betas.second >= 0 && betas.second < 1, who, ": invalid beta2 ", betas.second,
                " (must be in [0, 1))");
}

std::vector<std::string> Adam::buffer_names() const {
  if (amsgrad_) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"exp_avg", "exp_avg_sq"};
}

nlohmann::json Adam::hyperparams() const {
  return {{"betas", {betas_.first, betas_.second}}, {"eps", eps_}, {"amsgrad", amsgrad_}};
}

namespace {

// Scalars shared by every element of one parameter, computed once in double (as PyTorch does on
// the host) and rounded to T.
template <class T>
struct AdamScalars {
  T beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
  T l2;            // coupled weight decay (Adam), else 0
  T decay_factor;  // 1 - lr * weight_decay (AdamW), else 1
  T neg_step_size, bias_correction2_sqrt;
};

template <class T>
void adam_kernel(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, const AdamScalars<T>& s) {
#pragma omp parallel for schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    if (s.decay_factor != T(1)) p[i] = p[i] * s.decay_factor;
    const T gi = s.l2 != T(0) ? g[i] + s.l2 * p[i] : g[i];
    m[i] = m[i] * s.beta1 + s.one_minus_beta1 * gi;
    v[i] = v[i] * s.beta2 + s.one_minus_beta2 * gi * gi;
    T second = v[i];
    if (vmax) {
      vmax[i] = std::max(vmax[i], v[i]);  // NaN-propagation aside, torch.maximum
      second = vmax[i];
    }
    const T denom = std::sqrt(second) / s.bias_correction2_sqrt + s.eps;
    p[i] = p[i] + s.neg_step_size * (m[i] / denom);
  }
}

template <class T>
void run(const Tensor& param, const Tensor& grad, std::vector<std::pair<std::string, Tensor>>& bufs,
         const AdamScalars<T>& s) {
  adam_kernel<T>(param.data<T>(), grad.data<T>(), bufs[0].second.data<T>(),
                 bufs[1].second.data<T>(), bufs.size() > 2 ? bufs[2].second.data<T>() : nullptr,
                 param.numel(), s);
}

// The same update composed of tensor ops, for parameters off the CPU (the ops run where the tensors
// are). Elementwise order as adam_kernel; the scalars stay in double until each op rounds them.
void run_ops(const Tensor& p, const Tensor& g, std::vector<std::pair<std::string, Tensor>>& bufs, double beta1,
             double beta2, double eps, double l2, double decay_factor, double step_size, double bc2_sqrt) {
  using ops::BinaryOp;
  const Tensor &m = bufs[0].second, &v = bufs[1].second;
  if (decay_factor != 1.0) ops::mul_(p, decay_factor);
  const Tensor gi = l2 != 0.0 ? ops::add(g, ops::binary_scalar(BinaryOp::mul, p, l2)) : g;
  ops::mul_(m, beta1);
  ops::add_(m, gi, 1.0 - beta1);
  ops::mul_(v, beta2);
  ops::add_(v, ops::unary(ops::UnaryOp::square, gi), 1.0 - beta2);
  Tensor second = v;
  if (bufs.size() > 2) {
    ops::binary_(BinaryOp::maximum, bufs[2].second, v);
    second = bufs[2].second;
  }
  const Tensor denom = ops::binary_scalar(
      BinaryOp::add, ops::binary_scalar(BinaryOp::div, ops::unary(ops::UnaryOp::sqrt, second), bc2_sqrt), eps);
  ops::add_(p, ops::div(m, denom), -step_size);
}

}  // namespace

void Adam::update(const Tensor& param, const Tensor& grad, const ParamGroup& group,
                  ParamState& state) {
  if (state.buffers.empty())
    for (const auto& b : buffer_names())
      state.buffers.emplace_back(b, zeros_like(param));  // on the parameter's device

  const double lr = *group.lr, wd = *group.weight_decay;
  const double t = double(state.step);
  const double bias_correction1 = 1.0 - std::pow(betas_.first, t);
  const double bias_correction2 = 1.0 - std::pow(betas_.second, t);
  const double step_size = lr / bias_correction1;

  auto scalars = [&]<class T>() {
    return AdamScalars<T>{T(betas_.first),
                          T(betas_.second),
                          T(1.0 - betas_.first),
                          T(1.0 - betas_.second),
                          T(eps_),
                          T(decoupled_ ? 0.0 : wd),
                          T(decoupled_ ? 1.0 - lr * wd : 1.0),
                          T(-step_size),
                          T(std::sqrt(bias_correction2))};
  };
  if (param.is_cuda() && decoupled_ && !amsgrad_ && param.dtype() == DType::f32 && !use_tensor_ops) {
    // One fused launch (kernels/cuda/ops.h) instead of the ~9 elementwise ops of run_ops.
    kernels::cuda::adamw_step(param.data<float>(), grad.data<float>(), state.buffers[0].second.data<float>(),
                              state.buffers[1].second.data<float>(), param.numel(), lr, betas_.first,
                              betas_.second, eps_, wd, state.step, 1.0, param.device().index);
  } else if (param.device() != kCPU || use_tensor_ops) {
    run_ops(param, grad, state.buffers, betas_.first, betas_.second, eps_, decoupled_ ? 0.0 : wd,
            decoupled_ ? 1.0 - lr * wd : 1.0, step_size, std::sqrt(bias_correction2));
  } else if (param.dtype() == DType::f64) run<double>(param, grad, state.buffers, scalars.operator()<double>());
  else run<float>(param, grad, state.buffers, scalars.operator()<float>());
  for (auto& b : state.buffers) b.second.bump_version();
}

}  // namespace attnlab::optim
