#include "tensor/dtype.h"

#include "kernels/error.h"

namespace attnlab {

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
  if (type == DeviceType::cpu) return index == 0 ? std::string("cpu") : cat("cpu:", index);
  return cat("cuda:", index);
}

}  // namespace attnlab
