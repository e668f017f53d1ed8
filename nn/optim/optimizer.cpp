#include "nn/optim/optimizer.h"

#include <cmath>
#include <map>
#include <set>

#include "autograd/graph.h"
#include "tensor/creation.h"
#include "tensor/ops.h"

namespace attnlab::optim {

namespace {
constexpr int kStateVersion = 1;
}

void Optimizer::check_nonnegative(double v, const char* what, const char* who) {
  ATTNLAB_CHECK(v >= 0.0 && std::isfinite(v), who, ": invalid ", what, " ", v,
                " (must be finite and >= 0)");
}

Optimizer::Optimizer(std::vector<ParamGroup> groups, double default_lr, double default_weight_decay,
                     const char* who)
    : groups_(std::move(groups)) {
  ATTNLAB_CHECK(!groups_.empty(), who, ": got no parameter groups");
  std::set<const TensorImpl*> seen;
  size_t index = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    if (!g.lr) g.lr = default_lr;
    if (!g.weight_decay) g.weight_decay = default_weight_decay;
    check_nonnegative(*g.lr, "lr", who);
    check_nonnegative(*g.weight_decay, "weight_decay", who);
    for (size_t k = 0; k < g.params.size(); ++k, ++index) {
      const Tensor& p = g.params[k];
      ATTNLAB_CHECK(p.defined(), who, ": parameter ", index, " (group ", gi, ") is undefined");
      ATTNLAB_CHECK(p.dtype() == DType::f32 || p.dtype() == DType::f64, who, ": parameter ", index,
                    " is ", describe(p), "; optimizers update f32 or f64 parameters");
      ATTNLAB_CHECK(p.is_contiguous(), who, ": parameter ", index, " (", describe(p),
                    ") is not contiguous");
      ATTNLAB_CHECK(seen.insert(&p.impl()).second, who, ": parameter ", index,
                    " appears more than once (in one group or across groups)");
    }
  }
  ATTNLAB_CHECK(index > 0, who, ": got an empty parameter list");
  state_.resize(index);
}

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> out;
  out.reserve(state_.size());
  for (const auto& g : groups_) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

double Optimizer::lr(size_t group) const {
  ATTNLAB_CHECK(group < groups_.size(), "Optimizer::lr: group ", group, " out of range (",
                groups_.size(), " groups)");
  return *groups_[group].lr;
}

void Optimizer::set_lr(size_t group, double lr) {
  ATTNLAB_CHECK(group < groups_.size(), "Optimizer::set_lr: group ", group, " out of range (",
                groups_.size(), " groups)");
  check_nonnegative(lr, "lr", "Optimizer::set_lr");
  groups_[group].lr = lr;
}

void Optimizer::set_lr(double lr) {
  for (size_t g = 0; g < groups_.size(); ++g) set_lr(g, lr);
}

double Optimizer::weight_decay(size_t group) const {
  ATTNLAB_CHECK(group < groups_.size(), "Optimizer::weight_decay: group ", group,
                " out of range (", groups_.size(), " groups)");
  return *groups_[group].weight_decay;
}

int64_t Optimizer::param_step(size_t i) const {
  ATTNLAB_CHECK(i < state_.size(), "Optimizer::param_step: parameter ", i, " out of range (",
                state_.size(), " parameters)");
  return state_[i].step;
}

void Optimizer::step() {
  NoGradGuard no_grad;
  size_t index = 0;
  for (const auto& g : groups_) {
    for (const Tensor& p : g.params) {
      ParamState& st = state_[index++];
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      ATTNLAB_CHECK(grad.shape() == p.shape(), name(), ".step: parameter ", index - 1, " is ",
                    describe(p), " but its gradient is ", describe(grad));
      ATTNLAB_CHECK(grad.device() == p.device(), name(), ".step: parameter ", index - 1, " is on ",
                    p.device().str(), " but its gradient is on ", grad.device().str());
      // The kernels read raw contiguous memory of the parameter's dtype.
      if (grad.dtype() != p.dtype()) grad = ops::to_dtype(grad, p.dtype());
      grad = ops::contiguous(grad);
      ++st.step;
      update(p, grad, g, st);
      p.bump_version();
    }
  }
  ++step_count_;
}

void Optimizer::zero_grad() {
  for (const auto& g : groups_)
    for (const Tensor& p : g.params) p.set_grad(Tensor());
}

// ---- state ----------------------------------------------------------------------------------------

std::vector<std::pair<std::string, Tensor>> Optimizer::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < state_.size(); ++i)
    for (const auto& [buf, t] : state_[i].buffers)
      out.emplace_back("state." + std::to_string(i) + "." + buf, t);
  return out;
}

nlohmann::json Optimizer::state_meta() const {
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& g : groups_)
    groups.push_back({{"lr", *g.lr}, {"weight_decay", *g.weight_decay},
                      {"num_params", g.params.size()}});
  nlohmann::json steps = nlohmann::json::array(), shapes = nlohmann::json::array(),
                 dtypes = nlohmann::json::array();
  const auto params = parameters();
  for (size_t i = 0; i < state_.size(); ++i) {
    steps.push_back(state_[i].step);
    shapes.push_back(params[i].shape());
    dtypes.push_back(dtype_name(params[i].dtype()));
  }
  return {{"optimizer", name()},         {"version", kStateVersion},
          {"step_count", step_count_},   {"hyperparams", hyperparams()},
          {"param_groups", groups},      {"param_steps", steps},
          {"param_shapes", shapes},      {"param_dtypes", dtypes}};
}

