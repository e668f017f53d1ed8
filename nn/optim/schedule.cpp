#include "nn/optim/schedule.h"

#include <cmath>
#include <numbers>

namespace attnlab::optim {

Scheduler::Scheduler(Optimizer& opt) : opt_(opt) {
  for (size_t g = 0; g < opt.num_groups(); ++g) base_lrs_.push_back(opt.lr(g));
}

void Scheduler::init() { apply(); }

void Scheduler::apply() {
  for (size_t g = 0; g < base_lrs_.size(); ++g) opt_.set_lr(g, lr_at(g, t_));
}

void Scheduler::step() {
  ++t_;
  apply();
}

std::vector<double> Scheduler::last_lr() const {
  std::vector<double> out;
  for (size_t g = 0; g < base_lrs_.size(); ++g) out.push_back(lr_at(g, t_));
  return out;
}

nlohmann::json Scheduler::state() const {
  return {{"scheduler", name()}, {"t", t_}, {"base_lrs", base_lrs_}, {"params", params()}};
}

void Scheduler::load_state(const nlohmann::json& state) {
  const std::string who = name() + "::load_state";
  int64_t t = 0;
  std::vector<double> base;
  try {
    ATTNLAB_CHECK(state.is_object(), who, ": state is not a json object");
    const auto saved = state.at("scheduler").get<std::string>();
    ATTNLAB_CHECK(saved == name(), who, ": the state was saved by ", saved, ", not ", name());
    ATTNLAB_CHECK(state.at("params") == params(), who, ": saved parameters ",
                  state.at("params").dump(), " differ from this schedule's ", params().dump());
    t = state.at("t").get<int64_t>();
    base = state.at("base_lrs").get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(who, ": malformed state: ", e.what()));
  }
  ATTNLAB_CHECK(t >= 0, who, ": negative step ", t);
  ATTNLAB_CHECK(base.size() == base_lrs_.size(), who, ": the state has ", base.size(),
                " param groups, the optimizer has ", base_lrs_.size());
  t_ = t;
  base_lrs_ = std::move(base);
  apply();
}

// ---- CosineAnnealingLR ------------------------------------------------------------------------------

CosineAnnealingLR::CosineAnnealingLR(Optimizer& opt, int64_t T_max, double eta_min)
    : Scheduler(opt), T_max_(T_max), eta_min_(eta_min) {
  ATTNLAB_CHECK(T_max > 0, "CosineAnnealingLR: T_max must be > 0, got ", T_max);
  ATTNLAB_CHECK(eta_min >= 0, "CosineAnnealingLR: eta_min must be >= 0, got ", eta_min);
  init();
}

double CosineAnnealingLR::lr_at(size_t group, int64_t t) const {
  const double base = base_lrs()[group];
  return eta_min_ +
         (base - eta_min_) * (1 + std::cos(std::numbers::pi * double(t) / double(T_max_))) / 2;
}

nlohmann::json CosineAnnealingLR::params() const {
  return {{"T_max", T_max_}, {"eta_min", eta_min_}};
}

// ---- LinearWarmupCosine ------------------------------------------------------------------------------

LinearWarmupCosine::LinearWarmupCosine(Optimizer& opt, int64_t warmup_steps, int64_t total_steps,
                                       double eta_min, double start_factor)
    : Scheduler(opt),
      warmup_(warmup_steps),
      total_(total_steps),
      eta_min_(eta_min),
      start_factor_(start_factor) {
  ATTNLAB_CHECK(warmup_steps >= 0 && warmup_steps < total_steps,
                "LinearWarmupCosine: need 0 <= warmup_steps < total_steps, got warmup_steps ",
                warmup_steps, ", total_steps ", total_steps);
  ATTNLAB_CHECK(eta_min >= 0, "LinearWarmupCosine: eta_min must be >= 0, got ", eta_min);
  ATTNLAB_CHECK(start_factor >= 0 && start_factor <= 1,
                "LinearWarmupCosine: start_factor must be in [0, 1], got ", start_factor);
  init();
}

double LinearWarmupCosine::lr_at(size_t group, int64_t t) const {
  const double base = base_lrs()[group];
  if (t < warmup_)
    return base * (start_factor_ + (1 - start_factor_) * double(t) / double(warmup_));
  if (t > total_) return eta_min_;
  const double progress = double(t - warmup_) / double(total_ - warmup_);
  return eta_min_ + (base - eta_min_) * (1 + std::cos(std::numbers::pi * progress)) / 2;
}

nlohmann::json LinearWarmupCosine::params() const {
  return {{"warmup_steps", warmup_}, {"total_steps", total_}, {"eta_min", eta_min_},
          {"start_factor", start_factor_}};
}

// ---- StepLR ------------------------------------------------------------------------------------------

StepLR::StepLR(Optimizer& opt, int64_t step_size, double gamma)
    : Scheduler(opt), step_size_(step_size), gamma_(gamma) {
  ATTNLAB_CHECK(step_size > 0, "StepLR: step_size must be > 0, got ", step_size);
  ATTNLAB_CHECK(gamma >= 0 && std::isfinite(gamma), "StepLR: invalid gamma ", gamma);
  init();
}

double StepLR::lr_at(size_t group, int64_t t) const {
  return base_lrs()[group] * std::pow(gamma_, double(t / step_size_));
}

nlohmann::json StepLR::params() const { return {{"step_size", step_size_}, {"gamma", gamma_}}; }

}  // namespace attnlab::optim
