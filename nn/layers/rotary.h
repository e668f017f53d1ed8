// Rotary position embedding (RoPE, Su et al. 2021) in the GPT-NeoX / LLaMA-HF "rotate half"
// convention:
//   x [B, T, H, D] (D even, h = D/2) is split into halves x1 = x[..., :h], x2 = x[..., h:];
//   theta[t, i] = pos_t * base^(-2i / D), i = 0..h-1;
//   out[..., :h] = x1 cos(theta) - x2 sin(theta)
//   out[..., h:] = x2 cos(theta) + x1 sin(theta)
// i.e. dims i and i + h form the rotated pair (not adjacent dims 2i, 2i+1 as in the original
// paper/GPT-J: weights trained with one convention do not work with the other).
//
// Differentiable as one op; its backward is the rotation by -theta, which saves only cos and sin.
#pragma once
#include <vector>

#include "nn/module.h"

namespace attnlab::nn {

// x [..., D]; cos, sin broadcastable to [..., D/2] (same dtype as x). The rotation above; cos and sin
// are constants (not differentiated). For bf16/f16 x they are rounded to x's dtype, as HF LLaMA does.
Tensor apply_rotary(const Tensor& x, const Tensor& cos, const Tensor& sin);

class RotaryEmbedding : public Module {
 public:
  // max_seq_len > 0 bounds the positions (an error beyond it); 0 means unbounded.
  explicit RotaryEmbedding(int64_t head_dim, double base = 10000.0, int64_t max_seq_len = 0);

  // x [B, T, H, D] at positions offset + 0..T-1 (offset = tokens already in a KV cache).
  Tensor forward(const Tensor& x, int64_t offset = 0);
  // x [B, T, H, D] at explicit i64 positions [T] (shared by the batch) or [B, T].
  Tensor forward(const Tensor& x, const Tensor& positions);
  Tensor operator()(const Tensor& x, int64_t offset = 0) { return forward(x, offset); }
  // Aliases of forward (the name used in the issue); Module::apply stays visible.
  using Module::apply;
  Tensor apply(const Tensor& x, int64_t offset = 0) { return forward(x, offset); }
  Tensor apply(const Tensor& x, const Tensor& positions) { return forward(x, positions); }

  // cos and sin of theta for the given positions: [positions..., D/2] in f64.
  std::pair<Tensor, Tensor> cos_sin(const std::vector<int64_t>& positions, const Shape& shape) const;

  // Without tensors (the fused decode path): cos and sin of one position, D/2 each, rounded to f32 as
  // forward() rounds them for f32 inputs; then the rotation of `heads` contiguous f32 rows [heads, D]
  // in place. The double versions (f64 KV caches) keep cos and sin in double.
  void cos_sin_row(int64_t position, float* cos, float* sin) const;
  void rotate_rows(float* x, int64_t heads, const float* cos, const float* sin) const;
  void cos_sin_row(int64_t position, double* cos, double* sin) const;
  void rotate_rows(double* x, int64_t heads, const double* cos, const double* sin) const;

  int64_t head_dim, max_seq_len;
  double base;

 private:
  std::vector<double> inv_freq_;  // base^(-2i/D), computed in f64
  void check_position(int64_t pos) const;
};

}  // namespace attnlab::nn
