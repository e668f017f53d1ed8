// scaled_dot_product_attention for CUDA tensors: the FlashAttention-2 kernels of kernels/cuda/attention.h
// as one autograd node, the GPU twin of the flash backend in sdpa.cpp (which branches here first).
#include "nn/attention/sdpa_cuda.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/graph.h"
#include "kernels/cuda/attention.h"
#include "nn/attention/sdpa.h"
#include "tensor/creation.h"
#include "tensor/ops.h"

namespace attnlab::nn {

#ifdef ATTNLAB_WITH_CUDA
namespace {

namespace kc = kernels::cuda;

kc::ElemType elem_type(DType t) {
  switch (t) {
    case DType::f32: return kc::ElemType::f32;
    case DType::bf16: return kc::ElemType::bf16;
    case DType::f16: return kc::ElemType::f16;
    default: throw Error(cat("scaled_dot_product_attention on CUDA: dtype ", dtype_name(t),
                             " is not supported (f32, bf16, f16)"));
  }
}

// kpm: u8 [B, Sk] contiguous or undefined; bias: [B, H, Sq, Sk] (a broadcast view) or undefined.
kc::FlashArgs flash_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kpm, const Tensor& bias,
                         const AttentionOptions& opt) {
  kc::FlashArgs a;
  a.dtype = elem_type(q.dtype());
  a.B = q.size(0), a.Sq = q.size(1), a.H = q.size(2), a.D = q.size(3), a.Sk = k.size(1), a.Hkv = k.size(2);
  a.q = q.raw_data(), a.q_stride_b = q.stride(0), a.q_stride_s = q.stride(1), a.q_stride_h = q.stride(2);
  a.k = k.raw_data(), a.k_stride_b = k.stride(0), a.k_stride_s = k.stride(1), a.k_stride_h = k.stride(2);
  a.v = v.raw_data(), a.v_stride_b = v.stride(0), a.v_stride_s = v.stride(1), a.v_stride_h = v.stride(2);
  a.scale = float(opt.scale > 0 ? opt.scale : 1.0 / std::sqrt(double(a.D)));
  a.causal = opt.causal;
  a.dropout_p = opt.dropout_p;  // the CPU's counter-based mask: the same entries dropped on both devices
  a.dropout_seed = opt.dropout_seed;
  if (kpm.defined()) a.key_padding_mask = static_cast<const uint8_t*>(kpm.raw_data());
  if (bias.defined()) {
    a.bias = bias.raw_data();
    a.bias_stride_b = bias.stride(0), a.bias_stride_h = bias.stride(1);
    a.bias_stride_q = bias.stride(2), a.bias_stride_k = bias.stride(3);
  }
  return a;
}

Tensor d_contiguous(const Tensor& t) { return t.stride(-1) == 1 ? t : ops::contiguous(t); }

}  // namespace

