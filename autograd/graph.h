// Reverse-mode autograd: the graph, grad mode, saved tensors and the backward engine.
//
// Every differentiable op (autograd/functions.h) computes its result with a tensor-level op and, when
// grad mode is on and an input requires grad, attaches a Node to the result: the Node holds the edges
// to its inputs' Nodes (or leaf tensors) and a backward closure capturing exactly what the derivative
// needs (as SavedTensors). backward() sorts the Nodes reachable from the root topologically and runs
// the closures in reverse order, accumulating into leaves' .grad.
//
// Gradients are computed with tensor-level ops, so the backward pass itself is not recorded (no
// double backward).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace attnlab {

using Grads = std::vector<Tensor>;  // one per input; an undefined Tensor means "no gradient"
using BackwardFn = std::function<Grads(const Tensor& grad_output)>;

struct Edge {
  std::shared_ptr<Node> fn;           // the input's producer, or
  std::shared_ptr<TensorImpl> leaf;   // the input itself when it is a leaf requiring grad
  Device device;                      // the input's device: its gradient must be created there
};

struct Node {
  std::string name;  // op name, for error messages
  std::vector<Edge> next;
  BackwardFn backward;
  bool released = false;  // its saved tensors were freed by a backward without retain_graph
};

// Thread-local switch; ops record graph only while it is enabled.
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool on);
};

// Disables recording in a scope (torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// A tensor saved for backward, with the version of its storage at save time. get() throws if the
// storage was modified in place since (the gradient would silently be wrong otherwise).
class SavedTensor {
 public:
  SavedTensor() = default;
  SavedTensor(const Tensor& t, const char* op);
  Tensor get() const;
  bool defined() const { return t_.defined(); }

 private:
  Tensor t_;  // detached: saving an op's own output must not create a reference cycle
  uint64_t version_ = 0;
  const char* op_ = "";
};

// True when grad mode is on and any input requires grad.
bool needs_grad(std::initializer_list<Tensor> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Attaches a Node named `name` to `out` (which becomes a non-leaf requiring grad).
Tensor record(const char* name, Tensor out, const std::vector<Tensor>& inputs, BackwardFn fn);

// Runs backward from `root`. `grad` defaults to 1 for a single-element root (required otherwise).
// Without retain_graph the graph's saved tensors are freed and a second backward throws.
// Every gradient a Node's backward returns must be on its input's device: one that is not (a closure
// that created a tensor on the default device) is an Error naming that op, not a device mismatch
// somewhere further down the graph.
void backward(const Tensor& root, const Tensor& grad = Tensor(), bool retain_graph = false);

// d(output)/d(inputs) without touching .grad (torch.autograd.grad).
std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs,
                         const Tensor& grad_output = Tensor(), bool retain_graph = false);

}  // namespace attnlab
