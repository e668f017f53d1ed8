// Optimizer — the base of every optimizer in attnlab::optim (SGD, Adam, AdamW), after torch.optim.
//
// An optimizer owns handles to parameters (leaf Tensors, contiguous f32/f64 on the CPU) split into
// param groups, plus per-parameter state (a step count and named buffers such as "exp_avg").
// Training loop:
//
//   optim::AdamW opt(model.parameters(), /*lr=*/3e-4);
//   for (...) {
//     opt.zero_grad();
//     backward(loss(model, batch));
//     optim::clip_grad_norm_(model.parameters(), 1.0);
//     opt.step();
//     sched.step();
//   }
//
// Parameters are numbered 0..N-1 across groups in order (group 0's params first), as in PyTorch's
// state_dict; that index names the state buffers: "state.<i>.<buffer>", e.g. "state.3.exp_avg".
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tensor/tensor.h"

namespace attnlab::optim {

// A set of parameters sharing lr and weight_decay, e.g. to exempt norms and biases from decay:
//
//   std::vector<optim::ParamGroup> groups{{decayed_weights}, {biases_and_norms, std::nullopt, 0.0}};
//   optim::AdamW opt(groups, /*lr=*/1e-3, ..., /*weight_decay=*/0.1);
//
// An unset option takes the optimizer's constructor value; after construction every group held by
// the optimizer (param_groups()) has both set. Other hyperparameters (momentum, betas, eps, ...) are
// per optimizer, not per group.
struct ParamGroup {
  std::vector<Tensor> params;
  std::optional<double> lr;
  std::optional<double> weight_decay;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // "SGD", "Adam", "AdamW": recorded in the state and checked on load.
  virtual std::string name() const = 0;

  // One update of every parameter that has a gradient (parameters whose grad() is undefined are
  // skipped and their state left untouched, as in PyTorch). Runs under NoGradGuard.
  void step();

  // Sets every parameter's gradient to undefined (PyTorch's set_to_none=True): the next backward
  // allocates fresh gradients, and parameters that get none are skipped by step().
  void zero_grad();

  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  size_t num_groups() const { return groups_.size(); }
  // All parameters in index order (group 0 first).
  std::vector<Tensor> parameters() const;
  size_t num_params() const { return state_.size(); }

  // Learning rate of one group; set_lr without a group sets every group (schedules set per group).
  double lr(size_t group = 0) const;
  void set_lr(size_t group, double lr);
  void set_lr(double lr);
  double weight_decay(size_t group = 0) const;

  // Number of step() calls so far.
  int64_t step_count() const { return step_count_; }
  // Updates parameter i has received (steps where it had a gradient); PyTorch's state[p]["step"].
  int64_t param_step(size_t i) const;

  // ---- state save / load -------------------------------------------------------------------------
  // The per-parameter buffers, named "state.<i>.<buffer>". These are the live buffers (no copy, so
  // saving a large model does not double its optimizer memory): save them before the next step().
  // Parameters that have never been updated have no buffers.
  std::vector<std::pair<std::string, Tensor>> state_dict() const;

  // Everything else, as json: {"optimizer": name(), "version": 1, "step_count": n,
  //   "hyperparams": {...}, "param_groups": [{"lr", "weight_decay", "num_params"}],
  //   "param_steps": [per-parameter step], "param_shapes": [[...], ...], "param_dtypes": ["f32", ...]}.
  nlohmann::json state_meta() const;

  // Restores what state_dict()/state_meta() returned, into an optimizer built over the same
  // parameters (same groups, counts, shapes and dtypes; the values may differ). Restores the step
  // counts, the buffers (copied, never shared) and each group's lr and weight_decay (a schedule may
  // have changed them); the other hyperparameters come from this optimizer's constructor (they are
  // in the meta for inspection only). Everything is validated before anything changes; throws
  // attnlab::Error naming the first mismatch (optimizer type, group/parameter counts, a shape or
  // dtype, a missing or unexpected buffer, malformed meta).
  void load_state(const std::vector<std::pair<std::string, Tensor>>& tensors,
                  const nlohmann::json& meta);

 protected:
  // `default_lr` and `default_weight_decay` fill the groups' unset options. Checks that every
  // parameter is a defined, contiguous f32/f64 CPU tensor appearing in exactly one group.
  Optimizer(std::vector<ParamGroup> groups, double default_lr, double default_weight_decay,
            const char* who);

  struct ParamState {
    int64_t step = 0;  // updates so far; buffers exist iff step > 0
    std::vector<std::pair<std::string, Tensor>> buffers;  // in buffer_names() order
    Tensor& buffer(size_t k) { return buffers[k].second; }
  };

  // Names of the buffers an updated parameter has, e.g. {"exp_avg", "exp_avg_sq"}.
  virtual std::vector<std::string> buffer_names() const = 0;
  // The constructor's hyperparameters, for state_meta().
  virtual nlohmann::json hyperparams() const = 0;
  // Updates `param` from `grad` (contiguous, same dtype as param). state.step has already been
  // incremented; on the first update (state.step == 1) state.buffers is empty and the optimizer
  // creates its buffers.
  virtual void update(const Tensor& param, const Tensor& grad, const ParamGroup& group,
                      ParamState& state) = 0;

  static void check_nonnegative(double v, const char* what, const char* who);

 private:
  std::vector<ParamGroup> groups_;
  std::vector<ParamState> state_;  // per parameter, in index order
  int64_t step_count_ = 0;
};

}  // namespace attnlab::optim
