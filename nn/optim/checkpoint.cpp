#include "nn/optim/checkpoint.h"

#include <map>
#include <set>

#include "nn/serialization.h"

namespace attnlab::optim {

namespace {
constexpr const char* kVersionKey = "attnlab_training_state";
constexpr const char* kModelPrefix = "model.";
constexpr const char* kOptimPrefix = "optim.";

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}
}  // namespace

void save_training_state(const std::string& path, const nn::Module& model, const Optimizer& opt,
                         const Scheduler* sched, int64_t step, const Generator& rng,
                         const nlohmann::json& extra) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, t] : model.state_dict()) tensors.emplace_back(kModelPrefix + name, t);
  for (const auto& [name, t] : opt.state_dict()) tensors.emplace_back(kOptimPrefix + name, t);

  nlohmann::json rng_words = nlohmann::json::array();
  for (uint64_t w : rng.state()) rng_words.push_back(std::to_string(w));

  std::map<std::string, std::string> meta{
      {kVersionKey, std::to_string(kTrainingStateVersion)},
      {"step", std::to_string(step)},
      {"rng_state", rng_words.dump()},
      {"optimizer", opt.state_meta().dump()},
      {"extra", extra.dump()},
  };
  if (sched) meta["scheduler"] = sched->state().dump();
  nn::save_tensors(path, tensors, meta);
}

TrainingState load_training_state(const std::string& path, nn::Module& model, Optimizer& opt,
                                  Scheduler* sched, Generator& rng) {
  const std::string who = "load_training_state(" + path + ")";
  const nn::LoadedTensors file = nn::load_tensors(path);
  const auto& meta = file.metadata;
  auto field = [&](const char* key) -> const std::string& {
    auto it = meta.find(key);
    ATTNLAB_CHECK(it != meta.end(), who, ": metadata key '", key, "' is missing");
    return it->second;
  };

  // 1. Metadata: everything parsed before anything is touched.
  ATTNLAB_CHECK(meta.count(kVersionKey), who, ": not a training-state checkpoint (no '",
                kVersionKey, "' metadata; a model-only file loads with nn::load_module)");
  TrainingState out;
  std::vector<uint64_t> rng_state;
  nlohmann::json optim_meta, sched_state;
  try {
    const int version = std::stoi(field(kVersionKey));
    ATTNLAB_CHECK(version <= kTrainingStateVersion, who, ": training-state version ", version,
                  " is newer than this build's ", kTrainingStateVersion);
    size_t used = 0;
    const std::string& step = field("step");
    out.step = std::stoll(step, &used);
    ATTNLAB_CHECK(used == step.size(), who, ": step '", step, "' is not an integer");
    for (const auto& w : nlohmann::json::parse(field("rng_state"))) {
      const std::string s = w.get<std::string>();
      rng_state.push_back(std::stoull(s, &used));
      ATTNLAB_CHECK(used == s.size() && !s.empty() && s[0] != '-', who, ": rng_state word '", s,
                    "' is not an unsigned integer");
    }
    ATTNLAB_CHECK(rng_state.size() == rng.state().size(), who, ": rng_state has ",
                  rng_state.size(), " words, the generator has ", rng.state().size());
    optim_meta = nlohmann::json::parse(field("optimizer"));
    out.extra = nlohmann::json::parse(field("extra"));
    if (sched) sched_state = nlohmann::json::parse(field("scheduler"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(who, ": corrupt metadata: ", e.what()));
  } catch (const std::logic_error& e) {  // std::stoi & co: invalid_argument, out_of_range
    throw Error(cat(who, ": corrupt metadata: ", e.what()));
  }

  // 2. Split the tensors by owner.
  nn::NamedTensorList model_sd;
  std::vector<std::pair<std::string, Tensor>> optim_sd;
  for (const auto& [name, t] : file.tensors) {
    if (starts_with(name, kModelPrefix)) model_sd.emplace_back(name.substr(std::string(kModelPrefix).size()), t);
    else if (starts_with(name, kOptimPrefix)) optim_sd.emplace_back(name.substr(std::string(kOptimPrefix).size()), t);
    else throw Error(cat(who, ": unexpected tensor '", name, "' (expected model.* or optim.*)"));
  }

  // 3. Check the model's names and shapes up front, so the common mistake (a different model)
  //    fails before anything changes. load_state_dict checks again, with dtypes.
  {
    std::map<std::string, Shape> want;
    for (const auto& [name, t] : model.state_dict()) want[name] = t.shape();
    std::set<std::string> have;
    for (const auto& [name, t] : model_sd) {
      have.insert(name);
      auto it = want.find(name);
      ATTNLAB_CHECK(it != want.end(), who, ": the checkpoint's model tensor '", name,
                    "' is not in the model");
      ATTNLAB_CHECK(it->second == t.shape(), who, ": model tensor '", name, "' is ",
                    shape_str(t.shape()), " in the checkpoint but ", shape_str(it->second),
                    " in the model");
    }
    for (const auto& [name, s] : want)
      ATTNLAB_CHECK(have.count(name), who, ": the model's '", name,
                    "' is missing from the checkpoint");
  }

  // 4. Apply: the optimizer validates everything before it changes anything, so it goes first.
  try {
    opt.load_state(optim_sd, optim_meta);
    model.load_state_dict(model_sd, /*strict=*/true);
    if (sched) sched->load_state(sched_state);
    rng.set_state(rng_state);
  } catch (const Error& e) {
    throw Error(cat(who, ": ", e.what()));
  }
  return out;
}

}  // namespace attnlab::optim
