// Gradient accumulation: k micro-batches per optimizer step, for an effective batch k times larger
// than fits in memory.
//
// Gradients add up across backward calls, so backpropagating loss_j / k for each micro-batch j
// leaves sum_j grad(loss_j) / k in .grad — the gradient of the mean loss over the k micro-batches,
// i.e. of one batch of size k·n when each loss_j is a mean over n samples. Then clip and step once.
//
//   optim::GradAccumulator acc(opt, /*k=*/4, [&] {
//     return std::isfinite(optim::clip_grad_norm_(params, 1.0));  // false: skip this step
//   });
//   for (auto& micro : batches)
//     if (acc.accumulate(loss_fn(model, micro))) sched.step();  // true: an optimizer step ran
//
// (Equal micro-batch sizes are assumed: with unequal sizes weight each loss by n_j / N yourself.)
#pragma once
#include <cstdint>
#include <functional>

#include "nn/optim/optimizer.h"

namespace attnlab::optim {

class GradAccumulator {
 public:
  // Runs at each k-th micro-batch, after the last backward and before opt.step(); returning false
  // skips the step (the gradients are still cleared). Use it to clip and check finiteness.
  using PreStep = std::function<bool()>;

  GradAccumulator(Optimizer& opt, int64_t k, PreStep pre_step = {});

  // backward(loss / k). On every k-th call also runs pre_step, opt.step() (unless pre_step said
  // no) and opt.zero_grad(). Returns true when opt.step() ran. `loss` must be a single element.
  bool accumulate(const Tensor& loss);

  int64_t k() const { return k_; }
  // Micro-batches accumulated since the last boundary (0 right after a step).
  int64_t pending() const { return pending_; }
  // Steps skipped because pre_step returned false.
  int64_t skipped() const { return skipped_; }

 private:
  Optimizer& opt_;
  int64_t k_;
  PreStep pre_step_;
  int64_t pending_ = 0, skipped_ = 0;
};

}  // namespace attnlab::optim
