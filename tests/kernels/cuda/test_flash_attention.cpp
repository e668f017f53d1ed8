// The CUDA FlashAttention kernels (kernels/cuda/attention.h) against the CPU reference in double,
// with flash-attention's rule: the error of a kernel run in dtype X, measured against the f64 reference
// on the same (X-rounded) inputs, may be at most 2x (gradients 3x) the error of the same maths done in
// X by a plain emulation (scores, probabilities, dP, dS and outputs rounded to X), plus a rounding
// floor. Every variant (reference, optimized, fast), f32 / bf16 / f16, odd lengths, causal with Sq != Sk
// (blind rows and whole blind blocks included), GQA / MQA, head dims 64, 128 and others, strided
// layouts, attention dropout (the CPU's mask), key padding masks and additive biases, the attention
// weights (return_weights); the deterministic backward is bit-identical across runs. Without a GPU
// the executable is skipped (tests/cuda_main.cpp).
#include <doctest/doctest.h>

#ifdef ATTNLAB_WITH_CUDA
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <tuple>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/runtime.h"
#include "kernels/error.h"
#include "kernels/attention_cases.h"

using namespace attnlab;
using namespace attnlab::kernels;
using namespace attnlab::kernels::testing;
namespace cuda = attnlab::kernels::cuda;
using cuda::ElemType;
using cuda::Variant;

