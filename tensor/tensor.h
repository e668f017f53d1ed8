// Tensor = shared Storage + shape + strides (in elements) + offset + dtype (+ device).
// A Tensor is a cheap handle (like torch.Tensor): copies share the same TensorImpl; views (reshape,
// permute, narrow, expand, ...) make a new TensorImpl over the same Storage. Every in-place write bumps
// the storage's version counter, which autograd checks for tensors it saved for backward.
//
// This layer holds data and metadata only. The autograd fields (requires_grad, grad, grad_fn) live here
// so a Tensor is one type everywhere, but the graph itself (struct Node) is defined in autograd/.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "tensor/dtype.h"
#include "tensor/shape.h"

namespace attnlab {

struct Node;  // autograd/graph.h

// A block of memory on one device, with a version counter shared by all views of it.
class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  uint64_t version_ = 0;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient (leaves)
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor (non-leaves)
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // A new contiguous tensor with uninitialized contents.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = kCPU);
  // A view of existing storage.
  static Tensor from_storage(std::shared_ptr<Storage> storage, const Shape& shape,
                             const Strides& strides, int64_t offset, DType dtype);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Strides& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  int64_t dim() const { return int64_t(impl().shape.size()); }
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const { return attnlab::numel(impl().shape); }
  size_t nbytes() const { return size_t(numel()) * itemsize(dtype()); }
  bool is_contiguous() const;

  // Typed pointer to element [0, 0, ...] (storage + offset). Throws on a dtype mismatch. For a CUDA
  // tensor this is a device pointer: pass it to kernels/cuda, never dereference it on the host.
  template <class T> T* data() const;
  void* raw_data() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }

  // A new view of the same storage (no autograd edge: that is autograd's job).
  Tensor as_strided(const Shape& shape, const Strides& strides, int64_t offset) const;
  // A copy on `device` (this tensor itself when already there; no autograd edge): ops::to_device.
  Tensor to(Device device) const;
  bool is_cuda() const { return device().type == DeviceType::cuda; }
  // Same storage and metadata, new impl with no autograd history (torch's .detach()).
  Tensor detach() const;

  // The single element, converted to T. Throws unless numel() == 1.
  template <class T> T item() const;
  // All elements in logical (row-major) order, converted to T. For tests and printing. A CUDA tensor
  // is copied to the host first (a synchronisation point).
  template <class T> std::vector<T> to_vector() const;

  // ---- autograd fields (the graph lives in autograd/) ----
  bool requires_grad() const { return impl().requires_grad; }
  // Marks a leaf as requiring grad. Only floating dtypes can; only leaves can be changed.
  Tensor& set_requires_grad(bool on = true);
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g) const { impl().grad = g.impl_; }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  bool is_leaf() const { return impl().grad_fn == nullptr; }

  uint64_t version() const { return impl().storage->version(); }
  void bump_version() const { impl().storage->bump_version(); }

  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }
  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  std::string str() const;  // PyTorch-like printing, summarized when large

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);
// "f32[2, 3]" ("bf16[4]@cuda:0" off the CPU) — used in error messages.
std::string describe(const Tensor& t);
// Throws unless a and b are on the same device, naming the op, both tensors and both devices:
//   "add: tensors on different devices: f32[2, 3] is on cpu, f32[3]@cuda:0 is on cuda:0 (...)".
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
// True when t is a 0-dim tensor on the host (cpu:0). As in PyTorch, an elementwise op on any device
// reads such a tensor as a constant, so scalar_tensor(s) operands (binary_scalar, masked_fill,
// autograd's constants) need no device of their own.
bool is_host_scalar(const Tensor& t);
// The device of an elementwise op over a and b, where its result goes: a's, unless a is a host scalar
// joining b (then b's).
Device result_device(const Tensor& a, const Tensor& b);

}  // namespace attnlab