void Optimizer::load_state(const std::vector<std::pair<std::string, Tensor>>& tensors,
                           const nlohmann::json& meta) {
  const std::string who = name() + "::load_state";
  const auto params = parameters();
  const std::vector<std::string> buf_names = buffer_names();

  // 1. Validate the meta and everything it says against this optimizer.
  std::string saved_name;
  int64_t step_count = 0;
  std::vector<int64_t> steps;
  std::vector<std::pair<double, double>> group_opts;  // (lr, weight_decay)
  try {
    ATTNLAB_CHECK(meta.is_object(), who, ": state meta is not a json object");
    saved_name = meta.at("optimizer").get<std::string>();
    ATTNLAB_CHECK(saved_name == name(), who, ": the state was saved by ", saved_name,
                  ", not ", name());
    const int version = meta.at("version").get<int>();
    ATTNLAB_CHECK(version == kStateVersion, who, ": unsupported state version ", version,
                  " (this build reads version ", kStateVersion, ")");
    step_count = meta.at("step_count").get<int64_t>();
    const auto& groups = meta.at("param_groups");
    ATTNLAB_CHECK(groups.is_array() && groups.size() == groups_.size(), who, ": the state has ",
                  groups.size(), " param groups, this optimizer has ", groups_.size());
    for (size_t g = 0; g < groups_.size(); ++g) {
      const size_t n = groups[g].at("num_params").get<size_t>();
      ATTNLAB_CHECK(n == groups_[g].params.size(), who, ": param group ", g, " has ", n,
                    " parameters in the state but ", groups_[g].params.size(), " here");
      const double lr = groups[g].at("lr").get<double>();
      const double wd = groups[g].at("weight_decay").get<double>();
      check_nonnegative(lr, "lr", who.c_str());
      check_nonnegative(wd, "weight_decay", who.c_str());
      group_opts.emplace_back(lr, wd);
    }
    steps = meta.at("param_steps").get<std::vector<int64_t>>();
    const auto shapes = meta.at("param_shapes").get<std::vector<Shape>>();
    const auto dtypes = meta.at("param_dtypes").get<std::vector<std::string>>();
    ATTNLAB_CHECK(steps.size() == params.size() && shapes.size() == params.size() &&
                      dtypes.size() == params.size(),
                  who, ": the state is for ", steps.size(), " parameters, this optimizer has ",
                  params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      ATTNLAB_CHECK(shapes[i] == params[i].shape(), who, ": parameter ", i, " has shape ",
                    shape_str(params[i].shape()), " but the state is for shape ",
                    shape_str(shapes[i]));
      ATTNLAB_CHECK(dtypes[i] == dtype_name(params[i].dtype()), who, ": parameter ", i, " is ",
                    dtype_name(params[i].dtype()), " but the state is for ", dtypes[i]);
      ATTNLAB_CHECK(steps[i] >= 0, who, ": parameter ", i, " has a negative step ", steps[i]);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(who, ": malformed state meta: ", e.what()));
  }

  // 2. Match the tensors to (parameter, buffer) pairs: exactly the buffers of updated parameters.
  std::map<std::string, Tensor> by_name;
  for (const auto& [n, t] : tensors) {
    ATTNLAB_CHECK(by_name.emplace(n, t).second, who, ": tensor '", n, "' given twice");
  }
  std::vector<ParamState> fresh(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    fresh[i].step = steps[i];
    if (steps[i] == 0) continue;
    for (const auto& b : buf_names) {
      const std::string key = "state." + std::to_string(i) + "." + b;
      auto it = by_name.find(key);
      ATTNLAB_CHECK(it != by_name.end(), who, ": missing buffer '", key, "' (parameter ", i,
                    " was updated ", steps[i], " times)");
      const Tensor& t = it->second;
      ATTNLAB_CHECK(t.defined() && t.shape() == params[i].shape(), who, ": buffer '", key, "' is ",
                    t.defined() ? describe(t) : std::string("undefined"), " but parameter ", i,
                    " is ", describe(params[i]));
      // A copy in the parameter's dtype and on its device, so the loaded optimizer never aliases the
      // caller's tensors (a state read from a file on the CPU follows a model moved to the GPU).
      Tensor copy = zeros_like(params[i]);
      ops::copy_(copy, t);
      fresh[i].buffers.emplace_back(b, copy);
      by_name.erase(it);
    }
  }
  ATTNLAB_CHECK(by_name.empty(), who, ": unexpected tensor '",
                by_name.empty() ? "" : by_name.begin()->first, "' in the state (",
                by_name.size(), " not used)");

  // 3. Apply.
  state_ = std::move(fresh);
  step_count_ = step_count;
  for (size_t g = 0; g < groups_.size(); ++g) {
    groups_[g].lr = group_opts[g].first;
    groups_[g].weight_decay = group_opts[g].second;
  }
}

}  // namespace attnlab::optim