namespace {

constexpr int kDev = 0;

// A device buffer from the caching allocator.
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t n) : ptr(n ? cuda::device_alloc(n, kDev) : nullptr), bytes(n) {}
  ~DeviceBuffer() {
    if (ptr) cuda::device_free(ptr, bytes, kDev);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// ---- element conversions on the host ------------------------------------------------------------
double round_to(ElemType t, double x) {
  switch (t) {
    case ElemType::f32: return double(float(x));
    case ElemType::bf16: return double(bf16_to_f32(f32_to_bf16(float(x))));
    case ElemType::f16: return double(f16_to_f32(f32_to_f16(float(x))));
  }
  return x;
}

// Doubles -> bytes of dtype t.
std::vector<uint8_t> encode(ElemType t, const std::vector<double>& x) {
  std::vector<uint8_t> out(x.size() * size_t(cuda::elem_size(t)));
  for (size_t i = 0; i < x.size(); ++i) {
    if (t == ElemType::f32) {
      const float f = float(x[i]);
      std::memcpy(out.data() + 4 * i, &f, 4);
    } else {
      const uint16_t h = t == ElemType::bf16 ? f32_to_bf16(float(x[i])) : f32_to_f16(float(x[i]));
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

std::vector<double> decode(ElemType t, const std::vector<uint8_t>& bytes) {
  const size_t n = bytes.size() / size_t(cuda::elem_size(t));
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (t == ElemType::f32) {
      float f;
      std::memcpy(&f, bytes.data() + 4 * i, 4);
      out[i] = f;
    } else {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      out[i] = t == ElemType::bf16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
  return out;
}

std::unique_ptr<DeviceBuffer> upload(ElemType t, const std::vector<double>& x) {
  auto bytes = encode(t, x);
  auto buf = std::make_unique<DeviceBuffer>(bytes.size());
  if (!bytes.empty()) cuda::copy_to_device(buf->ptr, bytes.data(), bytes.size(), kDev);
  return buf;
}

std::vector<uint8_t> download(const void* p, size_t bytes) {
  std::vector<uint8_t> out(bytes);
  cuda::copy_to_host(out.data(), p, bytes, kDev);
  return out;
}

// ---- the same maths in low precision: every intermediate rounded to `t` -------------------------
// As flash-attention's attention_ref(upcast=False): S, P, O rounded; in backward dP, dS and the
// gradients rounded. Causal, key padding and the additive bias as in the CPU reference.
Outputs<double> lowp_reference(const AttentionParams<double>& p, const std::vector<double>& dout, ElemType t) {
  Outputs<double> out(p);
  const int64_t B = p.B, Sq = p.Sq, Sk = p.Sk, H = p.H, D = p.D, G = p.H / p.Hkv;
  auto rnd = [&](double x) { return round_to(t, x); };
  std::fill(out.dk.begin(), out.dk.end(), 0.0);
  std::fill(out.dv.begin(), out.dv.end(), 0.0);
  std::vector<double> P(static_cast<size_t>(Sk)), dS(static_cast<size_t>(Sk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Sq; ++i) {
        const int64_t g = h / G;
        const double* q = p.q + b * p.q_stride_b + i * p.q_stride_s + h * p.q_stride_h;
        auto krow = [&](int64_t j) { return p.k + b * p.k_stride_b + j * p.k_stride_s + g * p.k_stride_h; };
        auto vrow = [&](int64_t j) { return p.v + b * p.v_stride_b + j * p.v_stride_s + g * p.v_stride_h; };
        double mx = -INFINITY;
        for (int64_t j = 0; j < Sk; ++j) {
          P[size_t(j)] = -INFINITY;
          if (p.causal && j > i + (Sk - Sq)) continue;
          if (p.key_padding_mask && p.key_padding_mask[b * Sk + j]) continue;
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += q[d] * krow(j)[d];
          const double bias =
              p.bias ? p.bias[b * p.bias_stride_b + h * p.bias_stride_h + i * p.bias_stride_q + j * p.bias_stride_k] : 0;
          P[size_t(j)] = rnd(p.scale * s + bias);
          mx = std::max(mx, P[size_t(j)]);
        }
        double sum = 0;
        for (int64_t j = 0; j < Sk; ++j) sum += mx == -INFINITY || P[size_t(j)] == -INFINITY ? 0 : std::exp(P[size_t(j)] - mx);
        const int64_t orow = ((b * Sq + i) * H + h) * D;
        out.lse[size_t((b * H + h) * Sq + i)] = sum > 0 ? mx + std::log(sum) : -INFINITY;
        for (int64_t j = 0; j < Sk; ++j)
          P[size_t(j)] = sum > 0 && P[size_t(j)] != -INFINITY ? rnd(std::exp(P[size_t(j)] - mx) / sum) : 0;
        double delta = 0;
        for (int64_t d = 0; d < D; ++d) {
          double o = 0;
          for (int64_t j = 0; j < Sk; ++j) o += P[size_t(j)] * vrow(j)[d];
          out.o[size_t(orow + d)] = rnd(o);
          delta += dout[size_t(orow + d)] * out.o[size_t(orow + d)];
        }
        for (int64_t j = 0; j < Sk; ++j) {
          double dp = 0;
          for (int64_t d = 0; d < D; ++d) dp += dout[size_t(orow + d)] * vrow(j)[d];
          dS[size_t(j)] = rnd(P[size_t(j)] * (rnd(dp) - delta));
        }
        for (int64_t d = 0; d < D; ++d) {
          double dq = 0;
          for (int64_t j = 0; j < Sk; ++j) dq += dS[size_t(j)] * krow(j)[d];
          out.dq[size_t(orow + d)] = rnd(p.scale * dq);
        }
        for (int64_t j = 0; j < Sk; ++j) {
          const int64_t kv = ((b * Sk + j) * p.Hkv + g) * D;
          for (int64_t d = 0; d < D; ++d) {
            out.dk[size_t(kv + d)] += p.scale * dS[size_t(j)] * q[d];
            out.dv[size_t(kv + d)] += P[size_t(j)] * dout[size_t(orow + d)];
          }
        }
      }
  for (auto& x : out.dk) x = rnd(x);
  for (auto& x : out.dv) x = rnd(x);
  return out;
}

double max_abs(const std::vector<double>& x) {
  double m = 0;
  for (double v : x)
    if (std::isfinite(v)) m = std::max(m, std::abs(v));
  return m;
}

// max |a - ref| over finite entries; infinity when an infinity or NaN does not match.
double max_err(const std::vector<double>& a, const std::vector<double>& ref) {
  REQUIRE(a.size() == ref.size());
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(ref[i])) {
      if (!(a[i] == ref[i])) return std::numeric_limits<double>::infinity();
      continue;
    }
    e = std::max(e, std::abs(a[i] - ref[i]));
  }
  return e;
}

// Rounding floor relative to the largest reference value.
double floor_rel(ElemType t) {
  switch (t) {
    case ElemType::f32: return 1e-5;
    case ElemType::bf16: return 1.0 / 256;
    case ElemType::f16: return 1.0 / 2048;
  }
  return 0;
}

// flash-attention's rule for one output.
void check_rule(const char* what, const std::vector<double>& got, const std::vector<double>& lowp,
                const std::vector<double>& ref, ElemType t, double factor) {
  const double e = max_err(got, ref), e_lowp = max_err(lowp, ref);
  const double bound = factor * e_lowp + floor_rel(t) * max_abs(ref);
  INFO(what << ": error " << e << ", low-precision maths " << e_lowp << ", bound " << bound);
  CHECK(e <= bound);
}

// Inputs of a case on the device (in dtype t), the FlashArgs pointing into them, and dO.
struct DeviceProblem {
  std::unique_ptr<DeviceBuffer> qs, ks, vs, dout, bias, pad;
  cuda::FlashArgs args;

  DeviceProblem(const Problem<double>& pr, ElemType t) {
    qs = upload(t, pr.qs), ks = upload(t, pr.ks), vs = upload(t, pr.vs), dout = upload(t, pr.dout);
    bias = upload(t, pr.bias);
    pad = std::make_unique<DeviceBuffer>(pr.pad.size());
    if (!pr.pad.empty()) cuda::copy_to_device(pad->ptr, pr.pad.data(), pr.pad.size(), kDev);
    const size_t es = size_t(cuda::elem_size(t));
    // Host pointer into one of the Problem's vectors -> the same element of its device copy.
    auto map = [&](const double* p) -> const void* {
      for (auto [host, dev] : {std::pair{&pr.qs, qs.get()}, std::pair{&pr.ks, ks.get()}, std::pair{&pr.vs, vs.get()}})
        if (!host->empty() && p >= host->data() && p < host->data() + host->size())
          return static_cast<const uint8_t*>(dev->ptr) + size_t(p - host->data()) * es;
      FAIL("pointer outside the problem's buffers");
      return nullptr;
    };
    const auto& p = pr.p;
    args.dtype = t;
    args.B = p.B, args.Sq = p.Sq, args.Sk = p.Sk, args.H = p.H, args.Hkv = p.Hkv, args.D = p.D;
    args.q = map(p.q), args.q_stride_b = p.q_stride_b, args.q_stride_s = p.q_stride_s, args.q_stride_h = p.q_stride_h;
    args.k = map(p.k), args.k_stride_b = p.k_stride_b, args.k_stride_s = p.k_stride_s, args.k_stride_h = p.k_stride_h;
    args.v = map(p.v), args.v_stride_b = p.v_stride_b, args.v_stride_s = p.v_stride_s, args.v_stride_h = p.v_stride_h;
    args.scale = float(p.scale);
    args.causal = p.causal;
    args.dropout_p = p.dropout_p, args.dropout_seed = p.dropout_seed;
    if (p.key_padding_mask) {
      REQUIRE(p.key_padding_mask == pr.pad.data());  // the device copy is of pr.pad
      args.key_padding_mask = static_cast<const uint8_t*>(pad->ptr);
    }
    if (p.bias) {
      REQUIRE(p.bias == pr.bias.data());
      args.bias = bias->ptr;
      args.bias_stride_b = p.bias_stride_b, args.bias_stride_h = p.bias_stride_h;
      args.bias_stride_q = p.bias_stride_q, args.bias_stride_k = p.bias_stride_k;
    }
  }
};

struct GpuOutputs {
  std::vector<double> o, lse, dq, dk, dv, weights;  // weights: flash_weights from the forward's LSE
  std::vector<uint8_t> dq_bytes, dk_bytes, dv_bytes;  // raw, for bit-identity checks
};

GpuOutputs run_gpu(const DeviceProblem& dp, Variant variant, bool deterministic) {
  const auto& a = dp.args;
  const ElemType t = a.dtype;
  const size_t es = size_t(cuda::elem_size(t));
  const size_t n_o = size_t(a.B * a.Sq * a.H * a.D), n_kv = size_t(a.B * a.Sk * a.Hkv * a.D);
  const size_t n_lse = size_t(a.B * a.H * a.Sq);
  DeviceBuffer o(n_o * es), lse(n_lse * 4), dq(n_o * es), dk(n_kv * es), dv(n_kv * es);
  cuda::flash_forward(a, o.ptr, static_cast<float*>(lse.ptr), kDev, variant);
  cuda::flash_backward(a, o.ptr, dp.dout->ptr, static_cast<const float*>(lse.ptr), dq.ptr, dk.ptr, dv.ptr, kDev,
                       variant, deterministic);
  GpuOutputs out;
  out.o = decode(t, download(o.ptr, o.bytes));
  const auto lse_bytes = download(lse.ptr, lse.bytes);
  out.lse.resize(n_lse);
  for (size_t i = 0; i < n_lse; ++i) {
    float f;
    std::memcpy(&f, lse_bytes.data() + 4 * i, 4);
    out.lse[i] = f;
  }
  out.dq_bytes = download(dq.ptr, dq.bytes), out.dk_bytes = download(dk.ptr, dk.bytes);
  out.dv_bytes = download(dv.ptr, dv.bytes);
  out.dq = decode(t, out.dq_bytes), out.dk = decode(t, out.dk_bytes), out.dv = decode(t, out.dv_bytes);
  DeviceBuffer w(size_t(a.B * a.H * a.Sq * a.Sk) * es);
  cuda::flash_weights(a, static_cast<const float*>(lse.ptr), w.ptr, kDev);
  out.weights = decode(t, download(w.ptr, w.bytes));
  return out;
}

// Rounds the problem's inputs (dO and the bias too) to t in place, so the f64 reference sees the kernel's inputs.
void round_inputs(Problem<double>& pr, ElemType t) {
  for (auto* v : {&pr.qs, &pr.ks, &pr.vs, &pr.dout, &pr.bias})
    for (auto& x : *v) x = round_to(t, x);
}

void check_case(const Case& c, ElemType t, Variant variant, bool deterministic) {
  INFO(describe(c) << " dtype=" << cuda::elem_type_name(t) << " variant=" << cuda::variant_name(variant)
                   << " deterministic=" << deterministic);
  Problem<double> pr(c);
  round_inputs(pr, t);
  const Outputs<double> ref = run_reference(pr);
  const Outputs<double> lowp = lowp_reference(pr.p, pr.dout, t);
  const DeviceProblem dp(pr, t);
  const GpuOutputs got = run_gpu(dp, variant, deterministic);
  check_rule("O", got.o, lowp.o, ref.o, t, 2);
  // LSE is written in f32 from f32 scores of the rounded inputs: close to the f64 value.
  CHECK(max_err(got.lse, ref.lse) <= 1e-4 * std::max(1.0, max_abs(ref.lse)));
  check_rule("dQ", got.dq, lowp.dq, ref.dq, t, 3);
  check_rule("dK", got.dk, lowp.dk, ref.dk, t, 3);
  check_rule("dV", got.dv, lowp.dv, ref.dv, t, 3);
  // The weights are one exponential of the f32 score minus the LSE, rounded once to t.
  INFO("weights: error " << max_err(got.weights, ref.probs));
  CHECK(max_err(got.weights, ref.probs) <= 2 * floor_rel(t) + 1e-5);
}

const Variant kVariants[] = {Variant::reference, Variant::optimized, Variant::fast};

Case make_case(int64_t B, int64_t Sq, int64_t Sk, int64_t H, int64_t Hkv, int64_t D, bool causal,
               Layout layout = Layout::Contiguous) {
  Case c;
  c.B = B, c.Sq = Sq, c.Sk = Sk, c.H = H, c.Hkv = Hkv, c.D = D, c.causal = causal, c.layout = layout;
  c.seed = uint64_t(B * 1000003 + Sq * 1009 + Sk * 31 + H * 7 + Hkv * 3 + D + causal);
  return c;
}

// Odd lengths, Sq != Sk both ways (Sq > Sk with causal leaves blind rows), MHA / GQA / MQA,
// D 64 and 128 (tensor cores for bf16/f16) and others (SIMT path).
std::vector<Case> cases() {
  return {
      make_case(2, 77, 77, 4, 4, 64, false),
      make_case(1, 130, 200, 4, 2, 128, true),
      make_case(2, 200, 70, 4, 1, 64, true),   // MQA, first 130 queries see no key
      make_case(1, 65, 129, 2, 2, 128, false),
      make_case(1, 33, 65, 4, 2, 40, true),    // generic D
      make_case(1, 17, 9, 2, 1, 256, false),   // largest D
      make_case(1, 5, 3, 3, 3, 3, true),       // tiny
      make_case(2, 96, 96, 4, 2, 64, true, Layout::PackedQKV),  // strided, still tensor-core aligned
      make_case(1, 70, 70, 2, 1, 64, false, Layout::HeadMajor), // row pitch D + 3: SIMT fallback
      make_case(1, 385, 513, 4, 2, 128, true),  // fast: several 128-row blocks, the K/V ring wraps
      make_case(2, 256, 256, 2, 1, 64, false),  // fast: full tiles only
  };
}

}  // namespace

TEST_CASE("cuda flash attention: reference and optimized kernels vs the f64 reference (flash-attention's rule)") {
  for (ElemType t : {ElemType::f32, ElemType::bf16, ElemType::f16})
    for (Variant variant : kVariants)
      for (const Case& c : cases()) check_case(c, t, variant, false);
}

TEST_CASE("cuda flash attention: key padding masks and additive biases (every variant falls back to SIMT)") {
  // The CPU kernels' mask sweep (padding, full / broadcast / boolean -inf biases, with causal, GQA, MQA
  // and dropout + padding + bias), plus tensor-core-sized cases that the mma and fast kernels decline.
  std::vector<Case> cs = mask_sweep();
  for (Case c : {make_case(2, 77, 90, 4, 2, 64, true), make_case(1, 65, 65, 2, 1, 128, false)}) {
    c.padding = true, c.bias = Bias::KeyRow;
    cs.push_back(c);
  }
  for (ElemType t : {ElemType::f32, ElemType::bf16})
    for (Variant variant : kVariants)
      for (const Case& c : cs) {
        if (c.dropout > 0) continue;  // the low-precision emulation has no dropout: the dropout test covers it
        check_case(c, t, variant, false);
      }
}

TEST_CASE("cuda flash attention: deterministic backward matches and is bit-identical across runs") {
  for (Variant variant : {Variant::optimized, Variant::fast})
    for (ElemType t : {ElemType::f32, ElemType::bf16})
      for (const Case& c : {make_case(2, 150, 150, 4, 2, 64, true), make_case(1, 90, 130, 4, 1, 128, false),
                            make_case(1, 300, 40, 2, 1, 128, true)}) {  // a blind 128-row dQ block
        check_case(c, t, variant, true);
        Problem<double> pr(c);
        round_inputs(pr, t);
        const DeviceProblem dp(pr, t);
        const GpuOutputs a = run_gpu(dp, variant, true), b = run_gpu(dp, variant, true);
        CHECK(a.dq_bytes == b.dq_bytes);
        CHECK(a.dk_bytes == b.dk_bytes);
        CHECK(a.dv_bytes == b.dv_bytes);
      }
}

TEST_CASE("cuda flash attention: dropout drops the CPU's entries (the same counter-based mask)") {
  // The low-precision emulation above has no dropout, so the bound here is plain: f32 within 1e-4 of
  // the f64 reference (relative to the largest value), bf16/f16 within 2%. A mask that differed from the
  // CPU's in even a few entries would move O and the gradients by far more.
  std::vector<Case> cs = {make_case(2, 77, 77, 4, 2, 64, true), make_case(1, 65, 129, 2, 1, 128, false),
                          make_case(1, 33, 65, 4, 2, 40, true)};
  for (Case& c : cs) c.dropout = 0.2;
  for (ElemType t : {ElemType::f32, ElemType::bf16, ElemType::f16})
    for (Variant variant : kVariants)
      for (bool deterministic : {false, true})
        for (const Case& c : cs) {
          INFO(describe(c) << " dtype=" << cuda::elem_type_name(t) << " variant=" << cuda::variant_name(variant)
                           << " deterministic=" << deterministic);
          Problem<double> pr(c);
          round_inputs(pr, t);
          const Outputs<double> ref = run_reference(pr);
          const GpuOutputs got = run_gpu(DeviceProblem(pr, t), variant, deterministic);
          const double tol = t == ElemType::f32 ? 1e-4 : 2e-2;
          for (auto [name, g, r] : {std::tuple{"O", &got.o, &ref.o}, std::tuple{"dQ", &got.dq, &ref.dq},
                                    std::tuple{"dK", &got.dk, &ref.dk}, std::tuple{"dV", &got.dv, &ref.dv}}) {
            INFO(name);
            CHECK(max_err(*g, *r) <= tol * max_abs(*r));
          }
          CHECK(max_err(got.lse, ref.lse) <= 1e-4 * std::max(1.0, max_abs(ref.lse)));  // LSE is before dropout
        }
}

TEST_CASE("cuda flash attention: blind rows give O = 0, LSE = -inf, zero dQ") {
  // Queries 0..23 see no key; then a whole 128-row block (the fast tier's) of blind queries.
  for (const Case& c : {make_case(1, 40, 16, 2, 1, 64, true), make_case(1, 300, 40, 2, 1, 64, true)})
    for (ElemType t : {ElemType::f32, ElemType::bf16})
      for (Variant variant : kVariants) {
        INFO(describe(c) << " dtype=" << cuda::elem_type_name(t) << " variant=" << cuda::variant_name(variant));
        Problem<double> pr(c);
        round_inputs(pr, t);
        const DeviceProblem dp(pr, t);
        const GpuOutputs got = run_gpu(dp, variant, false);
        for (int64_t h = 0; h < c.H; ++h)
          for (int64_t i = 0; i < c.Sq - c.Sk; ++i) {
            CHECK(got.lse[size_t(h * c.Sq + i)] == -INFINITY);
            for (int64_t d = 0; d < c.D; ++d) {
              CHECK(got.o[size_t((i * c.H + h) * c.D + d)] == 0.0);
              CHECK(got.dq[size_t((i * c.H + h) * c.D + d)] == 0.0);
            }
          }
      }
}

TEST_CASE("cuda flash attention: bad arguments throw clear errors") {
  DeviceBuffer buf(1024);
  auto a = cuda::flash_args(ElemType::bf16, 1, 4, 4, 2, 2, 64, buf.ptr, buf.ptr, buf.ptr);
  DeviceBuffer o(4096), lse(64);
  auto fwd = [&](const cuda::FlashArgs& x) { cuda::flash_forward(x, o.ptr, static_cast<float*>(lse.ptr), kDev); };
  auto m = a;
  m.dropout_p = 1.0;
  CHECK_THROWS_WITH_AS(fwd(m), doctest::Contains("dropout_p must be in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(cuda::flash_weights(a, nullptr, o.ptr, kDev), doctest::Contains("null LSE or weights"), Error);
  m = a, m.D = 300;
  CHECK_THROWS_WITH_AS(fwd(m), doctest::Contains("head dim 300"), Error);
  m = a, m.Hkv = 3;
  CHECK_THROWS_WITH_AS(fwd(m), doctest::Contains("not a multiple"), Error);
}
#endif  // ATTNLAB_WITH_CUDA
