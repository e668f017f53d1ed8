#include "nn/optim/sgd.h"

#include <cmath>

#include "tensor/creation.h"

namespace attnlab::optim {

SGD::SGD(std::vector<ParamGroup> groups, double lr, double momentum, double dampening,
         double weight_decay, bool nesterov)
    : Optimizer(std::move(groups), lr, weight_decay, "SGD"),
      momentum_(momentum),
      dampening_(dampening),
      nesterov_(nesterov) {
  check_nonnegative(momentum, "momentum", "SGD");
  ATTNLAB_CHECK(std::isfinite(dampening), "SGD: invalid dampening ", dampening);
  ATTNLAB_CHECK(!nesterov || (momentum > 0 && dampening == 0),
                "SGD: nesterov momentum requires momentum > 0 and dampening = 0 (got momentum ",
                momentum, ", dampening ", dampening, ")");
}

std::vector<std::string> SGD::buffer_names() const {
  if (momentum_ == 0) return {};
  return {"momentum_buffer"};
}

nlohmann::json SGD::hyperparams() const {
  return {{"momentum", momentum_}, {"dampening", dampening_}, {"nesterov", nesterov_}};
}

namespace {

template <class T>
void sgd_kernel(T* p, const T* g, T* buf, int64_t n, bool first, T lr, T wd, T momentum,
                T dampening, bool nesterov) {
  // Elementwise and independent: parallel only where the threads pay for themselves.
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i];
    if (wd != 0) d = d + wd * p[i];
    if (buf) {
      T b = first ? d : buf[i] * momentum + (1 - dampening) * d;
      buf[i] = b;
      d = nesterov ? d + momentum * b : b;
    }
    p[i] = p[i] + (-lr) * d;
  }
}

}  // namespace

void SGD::update(const Tensor& param, const Tensor& grad, const ParamGroup& group,
                 ParamState& state) {
  ATTNLAB_CHECK(param.device().is_host(), "SGD: parameters on ", param.device().str(),
                " are not supported yet (use AdamW, which runs on every device)");
  const bool first = state.buffers.empty();
  if (momentum_ != 0 && first)
    state.buffers.emplace_back("momentum_buffer", empty(param.shape(), param.dtype(), param.device()));
  const int64_t n = param.numel();
  if (param.dtype() == DType::f64) {
    sgd_kernel<double>(param.data<double>(), grad.data<double>(),
                       momentum_ != 0 ? state.buffer(0).data<double>() : nullptr, n, first,
                       *group.lr, *group.weight_decay, momentum_, dampening_, nesterov_);
  } else {
    sgd_kernel<float>(param.data<float>(), grad.data<float>(),
                      momentum_ != 0 ? state.buffer(0).data<float>() : nullptr, n, first,
                      float(*group.lr), float(*group.weight_decay), float(momentum_),
                      float(dampening_), nesterov_);
  }
  if (momentum_ != 0) state.buffer(0).bump_version();
}

}  // namespace attnlab::optim
