// Module — the base of every layer and model (torch.nn.Module's role).
//
// A Module owns named parameters (leaf tensors with requires_grad), named buffers (state that is not
// trained, e.g. running statistics) and named child modules. Names compose with dots exactly as in
// PyTorch, so checkpoints move between the two: a Sequential child "0" holding a Linear gives
// "0.weight", a model field `layers` (a ModuleList) gives "layers.0.attention.q_proj.weight".
//
// There is no generic virtual forward: modules take different arguments (an attention block takes a
// mask and a cache). Each module defines its own `forward(...)` and `operator()`. Modules with the
// Tensor -> Tensor shape derive from UnaryModule so Sequential can chain them.
//
// Modules hold tensors by handle: a layer keeps `Tensor weight` and registers the same handle, so the
// field, parameters() and an optimizer all see one tensor. Everything that changes parameters
// (load_state_dict, to(dtype), init) therefore works in place and never replaces a handle.
//
// Modules are not copyable (a copy would alias every parameter); share them with std::shared_ptr.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace attnlab::nn {

using NamedTensorList = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- registration (names: non-empty, no '.', unique across parameters, buffers and children) ----
  // Registers a parameter and returns the same handle. The tensor must be a floating-point leaf; it is
  // marked requires_grad (call set_requires_grad(false) on it afterwards to freeze it).
  Tensor register_parameter(const std::string& name, Tensor t);
  // Non-persistent buffers (e.g. caches that can be recomputed) are left out of state_dict().
  Tensor register_buffer(const std::string& name, Tensor t, bool persistent = true);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

  // ---- traversal (registration order, depth first, dotted names) ----
  // A tensor registered twice (weight tying) is listed once, under its first name, as in PyTorch.
  NamedTensorList named_parameters() const;
  std::vector<Tensor> parameters() const;
  NamedTensorList named_buffers() const;  // persistent and non-persistent
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  // Every module below and including this one; this one is named "".
  std::vector<std::pair<std::string, Module*>> named_modules();
  // The number of elements over all (distinct) parameters; only those with requires_grad if asked.
  int64_t num_parameters(bool only_trainable = false) const;

  // ---- checkpoints ----
  // Parameters and persistent buffers, every name (tied tensors appear under each of their names).
  NamedTensorList state_dict() const;
  // Copies values into the existing tensors (under NoGradGuard; handles stay the same). Shapes and
  // dtypes must match exactly. With strict, missing and unexpected keys are errors too. All problems
  // are collected into one Error, e.g.
  //   "load_state_dict for Sequential: missing keys: 2.bias; unexpected keys: 3.weight;
  //    size mismatch for 0.weight: checkpoint [4, 2], model [3, 2]"
  void load_state_dict(const NamedTensorList& sd, bool strict = true);

  // ---- modes and bulk operations (all recursive) ----
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Sets every parameter's gradient to undefined (PyTorch's set_to_none=True).
  void zero_grad();
  // Converts every floating parameter and buffer (and defined gradient) to `dtype` in place: each
  // handle keeps its identity and requires_grad, so optimizers built before stay valid. Integer
  // buffers (e.g. indices) are left alone.
  void to(DType dtype);
  // Moves every parameter and buffer (and defined gradient) to `device` in place, the same way: each
  // handle keeps its identity, requires_grad and dtype, so an optimizer built before stays valid — but
  // its state buffers (e.g. AdamW moments) are not moved here: build the optimizer after moving, or
  // load its state again (Optimizer::load_state puts the buffers on each parameter's device). A no-op
  // for tensors already there (Module::to(kCPU) on a CPU model copies nothing).
  void to(Device device);
  // The device of the first parameter (or buffer); the CPU for a module without tensors.
  Device device() const;
  // Calls fn on every child (recursively) and then on this module, PyTorch's order.
  void apply(const std::function<void(Module&)>& fn);

  // The C++ class name without namespaces, e.g. "Linear" (from RTTI).
  std::string type_name() const;

 protected:
  void add_child(const std::string& name, std::shared_ptr<Module> m);

 private:
  struct Buffer {
    std::string name;
    Tensor t;
    bool persistent;
  };
  void check_new_name(const std::string& name, const char* what) const;
  // Walks the tree; `visit(prefix, module)` sees each module with its dotted prefix ("" or "a.b.").
  void walk(const std::string& prefix,
            const std::function<void(const std::string&, const Module&)>& visit) const;
  // Calls fn on every distinct parameter, its gradient (maybe undefined) and every buffer.
  void visit_tensors(const std::function<void(const Tensor&)>& fn) const;

  NamedTensorList params_;
  std::vector<Buffer> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// A module with the Tensor -> Tensor interface, the ones Sequential can chain.
class UnaryModule : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

}  // namespace attnlab::nn
