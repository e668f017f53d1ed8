#include "tensor/tensor.h"

#include <cmath>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "kernels/cpu/convert.h"
#include "kernels/cuda/runtime.h"
#include "tensor/dispatch.h"
#include "tensor/memory.h"
#include "tensor/ops.h"
#include <functional>

namespace attnlab {

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  ATTNLAB_CHECK(device.index >= 0, "Storage: bad device index ", device.index);
  if (device.is_host()) {  // cpu:0, or the test device cpu:N (dtype.h): host memory either way
    data_ = memory::cpu_alloc(nbytes);
    return;
  }
  namespace cuda = kernels::cuda;
  ATTNLAB_CHECK(device.index >= 0 && device.index < cuda::device_count(), "Storage: cannot allocate ",
                nbytes, " bytes on ", device.str(), ": ",
                cuda::device_count() == 0 ? "no usable GPU (" + cuda::unavailable_reason() + ")"
                                          : cat("only ", cuda::device_count(), " GPU(s) present"));
  data_ = cuda::device_alloc(nbytes, device.index);  // caching allocator; throws on out of memory
  memory::record_alloc(device, nbytes);
}

Storage::~Storage() {
  if (device_.is_host()) {
    memory::cpu_free(data_, nbytes_);
    return;
  }
  kernels::cuda::device_free(data_, nbytes_, device_.index);  // back to the cache, never throws
  memory::record_free(device_, nbytes_);
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) ATTNLAB_CHECK(d >= 0, "empty: negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(attnlab::numel(shape)) * itemsize(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, const Shape& shape,
                            const Strides& strides, int64_t offset, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

TensorImpl& Tensor::impl() const {
  ATTNLAB_CHECK(impl_ != nullptr, "use of an undefined Tensor");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] == 1) continue;  // size-1 dims may have any stride
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + offset() * int64_t(itemsize(dtype()));
}

template <class T>
T* Tensor::data() const {
  if constexpr (std::is_same_v<T, uint16_t>) {
    ATTNLAB_CHECK(dtype() == DType::bf16 || dtype() == DType::f16, "data<uint16_t>: tensor is ",
                  dtype_name(dtype()), ", not bf16/f16");
  } else {
    ATTNLAB_CHECK(dtype() == dtype_of<T>::value, "data<", dtype_name(dtype_of<T>::value),
                  ">: tensor has dtype ", dtype_name(dtype()));
  }
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int32_t* Tensor::data<int32_t>() const;
template int64_t* Tensor::data<int64_t>() const;
template int8_t* Tensor::data<int8_t>() const;
template uint8_t* Tensor::data<uint8_t>() const;
template uint16_t* Tensor::data<uint16_t>() const;

Tensor Tensor::as_strided(const Shape& shape, const Strides& strides, int64_t offset) const {
  ATTNLAB_CHECK(shape.size() == strides.size(), "as_strided: shape ", shape_str(shape), " and strides ",
                shape_str(strides), " differ in length");
  // Bounds check: the view must stay inside the storage.
  int64_t lo = offset, hi = offset;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0) { lo = hi = offset; break; }
    const int64_t ext = (shape[i] - 1) * strides[i];
    (ext < 0 ? lo : hi) += ext;
  }
  const int64_t cap = int64_t(storage()->nbytes() / itemsize(dtype()));
  ATTNLAB_CHECK(lo >= 0 && (numel() == 0 || attnlab::numel(shape) == 0 || hi < cap), "as_strided: view ",
                shape_str(shape), " strides ", shape_str(strides), " offset ", offset,
                " reaches outside a storage of ", cap, " elements");
  return from_storage(storage(), shape, strides, offset, dtype());
}

Tensor Tensor::to(Device device) const { return ops::to_device(*this, device); }

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (a.device() == b.device()) return;
  throw Error(cat(op, ": tensors on different devices: ", describe(a), " is on ", a.device().str(), ", ",
                  describe(b), " is on ", b.device().str(), " (move one with .to(device))"));
}

bool is_host_scalar(const Tensor& t) { return t.dim() == 0 && t.device() == kCPU; }

Device result_device(const Tensor& a, const Tensor& b) { return is_host_scalar(a) ? b.device() : a.device(); }

Tensor Tensor::detach() const { return from_storage(storage(), shape(), strides(), offset(), dtype()); }

Tensor& Tensor::set_requires_grad(bool on) {
  ATTNLAB_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can change requires_grad (this one ",
                "was produced by an op; use detach() first)");
  ATTNLAB_CHECK(!on || is_floating(dtype()), "set_requires_grad: only floating tensors can require ",
                "gradients, got ", describe(*this));
  impl().requires_grad = on;
  return *this;
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  if (!device().is_host()) return ops::to_device(*this, kCPU).to_vector<T>();
  // Make a contiguous copy in a plain C++ type first (bf16/f16 go through f32).
  const DType host = (dtype() == DType::bf16 || dtype() == DType::f16) ? DType::f32 : dtype();
  const Tensor c = ops::contiguous(ops::to_dtype(*this, host));
  std::vector<T> out(static_cast<size_t>(numel()));
  dispatch_numeric(host, "to_vector", [&]<class S>() {
    const S* p = c.data<S>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = T(p[i]);
  });
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

template <class T>
T Tensor::item() const {
  ATTNLAB_CHECK(numel() == 1, "item: tensor of shape ", shape_str(shape()), " has ", numel(),
                " elements, expected exactly 1");
  return to_vector<T>()[0];
}
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int64_t Tensor::item<int64_t>() const;
template int32_t Tensor::item<int32_t>() const;
template uint8_t Tensor::item<uint8_t>() const;

std::string describe(const Tensor& t) {
  if (!t.defined()) return "undefined";
  return cat(dtype_name(t.dtype()), shape_str(t.shape()),
             t.device() == kCPU ? "" : "@" + t.device().str());
}

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream os;
  const auto v = to_vector<double>();
  const bool integral = !is_floating(dtype());
  const bool summarize = numel() > 1000;
  std::function<void(int64_t, int64_t, int)> rec = [&](int64_t d, int64_t base, int indent) {
    if (d == dim()) {
      if (integral) os << int64_t(v[size_t(base)]);
      else os << std::setprecision(4) << std::fixed << v[size_t(base)];
      return;
    }
    os << "[";
    const int64_t n = shape()[d];
    int64_t block = 1;
    for (int64_t i = d + 1; i < dim(); ++i) block *= shape()[i];
    for (int64_t i = 0; i < n; ++i) {
      if (summarize && n > 6 && i == 3) {
        os << "...";
        i = n - 3;
        os << (d + 1 == dim() ? ", " : ",\n" + std::string(size_t(indent + 1), ' '));
      }
      rec(d + 1, base + i * block, indent + 1);
      if (i + 1 < n) os << (d + 1 == dim() ? ", " : ",\n" + std::string(size_t(indent + 1), ' '));
    }
    os << "]";
  };
  os << "tensor(";
  rec(0, 0, 7);
  os << ", dtype=" << dtype_name(dtype()) << ", shape=" << shape_str(shape());
  if (device() != kCPU) os << ", device=" << device().str();
  if (requires_grad()) os << ", requires_grad";
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace attnlab
