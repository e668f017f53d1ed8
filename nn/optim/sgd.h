// SGD with momentum, dampening, Nesterov and L2 weight decay — torch.optim.SGD's exact update rule.
//
// For each parameter p with gradient g (t = the parameter's update count):
//   g   = g + weight_decay * p                      (L2: the decay goes through momentum)
//   buf = g                                         at t = 1 (no dampening on the first step)
//   buf = momentum * buf + (1 - dampening) * g      at t > 1
//   d   = nesterov ? g + momentum * buf : buf       (d = g when momentum == 0: no buffer is kept)
//   p   = p - lr * d
// Buffers: "momentum_buffer" (only when momentum != 0).
#pragma once
#include "nn/optim/optimizer.h"

namespace attnlab::optim {

class SGD : public Optimizer {
 public:
  // nesterov requires momentum > 0 and dampening == 0 (as PyTorch). lr has no default: SGD has no
  // sensible one.
  SGD(std::vector<ParamGroup> groups, double lr, double momentum = 0.0, double dampening = 0.0,
      double weight_decay = 0.0, bool nesterov = false);
  SGD(const std::vector<Tensor>& params, double lr, double momentum = 0.0, double dampening = 0.0,
      double weight_decay = 0.0, bool nesterov = false)
      : SGD(std::vector<ParamGroup>{{params, {}, {}}}, lr, momentum, dampening, weight_decay,
            nesterov) {}

  std::string name() const override { return "SGD"; }
  double momentum() const { return momentum_; }
  double dampening() const { return dampening_; }
  bool nesterov() const { return nesterov_; }

 protected:
  std::vector<std::string> buffer_names() const override;
  nlohmann::json hyperparams() const override;
  void update(const Tensor& param, const Tensor& grad, const ParamGroup& group,
              ParamState& state) override;

 private:
  double momentum_, dampening_;
  bool nesterov_;
};

}  // namespace attnlab::optim
