#include "autograd/autocast.h"

#include "autograd/functions.h"

namespace attnlab::autocast {

namespace {
struct State {
  bool enabled = false;
  DType dtype = DType::bf16;
};
State& state() {
  thread_local State s;
  return s;
}

bool is_low(DType t) { return t == DType::bf16 || t == DType::f16; }

// Rank for promotion among floating dtypes; bf16 and f16 share a rank (they promote to f32 together).
int rank(DType t) { return t == DType::f64 ? 3 : t == DType::f32 ? 2 : 1; }
}  // namespace

bool is_enabled() { return state().enabled; }
DType dtype() { return state().dtype; }

AutocastGuard::AutocastGuard(DType dtype, bool enabled)
    : prev_enabled_(state().enabled), prev_dtype_(state().dtype) {
  ATTNLAB_CHECK(is_low(dtype) || dtype == DType::f32, "AutocastGuard: dtype must be bf16, f16 or f32 (off), got ",
                dtype_name(dtype));
  state().enabled = enabled && dtype != DType::f32;
  if (dtype != DType::f32) state().dtype = dtype;
}

AutocastGuard::~AutocastGuard() {
  state().enabled = prev_enabled_;
  state().dtype = prev_dtype_;
}

DType parse_precision(const std::string& name) {
  if (name == "f32" || name == "fp32") return DType::f32;
  if (name == "bf16") return DType::bf16;
  if (name == "f16" || name == "fp16") return DType::f16;
  throw Error("unknown precision '" + name + "' (expected f32, bf16 or f16)");
}

Tensor to_low(const Tensor& t) {
  if (!is_enabled() || !t.defined() || t.dtype() != DType::f32) return t;
  return to_dtype(t, dtype());
}

Tensor to_f32(const Tensor& t) {
  if (!is_enabled() || !t.defined() || !is_low(t.dtype())) return t;
  return to_dtype(t, DType::f32);
}

std::pair<Tensor, Tensor> promote(const Tensor& a, const Tensor& b) {
  if (!is_enabled() || !a.defined() || !b.defined() || a.dtype() == b.dtype() || !is_floating(a.dtype()) ||
      !is_floating(b.dtype()))
    return {a, b};
  const int ra = rank(a.dtype()), rb = rank(b.dtype());
  const DType to = ra > rb ? a.dtype() : rb > ra ? b.dtype() : DType::f32;  // bf16 with f16: f32
  return {to_dtype(a, to), to_dtype(b, to)};
}

}  // namespace attnlab::autocast
