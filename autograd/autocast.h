// Autocast: mixed-precision forward passes (torch.autocast's role), in one place.
//
// Inside an AutocastGuard(bf16 or f16) the differentiable ops pick their compute dtype themselves:
//
//   lower precision (inputs cast to the autocast dtype, output in it):
//       matmul, nn::functional::linear (weight and bias too), GroupedQueryAttention's attention
//   f32 (low-precision inputs cast up, output f32):
//       layer_norm, softmax, log_softmax, logsumexp, exp, log, rsqrt, sum, cumsum, every nn loss
//   promote (mixed floating inputs go to the wider dtype, as PyTorch's type promotion):
//       add, sub, mul, div, pow, maximum, minimum, where
//   everything else runs in its input's dtype (views, GELU, dropout, ...).
//
// These are PyTorch's CUDA autocast lists, cut down to the ops attnlab has. Only f32 tensors are cast
// down (f64 stays f64, so gradchecks keep their precision); outside a guard nothing changes and mixed
// dtypes stay an error, as before.
//
// Master weights stay f32: a parameter reaches a low-precision op through autograd's to_dtype, whose
// backward converts the gradient back, so every parameter gradient is f32. Matmuls see bf16/f16
// operands and accumulate in f32 (cuBLAS GemmEx on the GPU; on the CPU ops::matmul widens the
// rounded operands to f32, multiplies with BLAS and rounds the product: the same numbers up to the
// summation order). Run backward() outside the guard (as in PyTorch); the backward of each op runs in
// the dtypes its forward chose.
//
// f16 has a narrow range (max 65504, smallest normal 6e-5): small gradients underflow. Train with it
// through optim::GradScaler (nn/optim/grad_scaler.h), which scales the loss up and the gradients back.
//
//   {
//     autocast::AutocastGuard ac(DType::bf16);
//     loss = model.compute_loss(model.forward(x).pred, y);   // f32 loss
//   }
//   backward(loss);
#pragma once
#include <string>
#include <utility>

#include "tensor/tensor.h"

namespace attnlab::autocast {

// True inside an enabled AutocastGuard on this thread.
bool is_enabled();
// The low-precision dtype of the innermost guard (bf16 when none is active).
DType dtype();

// Enables autocast with `dtype` (bf16 or f16) for the scope; f32, or enabled=false, disables it for
// the scope (an f32 region inside an autocast one; AutocastGuard(precision) with a training precision
// f32/bf16/f16 does the right thing). Nests; thread-local.
class AutocastGuard {
 public:
  explicit AutocastGuard(DType dtype = DType::bf16, bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool prev_enabled_;
  DType prev_dtype_;
};

// Precision names used by the CLI and configs: "f32" (no autocast), "bf16", "f16".
// Throws attnlab::Error on anything else.
DType parse_precision(const std::string& name);

// ---- the casting policies (no-ops outside a guard) ------------------------------------------------
// An f32 tensor converted (differentiably) to the autocast dtype; anything else unchanged.
Tensor to_low(const Tensor& t);
// A bf16/f16 tensor converted (differentiably) to f32; anything else unchanged.
Tensor to_f32(const Tensor& t);
// Both floating and of different dtypes: the narrower one converted to the wider (f16 with bf16 gives
// f32). Otherwise unchanged.
std::pair<Tensor, Tensor> promote(const Tensor& a, const Tensor& b);

}  // namespace attnlab::autocast