AttentionResult scaled_dot_product_attention_cuda(const Tensor& q0, const Tensor& k0, const Tensor& v0,
                                                  const AttentionOptions& opt) {
  const char* op = "scaled_dot_product_attention on CUDA";
  ATTNLAB_CHECK(q0.dim() == 4 && k0.dim() == 4 && v0.dim() == 4 && k0.shape() == v0.shape(), op,
                ": expected q [B, Sq, H, D] and k, v [B, Sk, Hkv, D], got q ", describe(q0), ", k ", describe(k0),
                ", v ", describe(v0));
  check_same_device(op, q0, k0);
  check_same_device(op, q0, v0);
  ATTNLAB_CHECK(q0.dtype() == k0.dtype() && q0.dtype() == v0.dtype(), op, ": dtype mismatch q ", describe(q0),
                ", k ", describe(k0), ", v ", describe(v0));
  if (opt.window > 0) {
    // The GPU kernels have no sliding window of their own: the same mask as a banded 0/-inf bias
    // (key j hidden when j <= i + Sk - Sq - window), added to any bias given. O(Sq Sk) memory and no
    // tile skipping, unlike the CPU flash kernel; not yet run on a GPU.
    ATTNLAB_CHECK(opt.causal, op, ": window ", opt.window, " needs causal = true");
    const int64_t Sq = q0.size(1), Sk = k0.size(1);
    std::vector<double> allowed(size_t(Sq * Sk), 1.0);
    for (int64_t i = 0; i < Sq; ++i)
      for (int64_t j = 0; j <= std::min(Sk - 1, i + Sk - Sq - opt.window); ++j) allowed[size_t(i * Sk + j)] = 0.0;
    const Tensor band = ops::to_device(
        mask_to_bias(ops::to_dtype(from_vector(allowed, {Sq, Sk}, DType::f64), DType::u8), q0.dtype()), q0.device());
    AttentionOptions banded = opt;
    banded.window = 0;
    banded.attn_bias = opt.attn_bias.defined() ? ops::add(opt.attn_bias, band) : band;
    return scaled_dot_product_attention_cuda(q0, k0, v0, banded);
  }
  ATTNLAB_CHECK(!opt.return_weights || opt.backend != AttentionBackend::flash, op,
                ": return_weights needs the math (or reference) backend (flash never materializes the weights)");
  const Tensor q = d_contiguous(q0), k = d_contiguous(k0), v = d_contiguous(v0);
  const int device = q.device().index;
  const kc::Variant variant =
      opt.backend == AttentionBackend::reference ? kc::Variant::reference : kc::Variant::optimized;
  const int64_t B = q.size(0), Sq = q.size(1), H = q.size(2), D = q.size(3), Sk = k.size(1);
  // Masks live on q's device: the key padding mask u8 [B, Sk], the bias in q's dtype, broadcast to
  // [B, H, Sq, Sk] as a view (stride 0 where broadcast; the kernels read it through its strides).
  Tensor kpm, bias;
  if (opt.key_padding_mask.defined()) {
    ATTNLAB_CHECK(opt.key_padding_mask.dtype() == DType::u8 && opt.key_padding_mask.shape() == Shape({B, Sk}), op,
                  ": key_padding_mask must be u8 [B, Sk] = [", B, ", ", Sk, "], got ", describe(opt.key_padding_mask));
    check_same_device(op, q0, opt.key_padding_mask);
    kpm = ops::contiguous(opt.key_padding_mask);
  }
  if (opt.attn_bias.defined()) {
    ATTNLAB_CHECK(opt.attn_bias.dtype() == q.dtype(), op, ": attn_bias ", describe(opt.attn_bias),
                  " must have q's dtype ", dtype_name(q.dtype()));
    check_same_device(op, q0, opt.attn_bias);
    bias = ops::expand(opt.attn_bias, {B, H, Sq, Sk});
  }

  AttentionResult r;
  r.out = Tensor::empty({B, Sq, H, D}, q.dtype(), q.device());
  r.lse = Tensor::empty({B, H, Sq}, DType::f32, q.device());
  const kc::FlashArgs args = flash_args(q, k, v, kpm, bias, opt);
  kc::check_flash_args(args, op);
  kc::flash_forward(args, r.out.raw_data(), r.lse.data<float>(), device, variant);
  if (opt.return_weights) {  // masked, before dropout, as on the CPU
    r.weights = Tensor::empty({B, H, Sq, Sk}, q.dtype(), q.device());
    kc::flash_weights(args, r.lse.data<float>(), r.weights.raw_data(), device);
  }

  // Saves Q, K, V, O and the row logsumexp; the backward recomputes P tile by tile.
  r.out = record("scaled_dot_product_attention", r.out, {q0, k0, v0},
                 [sq = SavedTensor(q, "attention"), sk = SavedTensor(k, "attention"),
                  sv = SavedTensor(v, "attention"), so = SavedTensor(r.out, "attention"),
                  slse = SavedTensor(r.lse, "attention"), kpm, bias, opt, variant, device, q_shape = q0.shape(),
                  k_shape = k0.shape()](const Tensor& g) {
                   const Tensor Q = sq.get(), K = sk.get(), V = sv.get(), dO = ops::contiguous(g);
                   Tensor dq = Tensor::empty(q_shape, Q.dtype(), Q.device());
                   Tensor dk = Tensor::empty(k_shape, K.dtype(), K.device());
                   Tensor dv = Tensor::empty(k_shape, K.dtype(), K.device());
                   kc::flash_backward(flash_args(Q, K, V, kpm, bias, opt), so.get().raw_data(), dO.raw_data(),
                                      slse.get().data<float>(), dq.raw_data(), dk.raw_data(), dv.raw_data(),
                                      device, variant);
                   return Grads{dq, dk, dv};
                 });
  return r;
}

#else

AttentionResult scaled_dot_product_attention_cuda(const Tensor&, const Tensor&, const Tensor&,
                                                  const AttentionOptions&) {
  throw Error("scaled_dot_product_attention: CUDA tensors in a build without CUDA");
}

#endif

}  // namespace attnlab::nn
