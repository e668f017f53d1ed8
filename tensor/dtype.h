// Element types and devices.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/dtype.h"  // enum class DType, itemsize(), dtype_name()

namespace attnlab {

bool is_floating(DType t);        // f32, f64, bf16, f16
DType dtype_from_name(const std::string& name);

// Maps a C++ type to its DType (bf16/f16 have no C++ type: they are stored as uint16_t bits and
// computed in f32).
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<int8_t> { static constexpr DType value = DType::i8; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  bool operator==(const Device&) const = default;
  std::string str() const;  // "cpu", "cuda:0"
};

inline const Device kCPU{};

}  // namespace attnlab
