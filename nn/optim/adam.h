// Adam (Kingma & Ba, 2015) — torch.optim.Adam's exact update rule, with optional AMSGrad.
//
// For each parameter p with gradient g, at its t-th update (t counts from 1):
//   g     = g + weight_decay * p                   (L2 penalty, coupled: goes through m and v)
//   m     = beta1 * m + (1 - beta1) * g
//   v     = beta2 * v + (1 - beta2) * g²
//   v_max = max(v_max, v)                          (amsgrad only; then v_max replaces v below)
//   p     = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Buffers: "exp_avg" (m), "exp_avg_sq" (v), "max_exp_avg_sq" (v_max, amsgrad only), all zero
// before the first update. AdamW (adamw.h) is this class with decoupled weight decay.
#pragma once
#include <utility>

#include "nn/optim/optimizer.h"

namespace attnlab::optim {

class Adam : public Optimizer {
 public:
  using Betas = std::pair<double, double>;

  Adam(std::vector<ParamGroup> groups, double lr = 1e-3, Betas betas = {0.9, 0.999},
       double eps = 1e-8, double weight_decay = 0.0, bool amsgrad = false)
      : Adam(std::move(groups), lr, betas, eps, weight_decay, amsgrad, false, "Adam") {}
  Adam(const std::vector<Tensor>& params, double lr = 1e-3, Betas betas = {0.9, 0.999},
       double eps = 1e-8, double weight_decay = 0.0, bool amsgrad = false)
      : Adam(std::vector<ParamGroup>{{params, {}, {}}}, lr, betas, eps, weight_decay, amsgrad) {}

  std::string name() const override { return decoupled_ ? "AdamW" : "Adam"; }
  Betas betas() const { return betas_; }
  double eps() const { return eps_; }
  bool amsgrad() const { return amsgrad_; }
  // CUDA f32 parameters of AdamW (no amsgrad) take the fused kernel (kernels/cuda/ops.h adamw_step);
  // other parameters off the CPU are updated with tensor ops (the same arithmetic, run on their
  // device). true runs the tensor-op path everywhere, so tests can compare it with the CPU kernel
  // and, on a GPU, with the fused one.
  bool use_tensor_ops = false;

 protected:
  // decoupled = true gives AdamW: p *= 1 - lr * weight_decay before the update, and the gradient
  // is not touched by the decay.
  Adam(std::vector<ParamGroup> groups, double lr, Betas betas, double eps, double weight_decay,
       bool amsgrad, bool decoupled, const char* who);

  std::vector<std::string> buffer_names() const override;
  nlohmann::json hyperparams() const override;
  void update(const Tensor& param, const Tensor& grad, const ParamGroup& group,
              ParamState& state) override;

 private:
  Betas betas_;
  double eps_;
  bool amsgrad_, decoupled_;
};

}  // namespace attnlab::optim
