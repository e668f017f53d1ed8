// Linear: y = x Wᵀ + b, x [..., in] -> [..., out], weight [out, in] and bias [out] as in PyTorch.
// Init as torch.nn.Linear: weight kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), bias the
// same bound.
#pragma once
#include "kernels/cpu/gemv.h"
#include "nn/module.h"
#include "tensor/creation.h"

namespace attnlab::nn {

class Linear : public UnaryModule {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, DType dtype = DType::f32);
  Tensor forward(const Tensor& x) override;
  // Draws fresh weights as the constructor does (from `gen`, or the default generator).
  void reset_parameters(Generator* gen = nullptr);

  // Inference with packed weights (bf16, int8 per row, or w8a8 = int8 weights times int8-rounded
  // activations, kernels/cpu/gemv.h): with gradients off, an f32
  // CPU input is multiplied by a packed copy of the weight, made again whenever the weight changes (its
  // version counter moves). Forwards that record gradients always use the f32 weight. f32 drops the copy.
  void pack_weights(kernels::WeightFormat format);
  kernels::WeightFormat weight_format() const { return format_; }

  // One row without tensors, for the fused decode path (nn/attention/block_decoder.h): y[out] = W x + b
  // from contiguous f32 x[in], through the packed copy when one is set — the numbers forward() gives
  // for one row with gradients off. Needs an f32 CPU weight (an error otherwise).
  void forward_row(const float* x, float* y);

  int64_t in_features, out_features;
  Tensor weight;  // [out, in]
  Tensor bias;    // [out], undefined without bias

 private:
  Tensor packed_forward(const Tensor& x);
  void repack_if_stale();
  Tensor unpacked_weight() const;  // the packed values as f32 [out, in]

  kernels::WeightFormat format_ = kernels::WeightFormat::f32;
  Tensor packed_;         // bf16 or i8 [out, in]
  Tensor packed_scales_;  // int8, w8a8: f32 [out]
  uint64_t packed_version_ = 0;
};

// Packs the weights of every Linear in `m` (recursively) for inference; f32 restores the plain path.
void pack_linear_weights(Module& m, kernels::WeightFormat format);

}  // namespace attnlab::nn
