// Internal to tensor/: dtype dispatch and the strided N-operand loop all elementwise ops share.
#pragma once
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "kernels/cpu/parallel.h"
#include "kernels/error.h"
#include "tensor/dtype.h"
#include "tensor/shape.h"

namespace attnlab {

// Calls f.template operator()<T>() for T = the C++ type of a floating dtype (f32/f64).
template <class F>
void dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    default:
      throw Error(cat(op, ": dtype ", dtype_name(t), " not supported here (need f32 or f64)"));
  }
}

// All non-16-bit dtypes: f32, f64, i32, i64, i8, u8.
template <class F>
void dispatch_numeric(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::i32: return f.template operator()<int32_t>();
    case DType::i64: return f.template operator()<int64_t>();
    case DType::i8: return f.template operator()<int8_t>();
    case DType::u8: return f.template operator()<uint8_t>();
    default:
      throw Error(cat(op, ": dtype ", dtype_name(t), " not supported here (convert bf16/f16 to f32)"));
  }
}

// A loop over N strided operands with a common logical shape. Adjacent dims that are contiguous with
// each other in every operand are merged ("coalesced"), so a contiguous tensor becomes one flat row.
template <size_t N>
struct StridedLoop {
  Shape shape;                   // coalesced shape; the last dim is the inner row
  std::array<Strides, N> strides;

  StridedLoop(const Shape& s, const std::array<Strides, N>& st) {
    // drop size-1 dims, then merge mergeable neighbours
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == 1) continue;
      const bool merge = !shape.empty() && [&] {
        for (size_t k = 0; k < N; ++k)
          if (strides[k].back() != st[k][i] * s[i]) return false;
        return true;
      }();
      if (merge) {
        shape.back() *= s[i];
        for (size_t k = 0; k < N; ++k) strides[k].back() = st[k][i];
      } else {
        shape.push_back(s[i]);
        for (size_t k = 0; k < N; ++k) strides[k].push_back(st[k][i]);
      }
    }
    if (shape.empty()) {  // scalar or all size-1
      shape.push_back(numel(s) == 0 ? 0 : 1);
      for (size_t k = 0; k < N; ++k) strides[k].push_back(0);
    }
  }

  // f(offsets, n, inner_strides): one call per inner row; offsets are element offsets per operand.
  template <class F>
  void run(F&& f) const {
    const int64_t nd = int64_t(shape.size());
    const int64_t inner = shape.back();
    if (inner == 0) return;
    const int64_t outer = numel(shape) / inner;
    std::array<int64_t, N> inner_st;
    for (size_t k = 0; k < N; ++k) inner_st[k] = strides[k].back();
    auto row = [&](int64_t o) {
      std::array<int64_t, N> off{};
      int64_t rem = o;
      for (int64_t d = nd - 2; d >= 0; --d) {
        const int64_t i = rem % shape[d];
        rem /= shape[d];
        for (size_t k = 0; k < N; ++k) off[k] += i * strides[k][d];
      }
      f(off, inner, inner_st);
    };
    if (outer == 1 && inner > kernels::kParallelGrain) {
      // One long row (the contiguous case): split it into chunks, one per thread.
      const int64_t chunk = kernels::kParallelGrain / 4;
      const int64_t nchunks = (inner + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
      for (int64_t c = 0; c < nchunks; ++c) {
        std::array<int64_t, N> off{};
        for (size_t k = 0; k < N; ++k) off[k] = c * chunk * inner_st[k];
        f(off, std::min(chunk, inner - c * chunk), inner_st);
      }
    } else if (outer * inner > kernels::kParallelGrain && outer > 1) {
#pragma omp parallel for schedule(static)
      for (int64_t o = 0; o < outer; ++o) row(o);
    } else {
      for (int64_t o = 0; o < outer; ++o) row(o);
    }
  }
};

}  // namespace attnlab
