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

// Where a tensor's storage lives. `cpu` (= cpu:0, kCPU) is the host. cuda:N is GPU N.
// cpu:N for N > 0 is a test device (issue 16): host memory that the CPU kernels run on, but a device
// of its own to every device check, exactly as a GPU is. A computation run with all its tensors on
// cpu:1 throws at the first op that meets a tensor made on the default device (a creation that forgot
// its inputs' device), so the bugs that break GPU training show up in a GPU-free test. The CLI never
// accepts it (tools/commands/trader_common.h parse_device).
struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  bool operator==(const Device&) const = default;
  bool is_host() const { return type == DeviceType::cpu; }  // host memory: the CPU kernels read it
  std::string str() const;  // "cpu", "cpu:1", "cuda:0"
};

inline const Device kCPU{};

}  // namespace attnlab
