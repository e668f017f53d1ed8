// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_) and the finiteness check that
// goes with it.
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace attnlab::optim {

// The norm of all gradients of `params` taken together, as if concatenated into one vector:
//   total = (sum_i ||g_i||_p^p)^(1/p)   (computed as PyTorch: the p-norm of the per-tensor p-norms)
//   total = max_i max|g_i|              for norm_type = +inf
// Parameters without a gradient are ignored; no gradients at all gives 0. Accumulates in double.
//
// When total > max_norm every gradient is scaled in place by max_norm / (total + 1e-6), exactly as
// PyTorch, which multiplies by clamp(max_norm / (total + 1e-6), max = 1): the 1e-6 keeps the clipped
// norm just under max_norm and avoids dividing by zero; gradients whose norm is within 1e-6 below
// max_norm are therefore scaled by a factor a hair under 1 too.
//
// Returns the total norm before clipping. A non-finite total (a NaN or inf gradient, or overflow):
//   - error_if_nonfinite: throws attnlab::Error;
//   - otherwise: returns it and leaves the gradients untouched. (PyTorch would multiply them by a
//     NaN or zero factor; we do not, so that nothing is half-done.) The caller should skip this
//     optimizer step — see all_finite() — and, with a loss scaler, lower the scale:
//
//       double norm = optim::clip_grad_norm_(params, 1.0);
//       if (std::isfinite(norm)) opt.step(); else ++skipped_steps;
//       opt.zero_grad();
//
// norm_type must be > 0 (or +inf). Gradients must be f32 or f64.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

// The total gradient norm without clipping (same definition as clip_grad_norm_).
double grad_norm(const std::vector<Tensor>& params, double norm_type = 2.0);

// True when every element of every defined tensor is finite (undefined tensors are skipped).
// Pass gradients: all_finite(grads_of(params)).
bool all_finite(const std::vector<Tensor>& tensors);

// The gradients of `params` (undefined Tensors where a parameter has none), in order.
std::vector<Tensor> grads_of(const std::vector<Tensor>& params);

}  // namespace attnlab::optim
