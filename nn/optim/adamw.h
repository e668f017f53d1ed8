// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019) — torch.optim.AdamW.
//
// Adam (adam.h) with the weight decay taken out of the gradient and applied to the parameter
// directly, scaled by the learning rate, before the Adam update:
//   p = p * (1 - lr * weight_decay)
//   m, v (, v_max) and the step exactly as Adam with weight_decay = 0.
// The decay is therefore not normalised by sqrt(v): every weight shrinks at the same relative rate.
// PyTorch's defaults, including weight_decay = 1e-2 (Adam's is 0). Exempt biases and norms with a
// ParamGroup whose weight_decay is 0.
#pragma once
#include "nn/optim/adam.h"

namespace attnlab::optim {

class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, double lr = 1e-3, Betas betas = {0.9, 0.999},
        double eps = 1e-8, double weight_decay = 1e-2, bool amsgrad = false)
      : Adam(std::move(groups), lr, betas, eps, weight_decay, amsgrad, true, "AdamW") {}
  AdamW(const std::vector<Tensor>& params, double lr = 1e-3, Betas betas = {0.9, 0.999},
        double eps = 1e-8, double weight_decay = 1e-2, bool amsgrad = false)
      : AdamW(std::vector<ParamGroup>{{params, {}, {}}}, lr, betas, eps, weight_decay, amsgrad) {}
};

}  // namespace attnlab::optim
