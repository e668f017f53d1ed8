// Copies and dtype conversion. Every strided copy goes through copy_, which handles broadcasting and
// all dtype pairs (bf16/f16 via f32 with round-to-nearest-even).
#include <cmath>
#include <cstring>

#include "kernels/cpu/convert.h"
#include "kernels/cuda/runtime.h"
#include "tensor/cuda_ops.h"
#include "tensor/creation.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace attnlab::ops {

namespace {
bool is_half(DType t) { return t == DType::bf16 || t == DType::f16; }

// Reads element `i` (offset in elements) of a tensor of dtype `t` as float/double.
template <class D>
inline D load(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return D(static_cast<const float*>(base)[i]);
    case DType::f64: return D(static_cast<const double*>(base)[i]);
    case DType::bf16: return D(kernels::bf16_to_f32(static_cast<const uint16_t*>(base)[i]));
    case DType::f16: return D(kernels::f16_to_f32(static_cast<const uint16_t*>(base)[i]));
    case DType::i32: return D(static_cast<const int32_t*>(base)[i]);
    case DType::i64: return D(static_cast<const int64_t*>(base)[i]);
    case DType::i8: return D(static_cast<const int8_t*>(base)[i]);
    case DType::u8: return D(static_cast<const uint8_t*>(base)[i]);
  }
  return D(0);
}
}  // namespace

namespace {
// dst and src on different devices, at least one a GPU: the bytes cross as one contiguous block of
// src's dtype, and the conversion/broadcast/strided write happens on dst's side.
void copy_across(const Tensor& dst, const Tensor& src) {
  namespace cuda = kernels::cuda;
  const bool direct = dst.is_contiguous() && dst.dtype() == src.dtype() && dst.shape() == src.shape();
  if (src.device().is_host()) {  // host -> device
    const Tensor s = contiguous(src);
    const Tensor d = direct ? dst : Tensor::empty(src.shape(), src.dtype(), dst.device());
    cuda::copy_to_device(d.raw_data(), s.raw_data(), s.nbytes(), dst.device().index);
    if (!direct) copy_(dst, d);
    return;
  }
  const Tensor s = contiguous(src);  // on src's device
  if (dst.device().is_host()) {  // device -> host
    const Tensor d = direct ? dst : Tensor::empty(src.shape(), src.dtype());
    cuda::copy_to_host(d.raw_data(), s.raw_data(), s.nbytes(), src.device().index);
    if (!direct) copy_(dst, d);
    return;
  }
  copy_(dst, to_device(s, kCPU));  // device -> another device, through the host
}
}  // namespace

Tensor to_device(const Tensor& t, Device device) {
  if (t.device() == device) return t;
  Tensor out = Tensor::empty(t.shape(), t.dtype(), device);
  if (t.device().is_host() && device.is_host()) copy_(out, t);  // cpu:0 <-> the test device cpu:N
  else copy_across(out, t);
  return out;
}

void copy_(const Tensor& dst, const Tensor& src) {
  const Shape target = dst.shape();
  ATTNLAB_CHECK(broadcast_shapes(src.shape(), target, "copy_") == target, "copy_: cannot copy ",
                describe(src), " into ", describe(dst));
  if (dst.is_cuda()) {
    if (src.device() == dst.device() || is_host_scalar(src)) cuda_ops::copy_(dst, src);
    else copy_across(dst, src);
    dst.bump_version();
    return;
  }
  if (src.is_cuda()) {
    copy_across(dst, src);
    dst.bump_version();
    return;
  }
  const Strides sst = broadcast_strides(src.shape(), src.strides(), target);
  StridedLoop<2> loop(target, {dst.strides(), sst});
  const DType dt = dst.dtype(), st = src.dtype();
  char* dbase = static_cast<char*>(dst.raw_data());
  const void* sbase = src.raw_data();
  if (dt == st) {  // same dtype: raw element moves
    const size_t isz = itemsize(dt);
    loop.run([&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& inc) {
      char* d = dbase + off[0] * int64_t(isz);
      const char* s = static_cast<const char*>(sbase) + off[1] * int64_t(isz);
      if (inc[0] == 1 && inc[1] == 1) {
        std::memcpy(d, s, size_t(n) * isz);
        return;
      }
      for (int64_t i = 0; i < n; ++i) std::memcpy(d + i * inc[0] * int64_t(isz), s + i * inc[1] * int64_t(isz), isz);
    });
  } else if (is_half(dt)) {
    loop.run([&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& inc) {
      uint16_t* d = reinterpret_cast<uint16_t*>(dbase) + off[0];
      for (int64_t i = 0; i < n; ++i) {
        const float v = load<float>(sbase, st, off[1] + i * inc[1]);
        d[i * inc[0]] = dt == DType::bf16 ? kernels::f32_to_bf16(v) : kernels::f32_to_f16(v);
      }
    });
  } else {
    dispatch_numeric(dt, "copy_", [&]<class T>() {
      loop.run([&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& inc) {
        T* d = reinterpret_cast<T*>(dbase) + off[0];
        for (int64_t i = 0; i < n; ++i) {
          const double v = load<double>(sbase, st, off[1] + i * inc[1]);
          if constexpr (std::is_integral_v<T>) {
            d[i * inc[0]] = std::isfinite(v) ? T(v) : T(0);  // avoid UB on NaN/inf -> int
          } else {
            d[i * inc[0]] = T(v);
          }
        }
      });
    });
  }
  dst.bump_version();
}

Tensor clone(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), t.dtype(), t.device());
  copy_(out, t);
  return out;
}

Tensor contiguous(const Tensor& t) { return t.is_contiguous() ? t : clone(t); }

Tensor to_dtype(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = Tensor::empty(t.shape(), dtype, t.device());
  copy_(out, t);
  return out;
}

void fill_(const Tensor& t, double value) {
  if (t.is_cuda()) {
    cuda_ops::fill_(t, value);
    t.bump_version();
    return;
  }
  copy_(t, from_vector({value}, {}, t.dtype()));
}

}  // namespace attnlab::ops
