#include "trading/train/train_state.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include "kernels/error.h"
#include "nn/attention/gqa.h"
#include "nn/layers/dropout.h"
#include "nn/optim/checkpoint.h"
#include "nn/serialization.h"
#include "tensor/creation.h"
#include "trading/report/files.h"
#include "trading/report/plot.h"

namespace attnlab::trading {

namespace {

namespace fs = std::filesystem;

constexpr const char* kStateFormat = "attnlab.trader_train_state";
constexpr int kStateVersion = 1;

// Every generator the model draws from in training, in module order: each Dropout's and each
// attention layer's dropout generator. Their states go into the training state.
std::vector<Generator*> dropout_generators(GQATrader& model) {
  std::vector<Generator*> out;
  for (auto& [name, m] : model.named_modules()) {
    if (auto* d = dynamic_cast<nn::Dropout*>(m)) out.push_back(&d->gen);
    if (auto* a = dynamic_cast<nn::GroupedQueryAttention*>(m)) out.push_back(&a->dropout_generator());
  }
  return out;
}

// u64 words as decimal strings (a json number is a double and would round them).
nlohmann::json generator_states(const std::vector<Generator*>& gens) {
  nlohmann::json out = nlohmann::json::array();
  for (const Generator* g : gens) {
    nlohmann::json words = nlohmann::json::array();
    for (uint64_t w : g->state()) words.push_back(std::to_string(w));
    out.push_back(words);
  }
  return out;
}

void set_generator_states(const std::vector<Generator*>& gens, const nlohmann::json& states) {
  ATTNLAB_CHECK(states.is_array() && states.size() == gens.size(), "the state holds ", states.size(),
                " dropout generators, the model has ", gens.size());
  for (size_t i = 0; i < gens.size(); ++i) {
    std::vector<uint64_t> words;
    for (const auto& w : states[i]) words.push_back(std::stoull(w.get<std::string>()));
    gens[i]->set_state(words);
  }
}

nlohmann::json history_json(const std::vector<EpochRecord>& h) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : h)
    out.push_back({{"epoch", r.epoch}, {"train_loss", r.train_loss}, {"val_loss", r.val_loss}, {"lr", r.lr},
                   {"seconds", r.seconds}});
  return out;
}

std::vector<EpochRecord> history_from_json(const nlohmann::json& j) {
  std::vector<EpochRecord> out;
  for (const auto& r : j) {
    EpochRecord e;
    e.epoch = r.at("epoch").get<int>();
    e.train_loss = r.at("train_loss").get<double>();
    e.val_loss = r.at("val_loss").get<double>();
    e.lr = r.at("lr").get<double>();
    e.seconds = r.at("seconds").get<double>();
    out.push_back(e);
  }
  return out;
}

// A json diff of two flat objects: "key: saved -> given" for every key that differs.
std::string json_diff(const nlohmann::json& saved, const nlohmann::json& given) {
  std::string out;
  for (const auto& [key, v] : given.items())
    if (!saved.contains(key) || saved.at(key) != v)
      out += (out.empty() ? "" : "; ") + key + ": " + (saved.contains(key) ? saved.at(key).dump() : "absent") +
             " -> " + v.dump();
  return out;
}

// A finite double, or null (json has no infinity).
nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

}  // namespace

void save_train_state(const std::string& path, const TrainingObjects& run, const TrainProgress& p,
                      const TraderDataset& ds, const TrainConfig& cfg) {
  nlohmann::json extra{{"format", kStateFormat}, {"version", kStateVersion},
                       {"epoch", p.epoch}, {"finished", p.finished}, {"early_stopped", p.early_stopped},
                       {"best_epoch", p.best_epoch}, {"best_val_loss", finite_or_null(p.best_val_loss)},
                       {"initial_val_loss", finite_or_null(p.initial_val_loss)},
                       {"since_best", p.since_best}, {"history", history_json(p.history)}, {"seconds", p.seconds},
                       {"dropout_generators", generator_states(dropout_generators(run.model))},
                       {"model", run.model.config.to_json()}, {"train", cfg.to_json()}, {"data", data_info(ds)},
                       {"run_info", cfg.run_info}};
  if (run.scaler.enabled()) extra["grad_scaler"] = run.scaler.state();
  optim::save_training_state(path, run.model, run.opt, &run.sched, p.steps, default_generator(), extra);
}

