#include "nn/attention/sdpa.h"
#include "nn/attention/sdpa_cuda.h"

#include <cmath>
#include <limits>

#include "autograd/graph.h"
#include "kernels/cpu/attention_math.h"
#include "kernels/cpu/attention_reference.h"
#include "kernels/cpu/flash_attention.h"
#include "tensor/creation.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace attnlab::nn {

namespace {

// D must be contiguous for the kernels; anything else is copied once.
Tensor d_contiguous(const Tensor& t) { return t.stride(-1) == 1 ? t : ops::contiguous(t); }

template <class T>
kernels::AttentionParams<T> make_params(const Tensor& q, const Tensor& k, const Tensor& v,
                                        const Tensor& kpm, const Tensor& bias, const AttentionOptions& opt) {
  kernels::AttentionParams<T> p;
  p.B = q.size(0), p.Sq = q.size(1), p.H = q.size(2), p.D = q.size(3);
  p.Sk = k.size(1), p.Hkv = k.size(2);
  p.q = q.data<T>(), p.q_stride_b = q.stride(0), p.q_stride_s = q.stride(1), p.q_stride_h = q.stride(2);
  p.k = k.data<T>(), p.k_stride_b = k.stride(0), p.k_stride_s = k.stride(1), p.k_stride_h = k.stride(2);
  p.v = v.data<T>(), p.v_stride_b = v.stride(0), p.v_stride_s = v.stride(1), p.v_stride_h = v.stride(2);
  p.scale = T(opt.scale > 0 ? opt.scale : 1.0 / std::sqrt(double(p.D)));
  p.causal = opt.causal;
  p.window = opt.window;
  p.key_padding_mask = kpm.defined() ? kpm.data<uint8_t>() : nullptr;
  if (bias.defined()) {
    p.bias = bias.data<T>();
    p.bias_stride_b = bias.stride(0), p.bias_stride_h = bias.stride(1);
    p.bias_stride_q = bias.stride(2), p.bias_stride_k = bias.stride(3);
  }
  p.dropout_p = opt.dropout_p;
  p.dropout_seed = opt.dropout_seed;
  return p;
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt) {
  const char* op = "scaled_dot_product_attention";
  ATTNLAB_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op, ": expected q [B, Sq, H, D] and k, v ",
                "[B, Sk, Hkv, D], got q ", describe(q), ", k ", describe(k), ", v ", describe(v));
  ATTNLAB_CHECK(q.dtype() == k.dtype() && q.dtype() == v.dtype(), op, ": dtype mismatch q ", describe(q),
                ", k ", describe(k), ", v ", describe(v));
  // The kernels read raw host pointers, so nothing else would notice a tensor of another (test) device.
  for (const Tensor* t : {&k, &v, &opt.key_padding_mask, &opt.attn_bias})
    if (t->defined()) check_same_device(op, q, *t);
  ATTNLAB_CHECK(q.dtype() == DType::f32 || q.dtype() == DType::f64, op, ": needs f32 or f64, got ", describe(q));
  ATTNLAB_CHECK(k.shape() == v.shape(), op, ": k ", describe(k), " and v ", describe(v), " differ");
  ATTNLAB_CHECK(q.size(0) == k.size(0) && q.size(3) == k.size(3), op, ": batch or head dim differ between q ",
                describe(q), " and k ", describe(k));
  ATTNLAB_CHECK(k.size(2) > 0 && q.size(2) % k.size(2) == 0, op, ": ", q.size(2),
                " query heads are not a multiple of ", k.size(2), " key/value heads");
  if (opt.key_padding_mask.defined())
    ATTNLAB_CHECK(opt.key_padding_mask.dtype() == DType::u8 &&
                      opt.key_padding_mask.shape() == Shape({q.size(0), k.size(1)}),
                  op, ": key_padding_mask must be u8 [B, Sk] = [", q.size(0), ", ", k.size(1), "], got ",
                  describe(opt.key_padding_mask));
  ATTNLAB_CHECK(opt.dropout_p >= 0 && opt.dropout_p < 1, op, ": dropout_p must be in [0, 1), got ", opt.dropout_p);
  ATTNLAB_CHECK(opt.window >= 0 && (opt.window == 0 || opt.causal), op, ": window ", opt.window,
                " must be >= 0, and a sliding window needs causal = true");
  ATTNLAB_CHECK(!opt.return_weights || opt.backend != AttentionBackend::flash, op,
                ": return_weights needs the math (or reference) backend (flash never materializes the weights)");
}

// Kernel scratch of n elements as a tracked tensor, so the memory tracker counts it.
Tensor scratch(int64_t n, DType dtype, Device device) { return n > 0 ? Tensor::empty({n}, dtype, device) : Tensor(); }
template <class T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

Tensor mask_to_bias(const Tensor& allowed, DType dtype) {
  ATTNLAB_CHECK(allowed.dtype() == DType::u8, "mask_to_bias: mask must be u8, got ", describe(allowed));
  return ops::where(allowed, scalar_tensor(0.0, dtype),
                    scalar_tensor(-std::numeric_limits<double>::infinity(), dtype));
}

