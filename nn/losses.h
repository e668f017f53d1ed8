// Loss functions, differentiable in every input that requires grad. Elementwise losses need pred and
// target of the same shape (no silent broadcasting, unlike some PyTorch paths that only warn).
// Reduction as PyTorch: mean (default) and sum give a scalar [], none keeps the elementwise shape.
#pragma once
#include "tensor/tensor.h"

namespace attnlab::nn {

enum class Reduction { mean, sum, none };

// (pred - target)^2
Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction r = Reduction::mean);

// Binary cross-entropy on logits x with targets y in [0, 1], in the stable form
//   max(x, 0) - x y + log(1 + exp(-|x|))
// as one op whose backward is dx = sigmoid(x) - y, dy = -x (exact at x = 0, where composing
// relu and abs would give a one-sided derivative).
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        Reduction r = Reduction::mean);

// logits [N, C], target i64 [N] with classes in [0, C) -> -log_softmax(logits)[n, target[n]].
// Reduction::none gives [N].
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction r = Reduction::mean);

// d = pred - target: 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)  (torch.nn.HuberLoss)
Tensor huber_loss(const Tensor& pred, const Tensor& target, double delta = 1.0,
                  Reduction r = Reduction::mean);

// The seeds' allocation objective: -mean(pred * target), i.e. minus the average position-weighted
// return (pred: positions, target: returns). Other reductions reduce -(pred * target) accordingly.
Tensor allocation_loss(const Tensor& pred, const Tensor& target, Reduction r = Reduction::mean);

}  // namespace attnlab::nn
