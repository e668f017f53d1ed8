#include "nn/module.h"

#include <cxxabi.h>

#include <cstdlib>
#include <map>
#include <set>
#include <typeinfo>

#include "autograd/graph.h"
#include "tensor/ops.h"

namespace attnlab::nn {

void Module::check_new_name(const std::string& name, const char* what) const {
  ATTNLAB_CHECK(!name.empty(), type_name(), ".", what, ": empty name");
  ATTNLAB_CHECK(name.find('.') == std::string::npos, type_name(), ".", what, ": name '", name,
                "' must not contain '.'");
  bool taken = false;
  for (const auto& [n, t] : params_) taken |= n == name;
  for (const auto& b : buffers_) taken |= b.name == name;
  for (const auto& [n, c] : children_) taken |= n == name;
  ATTNLAB_CHECK(!taken, type_name(), ".", what, ": name '", name, "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  check_new_name(name, "register_parameter");
  ATTNLAB_CHECK(t.defined(), type_name(), ".register_parameter: '", name, "' is undefined");
  ATTNLAB_CHECK(is_floating(t.dtype()), type_name(), ".register_parameter: '", name,
                "' must be floating point, got ", describe(t));
  ATTNLAB_CHECK(t.is_leaf(), type_name(), ".register_parameter: '", name,
                "' must be a leaf (detach() it first)");
  t.set_requires_grad(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t, bool persistent) {
  check_new_name(name, "register_buffer");
  ATTNLAB_CHECK(t.defined(), type_name(), ".register_buffer: '", name, "' is undefined");
  buffers_.push_back({name, t, persistent});
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_new_name(name, "register_module");
  ATTNLAB_CHECK(m != nullptr, type_name(), ".register_module: '", name, "' is null");
  children_.emplace_back(name, std::move(m));
}

void Module::walk(const std::string& prefix,
                  const std::function<void(const std::string&, const Module&)>& visit) const {
  visit(prefix, *this);
  for (const auto& [n, c] : children_) c->walk(prefix + n + ".", visit);
}

NamedTensorList Module::named_parameters() const {
  NamedTensorList out;
  std::set<const TensorImpl*> seen;
  walk("", [&](const std::string& prefix, const Module& m) {
    for (const auto& [n, t] : m.params_)
      if (seen.insert(&t.impl()).second) out.emplace_back(prefix + n, t);
  });
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensorList Module::named_buffers() const {
  NamedTensorList out;
  walk("", [&](const std::string& prefix, const Module& m) {
    for (const auto& b : m.buffers_) out.emplace_back(prefix + b.name, b.t);
  });
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  walk("", [&](const std::string& prefix, const Module& m) {
    // walk is const; the tree is ours to hand out mutably since `this` is non-const.
    out.emplace_back(prefix.empty() ? prefix : prefix.substr(0, prefix.size() - 1),
                     const_cast<Module*>(&m));
  });
  return out;
}

int64_t Module::num_parameters(bool only_trainable) const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters())
    if (!only_trainable || t.requires_grad()) n += t.numel();
  return n;
}

NamedTensorList Module::state_dict() const {
  NamedTensorList out;
  walk("", [&](const std::string& prefix, const Module& m) {
    for (const auto& [n, t] : m.params_) out.emplace_back(prefix + n, t);
    for (const auto& b : m.buffers_)
      if (b.persistent) out.emplace_back(prefix + b.name, b.t);
  });
  return out;
}

namespace {
std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}
}  // namespace

void Module::load_state_dict(const NamedTensorList& sd, bool strict) {
  const NamedTensorList own = state_dict();
  std::map<std::string, Tensor> given;
  std::vector<std::string> duplicates;
  for (const auto& [n, t] : sd)
    if (!given.emplace(n, t).second) duplicates.push_back(n);

  // Validate everything before copying anything, so a failed load leaves the module untouched.
  std::vector<std::string> missing, unexpected, mismatches;
  std::set<std::string> own_names;
  for (const auto& [n, dst] : own) {
    own_names.insert(n);
    auto it = given.find(n);
    if (it == given.end()) {
      missing.push_back(n);
      continue;
    }
    const Tensor& src = it->second;
    if (!src.defined())
      mismatches.push_back(cat("undefined tensor for ", n));
    else if (src.shape() != dst.shape())
      mismatches.push_back(cat("size mismatch for ", n, ": checkpoint ", shape_str(src.shape()),
                               ", model ", shape_str(dst.shape())));
    else if (src.dtype() != dst.dtype())
      mismatches.push_back(cat("dtype mismatch for ", n, ": checkpoint ", dtype_name(src.dtype()),
                               ", model ", dtype_name(dst.dtype())));
  }
  for (const auto& [n, t] : sd)
    if (!own_names.count(n)) unexpected.push_back(n);

  std::vector<std::string> problems;
  if (!duplicates.empty()) problems.push_back("duplicate keys: " + join(duplicates));
  if (strict && !missing.empty()) problems.push_back("missing keys: " + join(missing));
  if (strict && !unexpected.empty()) problems.push_back("unexpected keys: " + join(unexpected));
  for (const auto& m : mismatches) problems.push_back(m);
  if (!problems.empty()) {
    std::string msg = "load_state_dict for " + type_name() + ": ";
    for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
    throw Error(msg);
  }

  NoGradGuard guard;
  for (const auto& [n, dst] : own) {
    auto it = given.find(n);
    if (it != given.end()) ops::copy_(dst, it->second);
  }
}

void Module::train(bool on) {
  walk("", [&](const std::string&, const Module& m) { const_cast<Module&>(m).training_ = on; });
}

void Module::zero_grad() {
  for (const auto& t : parameters()) t.set_grad(Tensor());
}

namespace {
// Rebinds t's TensorImpl to the data and metadata of c (a converted or moved copy), so every holder of
// the handle sees the new dtype or device; requires_grad, grad and grad_fn stay.
void rebind(const Tensor& t, const Tensor& c) {
  TensorImpl& impl = t.impl();
  impl.storage = c.storage();
  impl.shape = c.shape();
  impl.strides = c.strides();
  impl.offset = c.offset();
  impl.dtype = c.dtype();
}
}  // namespace

void Module::visit_tensors(const std::function<void(const Tensor&)>& fn) const {
  std::set<const TensorImpl*> seen;
  walk("", [&](const std::string&, const Module& m) {
    for (const auto& [n, t] : m.params_) {
      if (!seen.insert(&t.impl()).second) continue;
      fn(t);
      fn(t.grad());
    }
    for (const auto& b : m.buffers_)
      if (seen.insert(&b.t.impl()).second) fn(b.t);
  });
}

void Module::to(DType dtype) {
  ATTNLAB_CHECK(is_floating(dtype), type_name(), ".to: target dtype must be floating, got ",
                dtype_name(dtype));
  NoGradGuard guard;
  visit_tensors([&](const Tensor& t) {
    if (t.defined() && t.dtype() != dtype && is_floating(t.dtype())) rebind(t, ops::to_dtype(t, dtype));
  });
}

void Module::to(Device device) {
  NoGradGuard guard;
  // A contiguous copy: views of a parameter are not kept.
  visit_tensors([&](const Tensor& t) {
    if (t.defined() && t.device() != device) rebind(t, ops::to_device(t, device));
  });
}

Device Module::device() const {
  Device d = kCPU;
  bool found = false;
  walk("", [&](const std::string&, const Module& m) {
    if (found) return;
    if (!m.params_.empty()) d = m.params_.front().second.device(), found = true;
    else if (!m.buffers_.empty()) d = m.buffers_.front().t.device(), found = true;
  });
  return d;
}

void Module::apply(const std::function<void(Module&)>& fn) {
  for (auto& [n, c] : children_) c->apply(fn);
  fn(*this);
}

std::string Module::type_name() const {
  const char* mangled = typeid(*this).name();
  int status = 0;
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = (status == 0 && demangled) ? demangled : mangled;
  std::free(demangled);
  const auto colon = name.rfind("::");
  return colon == std::string::npos ? name : name.substr(colon + 2);
}

}  // namespace attnlab::nn
