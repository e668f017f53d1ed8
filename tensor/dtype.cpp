#include "tensor/dtype.h"

#include "kernels/error.h"

namespace attnlab {

size_t itemsize(DType t) {
  switch (t) {
    case DType::f64: case DType::i64: return 8;
    case DType::f32: case DType::i32: return 4;
    case DType::bf16: case DType::f16: return 2;
    case DType::i8: case DType::u8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
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

bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16;
}

DType dtype_from_name(const std::string& n) {
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::i8,
                  DType::u8})
    if (n == dtype_name(t)) return t;
  throw Error(cat("unknown dtype '", n, "' (expected f32, f64, bf16, f16, i32, i64, i8 or u8)"));
}

std::string Device::str() const {
  return type == DeviceType::cpu ? std::string("cpu") : cat("cuda:", index);
}

}  // namespace attnlab
