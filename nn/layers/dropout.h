// Dropout(p): inverted dropout in training (kept elements scaled by 1 / (1 - p)), identity in eval.
// Each Dropout owns its Generator, so a model's dropout masks are reproducible from the seeds alone
// and do not shift when other code draws from the default generator.
#pragma once
#include "nn/module.h"
#include "tensor/creation.h"

namespace attnlab::nn {

class Dropout : public UnaryModule {
 public:
  explicit Dropout(double p = 0.5, uint64_t seed = 0xd20b);
  Tensor forward(const Tensor& x) override;
  void manual_seed(uint64_t seed) { gen.manual_seed(seed); }

  double p;
  Generator gen;
};

}  // namespace attnlab::nn
