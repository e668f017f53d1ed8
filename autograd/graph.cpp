#include "autograd/graph.h"

#include <unordered_map>
#include <unordered_set>

#include "tensor/creation.h"
#include "tensor/ops.h"

namespace attnlab {

namespace {
thread_local bool grad_enabled = true;
}

bool GradMode::is_enabled() { return grad_enabled; }
void GradMode::set_enabled(bool on) { grad_enabled = on; }

SavedTensor::SavedTensor(const Tensor& t, const char* op) : op_(op) {
  if (!t.defined()) return;
  t_ = t.detach();
  version_ = t.version();
}

Tensor SavedTensor::get() const {
  ATTNLAB_CHECK(!t_.defined() || t_.version() == version_, "backward of ", op_, ": a tensor ",
                describe(t_), " saved for the gradient was modified in place afterwards (version ",
                version_, " -> ", t_.version(), "); clone it before modifying, or modify it after backward");
  return t_;
}

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn fn) {
  if (!needs_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->backward = std::move(fn);
  for (const auto& in : inputs) {
    Edge e;
    if (in.defined() && in.requires_grad()) {
      if (in.grad_fn()) e.fn = in.grad_fn();
      else e.leaf = in.impl_ptr();
      e.device = in.device();
    }
    node->next.push_back(std::move(e));
  }
  // `out` may share its impl with nothing else yet; give it the node.
  out.impl().grad_fn = std::move(node);
  out.impl().requires_grad = true;
  return out;
}

namespace {

// Reverse-topological order of the Nodes reachable from `root` (iterative DFS post-order).
std::vector<Node*> topo_order(Node* root) {
  std::vector<Node*> order;
  std::unordered_set<Node*> seen{root};
  std::vector<std::pair<Node*, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    auto& [n, i] = stack.back();
    if (i < n->next.size()) {
      Node* child = n->next[i++].fn.get();
      if (child && seen.insert(child).second) stack.push_back({child, 0});
    } else {
      order.push_back(n);
      stack.pop_back();
    }
  }
  return {order.rbegin(), order.rend()};
}

void accumulate(Tensor& slot, const Tensor& g) {
  if (!slot.defined()) slot = g;
  else slot = ops::add(slot, g);
}

// The core of backward() and grad(): `on_leaf(impl, grad)` receives each leaf gradient.
void run_backward(const Tensor& root, Tensor grad, bool retain_graph,
                  const std::function<void(const std::shared_ptr<TensorImpl>&, const Tensor&)>& on_leaf) {
  ATTNLAB_CHECK(root.defined(), "backward: undefined tensor");
  ATTNLAB_CHECK(root.requires_grad(), "backward: ", describe(root),
                " does not require grad and has no grad_fn (did any input have requires_grad set, and "
                "was grad mode on?)");
  if (!grad.defined()) {
    ATTNLAB_CHECK(root.numel() == 1, "backward: grad can be implicitly created only for a single-element "
                  "output, but the output is ", describe(root), "; pass an explicit gradient");
    grad = ones_like(root);  // on the root's device
  }
  ATTNLAB_CHECK(grad.shape() == root.shape(), "backward: gradient ", describe(grad),
                " does not match the output ", describe(root));
  check_same_device("backward: the gradient of the output", root, grad);
  NoGradGuard no_grad;  // gradients are computed, not recorded
  if (!root.grad_fn()) {
    on_leaf(root.impl_ptr(), grad);
    return;
  }
  std::unordered_map<Node*, Tensor> grads;
  grads[root.grad_fn().get()] = grad;
  for (Node* node : topo_order(root.grad_fn().get())) {
    auto it = grads.find(node);
    if (it == grads.end()) continue;  // no gradient flowed here
    ATTNLAB_CHECK(!node->released, "backward: trying to backward through the graph a second time (",
                  node->name, "'s saved tensors were already freed); call backward with "
                  "retain_graph=true the first time");
    const Tensor g = it->second;
    grads.erase(it);
    Grads in_grads = node->backward(g);
    ATTNLAB_CHECK(in_grads.size() == node->next.size(), "internal: ", node->name, " returned ",
                  in_grads.size(), " gradients for ", node->next.size(), " inputs");
    for (size_t i = 0; i < in_grads.size(); ++i) {
      const Edge& e = node->next[i];
      if (!in_grads[i].defined()) continue;
      ATTNLAB_CHECK(in_grads[i].device() == e.device || !(e.fn || e.leaf), "backward of ", node->name,
                    ": the gradient for input ", i, " is ", describe(in_grads[i]), " on ",
                    in_grads[i].device().str(), ", but that input is on ", e.device.str(),
                    " (a tensor in this op's backward was created without its inputs' device)");
      if (e.fn) accumulate(grads[e.fn.get()], in_grads[i]);
      else if (e.leaf) on_leaf(e.leaf, in_grads[i]);
    }
    if (!retain_graph) {
      node->backward = nullptr;
      node->released = true;
    }
  }
}

}  // namespace

void backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
  run_backward(root, grad, retain_graph, [](const std::shared_ptr<TensorImpl>& leaf, const Tensor& g) {
    Tensor t(leaf);
    ATTNLAB_CHECK(g.shape() == t.shape(), "internal: gradient ", describe(g), " for leaf ", describe(t));
    if (!leaf->grad) {
      leaf->grad = ops::clone(ops::to_dtype(g, t.dtype())).impl_ptr();
    } else {
      ops::add_(Tensor(leaf->grad), ops::to_dtype(g, t.dtype()));
    }
  });
}

std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs,
                         const Tensor& grad_output, bool retain_graph) {
  std::unordered_map<TensorImpl*, size_t> where;
  for (size_t i = 0; i < inputs.size(); ++i) {
    ATTNLAB_CHECK(inputs[i].is_leaf() && inputs[i].requires_grad(), "grad: input ", i,
                  " must be a leaf that requires grad");
    where[inputs[i].impl_ptr().get()] = i;
  }
  std::vector<Tensor> out(inputs.size());
  run_backward(output, grad_output, retain_graph, [&](const std::shared_ptr<TensorImpl>& leaf, const Tensor& g) {
    auto it = where.find(leaf.get());
    if (it != where.end()) accumulate(out[it->second], g);
  });
  for (size_t i = 0; i < out.size(); ++i)
    if (!out[i].defined()) out[i] = zeros_like(inputs[i]);
  return out;
}

}  // namespace attnlab