AttentionResult scaled_dot_product_attention(const Tensor& q0, const Tensor& k0, const Tensor& v0,
                                             const AttentionOptions& opt) {
  if (q0.is_cuda()) return scaled_dot_product_attention_cuda(q0, k0, v0, opt);
  check_inputs(q0, k0, v0, opt);
  const Tensor q = d_contiguous(q0), k = d_contiguous(k0), v = d_contiguous(v0);
  const int64_t B = q.size(0), Sq = q.size(1), H = q.size(2), D = q.size(3), Sk = k.size(1);
  const Tensor kpm = opt.key_padding_mask.defined() ? ops::contiguous(opt.key_padding_mask) : Tensor();
  Tensor bias;
  if (opt.attn_bias.defined()) {
    ATTNLAB_CHECK(opt.attn_bias.dtype() == q.dtype(), "scaled_dot_product_attention: attn_bias ",
                  describe(opt.attn_bias), " must have q's dtype ", dtype_name(q.dtype()));
    bias = ops::expand(opt.attn_bias, {B, H, Sq, Sk});  // a view: stride 0 where broadcast
  }
  const AttentionBackend backend = opt.backend;
  const bool flash = backend == AttentionBackend::flash;

  AttentionResult r;
  const Device dev = q.device();  // cpu, or the test device cpu:N (tensor/dtype.h)
  r.out = Tensor::empty({B, Sq, H, D}, q.dtype(), dev);
  r.lse = Tensor::empty({B, H, Sq}, q.dtype(), dev);
  Tensor probs;  // the S×S matrix P of math and reference, tracked
  if (!flash) probs = Tensor::empty({B, H, Sq, Sk}, q.dtype(), dev);
  dispatch_float(q.dtype(), "scaled_dot_product_attention", [&]<class T>() {
    const auto p = make_params<T>(q, k, v, kpm, bias, opt);
    T *o = r.out.data<T>(), *lse = r.lse.data<T>();
    switch (backend) {
      case AttentionBackend::flash: kernels::flash_attention_forward<T>(p, o, lse); break;
      case AttentionBackend::math: {
        const int64_t n = kernels::attention_math_forward_workspace(p);
        const Tensor work = scratch(n, q.dtype(), dev);
        kernels::attention_math_forward<T>(p, o, lse, probs.data<T>(), ptr_or_null<T>(work), n);
        break;
      }
      case AttentionBackend::reference: kernels::attention_reference_forward<T>(p, o, lse, probs.data<T>()); break;
    }
  });
  if (opt.return_weights) r.weights = probs;

  // One autograd node for the whole attention; its backward is the kernel's backward. What each
  // backend saves beyond Q, K, V: flash O and the logsumexp; math the probabilities P (its backward
  // reads them; without return_weights this closure is P's only owner, so P lives exactly as long
  // as the graph); reference nothing (its backward recomputes P row by row).
  const bool is_math = backend == AttentionBackend::math;
  r.out = record("scaled_dot_product_attention", r.out, {q0, k0, v0},
                 [sq = SavedTensor(q, "attention"), sk = SavedTensor(k, "attention"), sv = SavedTensor(v, "attention"),
                  so = flash ? SavedTensor(r.out, "attention") : SavedTensor(),
                  slse = flash ? SavedTensor(r.lse, "attention") : SavedTensor(),
                  sp = is_math ? SavedTensor(probs, "attention") : SavedTensor(), kpm, bias, opt, backend,
                  k_shape = k0.shape(), q_shape = q0.shape()](const Tensor& g) {
                   const Tensor Q = sq.get(), K = sk.get(), V = sv.get(), dO = ops::contiguous(g);
                   const Device dev = Q.device();
                   Tensor dq = Tensor::empty(q_shape, Q.dtype(), dev);
                   Tensor dk = Tensor::empty(k_shape, K.dtype(), dev), dv = Tensor::empty(k_shape, K.dtype(), dev);
                   dispatch_float(Q.dtype(), "scaled_dot_product_attention backward", [&]<class T>() {
                     const auto p = make_params<T>(Q, K, V, kpm, bias, opt);
                     const T* gout = dO.data<T>();
                     T *gq = dq.data<T>(), *gk = dk.data<T>(), *gv = dv.data<T>();
                     switch (backend) {
                       case AttentionBackend::flash:
                         kernels::flash_attention_backward<T>(p, so.get().data<T>(), gout, slse.get().data<T>(),
                                                              gq, gk, gv);
                         break;
                       case AttentionBackend::math: {
                         const int64_t n = kernels::attention_math_backward_workspace(p);
                         const Tensor work = scratch(n, Q.dtype(), dev);
                         kernels::attention_math_backward<T>(p, sp.get().data<T>(), gout, gq, gk, gv,
                                                             ptr_or_null<T>(work), n);
                         break;
                       }
                       case AttentionBackend::reference:
                         kernels::attention_reference_backward<T>(p, gout, gq, gk, gv);
                         break;
                     }
                   });
                   return Grads{dq, dk, dv};
                 });
  return r;
}

}  // namespace attnlab::nn
