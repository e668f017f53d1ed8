#include "nn/optim/grad_accum.h"

#include "autograd/functions.h"
#include "autograd/graph.h"

namespace attnlab::optim {

GradAccumulator::GradAccumulator(Optimizer& opt, int64_t k, PreStep pre_step)
    : opt_(opt), k_(k), pre_step_(std::move(pre_step)) {
  ATTNLAB_CHECK(k >= 1, "GradAccumulator: k must be >= 1, got ", k);
}

bool GradAccumulator::accumulate(const Tensor& loss) {
  ATTNLAB_CHECK(loss.defined() && loss.numel() == 1, "GradAccumulator::accumulate: the loss must ",
                "be a single element, got ", loss.defined() ? describe(loss) : "undefined");
  // Scaling the loss (not the gradients afterwards) keeps one multiply per micro-batch, and k = 1
  // leaves the loss untouched bit for bit.
  attnlab::backward(k_ == 1 ? loss : loss / double(k_));
  if (++pending_ < k_) return false;
  pending_ = 0;
  const bool go = !pre_step_ || pre_step_();
  if (go) opt_.step();
  else ++skipped_;
  opt_.zero_grad();
  return go;
}

}  // namespace attnlab::optim
