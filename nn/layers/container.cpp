#include "nn/layers/container.h"

#include <string>

namespace attnlab::nn {

Sequential::Sequential(std::initializer_list<std::shared_ptr<UnaryModule>> modules) {
  for (const auto& m : modules) push_back(m);
}

Sequential& Sequential::push_back(std::shared_ptr<UnaryModule> m) {
  register_module(std::to_string(items_.size()), m);
  items_.push_back(std::move(m));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& m : items_) y = m->forward(y);
  return y;
}

const std::shared_ptr<UnaryModule>& Sequential::operator[](size_t i) const {
  ATTNLAB_CHECK(i < items_.size(), "Sequential: index ", i, " out of range for size ", items_.size());
  return items_[i];
}

ModuleList::ModuleList(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const auto& m : modules) push_back(m);
}

ModuleList& ModuleList::push_back(std::shared_ptr<Module> m) {
  register_module(std::to_string(items_.size()), m);
  items_.push_back(std::move(m));
  return *this;
}

const std::shared_ptr<Module>& ModuleList::operator[](size_t i) const {
  ATTNLAB_CHECK(i < items_.size(), "ModuleList: index ", i, " out of range for size ", items_.size());
  return items_[i];
}

}  // namespace attnlab::nn
