// Learning-rate schedules (torch.optim.lr_scheduler), in closed form: the lr after t calls of
// step() is a pure function lr(base_lr, t), so a schedule resumes exactly from (base_lrs, t) alone.
//
// As in PyTorch, constructing a schedule records each group's current lr as its base_lr and sets the
// lr for t = 0; call step() once after each optimizer step:
//
//   optim::CosineAnnealingLR sched(opt, /*T_max=*/1000, /*eta_min=*/1e-5);
//   for (...) { ...; opt.step(); sched.step(); }
//
// The schedule owns the lr: it overwrites every group's lr on each step(). It keeps a reference to
// the optimizer, which must outlive it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/optim/optimizer.h"

namespace attnlab::optim {

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  virtual std::string name() const = 0;  // "CosineAnnealingLR", ...

  // Advances t by one and sets every group's lr to lr_at(group, t).
  void step();
  // The lr of every group as last set by this schedule (PyTorch's get_last_lr()).
  std::vector<double> last_lr() const;
  // Steps taken (PyTorch's last_epoch).
  int64_t t() const { return t_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }

  // The schedule's formula: lr of `group` after t steps.
  virtual double lr_at(size_t group, int64_t t) const = 0;

  // {"scheduler": name(), "t": t, "base_lrs": [...], "params": {...}}. load_state checks the name,
  // the group count and the parameters (a mismatch would silently change the schedule), restores t
  // and base_lrs, and sets the optimizer's lrs to lr_at(t). attnlab::Error on any mismatch.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 protected:
  explicit Scheduler(Optimizer& opt);
  // Call at the end of a derived constructor (the formula is not available in the base's).
  void init();
  // The constructor's parameters, for state() and load_state's check.
  virtual nlohmann::json params() const = 0;

  Optimizer& opt_;

 private:
  void apply();
  std::vector<double> base_lrs_;
  int64_t t_ = 0;
};

// Cosine annealing without restarts (torch.optim.lr_scheduler.CosineAnnealingLR, closed form):
//   lr(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2
// lr(0) = base_lr, lr(T_max) = eta_min; past T_max the cosine rises again, as PyTorch's does.
class CosineAnnealingLR : public Scheduler {
 public:
  CosineAnnealingLR(Optimizer& opt, int64_t T_max, double eta_min = 0.0);
  std::string name() const override { return "CosineAnnealingLR"; }
  double lr_at(size_t group, int64_t t) const override;

 protected:
  nlohmann::json params() const override;

 private:
  int64_t T_max_;
  double eta_min_;
};

// Linear warmup then cosine decay (the usual transformer schedule; HuggingFace's
// get_cosine_schedule_with_warmup with a floor), with W = warmup_steps, T = total_steps:
//   t <  W:      lr = base_lr * (start_factor + (1 - start_factor) * t / W)
//   W <= t <= T: lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * (t - W) / (T - W))) / 2
//   t >  T:      lr = eta_min
// With start_factor = 0 the first step (t = 0) has lr 0. Requires 0 <= W < T, start_factor in [0, 1].
class LinearWarmupCosine : public Scheduler {
 public:
  LinearWarmupCosine(Optimizer& opt, int64_t warmup_steps, int64_t total_steps,
                     double eta_min = 0.0, double start_factor = 0.0);
  std::string name() const override { return "LinearWarmupCosine"; }
  double lr_at(size_t group, int64_t t) const override;

 protected:
  nlohmann::json params() const override;

 private:
  int64_t warmup_, total_;
  double eta_min_, start_factor_;
};

// Step decay (torch.optim.lr_scheduler.StepLR, closed form):
//   lr(t) = base_lr * gamma^floor(t / step_size)
class StepLR : public Scheduler {
 public:
  StepLR(Optimizer& opt, int64_t step_size, double gamma = 0.1);
  std::string name() const override { return "StepLR"; }
  double lr_at(size_t group, int64_t t) const override;

 protected:
  nlohmann::json params() const override;

 private:
  int64_t step_size_;
  double gamma_;
};

}  // namespace attnlab::optim