TrainProgress load_train_state(const std::string& path, const TrainingObjects& run, const TraderDataset& ds,
                               const TrainConfig& cfg) {
  const nlohmann::json info = read_train_state_info(path);
  const std::string who = "train_trader: resume from " + path;
  const nlohmann::json model_json = run.model.config.to_json();
  ATTNLAB_CHECK(info.at("model") == model_json, who, ": the model config differs from the saved run's (",
                json_diff(info.at("model"), model_json), ")");
  ATTNLAB_CHECK(info.at("train") == cfg.to_json(), who, ": the training config differs from the saved run's (",
                json_diff(info.at("train"), cfg.to_json()), "); a resumed run keeps its settings");
  const nlohmann::json have = data_info(ds), saved = info.at("data");
  ATTNLAB_CHECK(saved.at("fingerprint") == have.at("fingerprint"), who, ": the data differ from the saved run's "
                "(saved: ", saved.dump(), "; now: ", have.dump(), ")");
  const optim::TrainingState st = optim::load_training_state(path, run.model, run.opt, &run.sched, default_generator());
  TrainProgress p;
  try {
    set_generator_states(dropout_generators(run.model), info.at("dropout_generators"));
    if (run.scaler.enabled()) run.scaler.load_state(info.at("grad_scaler"));
    p.steps = st.step;
    p.history = history_from_json(info.at("history"));
    p.best_epoch = info.at("best_epoch").get<int>();
    if (!info.at("best_val_loss").is_null()) p.best_val_loss = info.at("best_val_loss").get<double>();
    if (!info.at("initial_val_loss").is_null()) p.initial_val_loss = info.at("initial_val_loss").get<double>();
    p.since_best = info.at("since_best").get<int>();
    p.early_stopped = info.at("early_stopped").get<bool>();
    p.finished = info.at("finished").get<bool>();
    p.seconds = info.at("seconds").get<double>();
    p.epoch = info.at("epoch").get<int>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(who, ": corrupt training-state metadata: ", e.what()));
  } catch (const std::logic_error& e) {  // std::stoull
    throw Error(cat(who, ": corrupt training-state metadata: ", e.what()));
  }
  return p;
}

std::string train_state_path(const std::string& path_or_dir) {
  return fs::is_directory(path_or_dir) ? (fs::path(path_or_dir) / kTrainStateFile).string() : path_or_dir;
}

nlohmann::json read_train_state_info(const std::string& path_or_dir) {
  const std::string path = train_state_path(path_or_dir);
  ATTNLAB_CHECK(fs::exists(path), path, ": no training state to resume (`attnlab train --out DIR` writes ",
                kTrainStateFile, " after every epoch)");
  const nn::LoadedTensors file = nn::load_tensors(path);
  const auto it = file.metadata.find("extra");
  nlohmann::json info;
  try {
    if (it != file.metadata.end()) info = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(path, ": corrupt training-state metadata: ", e.what()));
  }
  ATTNLAB_CHECK(info.is_object() && info.value("format", std::string()) == kStateFormat, path,
                ": not a GQATrader training state (no ", kStateFormat, " metadata)");
  ATTNLAB_CHECK(info.value("version", 0) == kStateVersion, path, ": training-state version ",
                info.value("version", 0), " is not supported (expected ", kStateVersion, ")");
  try {
    move_legacy_causal(info.at("model"), info.at("train"));
  } catch (const std::exception& e) {
    throw Error(cat(path, ": bad training-state metadata: ", e.what()));
  }
  return info;
}

BestWeights load_best_weights(const std::string& state_path, int best_epoch, const std::string& out_dir) {
  const std::string who = "train_trader: resume from " + state_path;
  const std::string best_path = (fs::path(state_path).parent_path() / kModelFile).string();
  ATTNLAB_CHECK(fs::exists(best_path), who, ": ", best_path, " (the best weights, epoch ", best_epoch,
                ") is missing");
  const nlohmann::json bm = nn::read_module_config(best_path);
  const int file_epoch = bm.is_object() && bm.contains("metrics") ? bm.at("metrics").value("best_epoch", -1) : -1;
  ATTNLAB_CHECK(file_epoch == best_epoch, who, ": ", best_path, " holds epoch ", file_epoch,
                ", the state says the best epoch is ", best_epoch);
  BestWeights out;
  out.weights = nn::load_tensors(best_path).tensors;
  if (!out_dir.empty()) {
    out.checkpoint = (fs::path(out_dir) / kModelFile).string();
    if (!fs::exists(out.checkpoint) || !fs::equivalent(out.checkpoint, best_path)) {
      const std::string tmp = out.checkpoint + ".tmp";
      fs::copy_file(best_path, tmp, fs::copy_options::overwrite_existing);
      fs::rename(tmp, out.checkpoint);
    }
  }
  return out;
}

nlohmann::json checkpoint_config(const GQATrader& model, const TraderDataset& ds, const TrainConfig& cfg,
                                 const nlohmann::json& metrics) {
  return {{"format", "attnlab.gqa_trader"}, {"version", 1},
          {"model", model.config.to_json()}, {"train", cfg.to_json()},
          {"normalizer", ds.normalizer.to_json()}, {"target_std", ds.target_std}, {"features", ds.features.names},
          {"data", data_info(ds)}, {"metrics", metrics}};
}

void write_history_csv(const std::string& dir, const std::vector<EpochRecord>& history) {
  std::ostringstream csv;
  csv << "epoch,train_loss,val_loss,lr,seconds\n";
  csv.precision(10);
  for (const auto& r : history)
    csv << r.epoch << "," << r.train_loss << "," << r.val_loss << "," << r.lr << "," << r.seconds << "\n";
  report::write_file_atomic(fs::path(dir) / "history.csv", csv.str());
}

void plot_history(const std::string& dir, const std::vector<EpochRecord>& history) {
  std::vector<double> x, tr, va;
  for (const auto& r : history) {
    x.push_back(r.epoch);
    tr.push_back(r.train_loss);
    va.push_back(r.val_loss);
  }
  report::PlotOptions po;
  po.title = "GQATrader loss";
  po.xlabel = "epoch";
  po.ylabel = "loss";
  report::line_plot(dir, "loss_curve", x, {{"train", tr}, {"val", va}}, po);
}

}  // namespace attnlab::trading
