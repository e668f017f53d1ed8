// Containers with PyTorch's child names "0", "1", ..., so state dicts match nn.Sequential and
// nn.ModuleList (e.g. the seed's ff.0.weight, ff.3.bias and layers.1.norm1.weight).
#pragma once
#include <initializer_list>
#include <memory>
#include <vector>

#include "nn/module.h"

namespace attnlab::nn {

// Chains Tensor -> Tensor modules: forward(x) = m_{n-1}(...m_0(x)).
class Sequential : public UnaryModule {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<UnaryModule>> modules);
  // Appends as child str(size()); returns *this for chaining.
  Sequential& push_back(std::shared_ptr<UnaryModule> m);
  Tensor forward(const Tensor& x) override;

  size_t size() const { return items_.size(); }
  const std::shared_ptr<UnaryModule>& operator[](size_t i) const;
  // The i-th module as T; Error when it is of another type.
  template <class T> std::shared_ptr<T> get(size_t i) const {
    auto p = std::dynamic_pointer_cast<T>((*this)[i]);
    ATTNLAB_CHECK(p != nullptr, "Sequential::get: child ", i, " is a ", (*this)[i]->type_name());
    return p;
  }

 private:
  std::vector<std::shared_ptr<UnaryModule>> items_;
};

// Holds modules of any kind (e.g. transformer blocks with their own forward signatures); the owner
// iterates and calls them.
class ModuleList : public Module {
 public:
  ModuleList() = default;
  ModuleList(std::initializer_list<std::shared_ptr<Module>> modules);
  ModuleList& push_back(std::shared_ptr<Module> m);

  size_t size() const { return items_.size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const;
  template <class T> std::shared_ptr<T> get(size_t i) const {
    auto p = std::dynamic_pointer_cast<T>((*this)[i]);
    ATTNLAB_CHECK(p != nullptr, "ModuleList::get: child ", i, " is a ", (*this)[i]->type_name());
    return p;
  }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

}  // namespace attnlab::nn
