// The element types, defined at the lowest layer so raw-pointer kernels (CPU and CUDA) can dispatch on
// them without seeing tensor/. tensor/dtype.h includes it and adds the tensor-level helpers.
#pragma once
#include <cstddef>
#include <cstdint>

namespace attnlab {

enum class DType : uint8_t { f32, f64, bf16, f16, i32, i64, i8, u8 };

constexpr size_t itemsize(DType t) {
  switch (t) {
    case DType::f64: case DType::i64: return 8;
    case DType::f32: case DType::i32: return 4;
    case DType::bf16: case DType::f16: return 2;
    case DType::i8: case DType::u8: return 1;
  }
  return 0;
}

constexpr const char* dtype_name(DType t) {  // "f32", "bf16", ...
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::i8: return "i8";
    case DType::u8: return "u8";
  }
  return "?";
}

}  // namespace attnlab
