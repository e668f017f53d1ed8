#include "trading/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>
#include <type_traits>

#include "autograd/autocast.h"
#include "autograd/functions.h"
#include "kernels/error.h"
#include "nn/attention/gqa.h"
#include "nn/layers/dropout.h"
#include "nn/optim/adamw.h"
#include "nn/optim/checkpoint.h"
#include "nn/optim/clip_grad.h"
#include "nn/optim/grad_scaler.h"
#include "nn/optim/schedule.h"
#include "nn/serialization.h"
#include "tensor/creation.h"
#include "tensor/ops.h"
#include "trading/report/files.h"
#include "trading/report/plot.h"
#include "trading/train/progress.h"

namespace attnlab::trading {

namespace {

std::string known_keys(const nlohmann::json& j) {
  std::string out;
  for (const auto& [key, value] : j.items()) out += (out.empty() ? "" : ", ") + key;
  return out;
}

}  // namespace

void TrainConfig::validate() const {
  ATTNLAB_CHECK(lookback > 0, "train: lookback must be > 0");
  ATTNLAB_CHECK(horizon > 0, "train: horizon must be > 0");
  ATTNLAB_CHECK(epochs > 0, "train: epochs must be > 0, got ", epochs);
  ATTNLAB_CHECK(batch_size > 0, "train: batch_size must be > 0");
  ATTNLAB_CHECK(lr > 0 && std::isfinite(lr), "train: lr must be > 0, got ", lr);
  ATTNLAB_CHECK(weight_decay >= 0, "train: weight_decay must be >= 0, got ", weight_decay);
  ATTNLAB_CHECK(clip_norm > 0, "train: clip_norm must be > 0, got ", clip_norm);
  ATTNLAB_CHECK(patience >= 0, "train: patience must be >= 0, got ", patience);
  ATTNLAB_CHECK(train_frac > 0 && val_frac > 0 && train_frac + val_frac < 1,
                "train: need train_frac > 0, val_frac > 0 and train_frac + val_frac < 1");
  autocast::parse_precision(precision);  // throws on an unknown name
}

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j{{"lookback", lookback}, {"horizon", horizon},     {"epochs", epochs},
                   {"batch_size", batch_size}, {"lr", lr},           {"weight_decay", weight_decay},
                   {"clip_norm", clip_norm}, {"patience", patience}, {"seed", seed},
                   {"train_frac", train_frac}, {"val_frac", val_frac}, {"causal", causal}, {"max_steps", max_steps}};
  if (precision != "f32") j["precision"] = precision;
  return j;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  ATTNLAB_CHECK(j.is_object(), "TrainConfig: expected a JSON object");
  TrainConfig c;
  nlohmann::json known = c.to_json();
  known["precision"] = c.precision;  // written only when not f32
  for (const auto& [key, value] : j.items())
    ATTNLAB_CHECK(known.contains(key), "TrainConfig: unknown key '", key, "' (known: ", known_keys(known), ")");
  auto get = [&j](const char* key, auto& var) {
    if (!j.contains(key)) return;
    using T = std::decay_t<decltype(var)>;
    const nlohmann::json& v = j.at(key);
    if constexpr (std::is_unsigned_v<T> && !std::is_same_v<T, bool>)
      ATTNLAB_CHECK(!v.is_number_integer() || v.get<int64_t>() >= 0 || v.is_number_unsigned(), "TrainConfig: '",
                    key, "' must be >= 0, got ", v.dump());
    try {
      var = v.get<T>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(cat("TrainConfig: bad value for '", key, "' (", v.dump(), "): ", e.what()));
    }
  };
  get("lookback", c.lookback);
  get("horizon", c.horizon);
  get("epochs", c.epochs);
  get("batch_size", c.batch_size);
  get("lr", c.lr);
  get("weight_decay", c.weight_decay);
  get("clip_norm", c.clip_norm);
  get("patience", c.patience);
  get("seed", c.seed);
  get("train_frac", c.train_frac);
  get("val_frac", c.val_frac);
  get("causal", c.causal);
  get("max_steps", c.max_steps);
  get("precision", c.precision);
  return c;
}

// ---- evaluation -------------------------------------------------------------------------------------

std::vector<double> predict_samples(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx,
                                    size_t batch_size, bool causal) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  std::vector<double> out;
  out.reserve(idx.size());
  const Device dev = model.device();
  for (const auto& b : data::make_batches(idx, batch_size)) {
    const Tensor p = model.forward(ops::to_device(ds.windows(b), dev), causal).pred;
    const auto v = select(p, 1, 0).to_vector<double>();
    out.insert(out.end(), v.begin(), v.end());
  }
  model.train(was_training);
  if (model.config.output_type == OutputType::regression)
    for (double& v : out) v *= ds.target_std;
  return out;
}

double evaluate_loss(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx, size_t batch_size,
                     bool causal) {
  ATTNLAB_CHECK(!idx.empty(), "evaluate_loss: no samples");
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  double total = 0;
  const Device dev = model.device();
  for (const auto& b : data::make_batches(idx, batch_size)) {
    const Tensor p = model.forward(ops::to_device(ds.windows(b), dev), causal).pred;
    total += model.compute_loss(p, ops::to_device(ds.target_tensor(b), dev)).item<double>() * double(b.size());
  }
  model.train(was_training);
  return total / double(idx.size());
}

EvalResult evaluate(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx, size_t batch_size,
                    bool causal) {
  ATTNLAB_CHECK(!idx.empty(), "evaluate: no samples");
  EvalResult r;
  r.n = idx.size();
  r.predictions = predict_samples(model, ds, idx, batch_size, causal);
  size_t hit = 0, up = 0, pers_hit = 0, pers_n = 0;
  double se = 0, zse = 0, pse = 0;
  for (size_t i = 0; i < idx.size(); ++i) {
    const size_t t = idx[i];
    const double y = ds.targets[t], p = r.predictions[i];
    se += (p - y) * (p - y);
    zse += y * y;
    hit += (p > 0) == (y > 0);
    up += y > 0;
    // persistence: the return over the last horizon bars, ln(close[t] / close[t-h])
    if (t >= ds.horizon) {
      double prev = 0;
      for (size_t k = t + 1 - ds.horizon; k <= t; ++k) prev += ds.log_ret[k];
      if (std::isfinite(prev)) {
        pse += (prev - y) * (prev - y);
        pers_hit += (prev > 0) == (y > 0);
        ++pers_n;
      }
    }
  }
  const double n = double(r.n);
  r.mse = se / n;
  r.zero_mse = zse / n;
  r.direction_accuracy = double(hit) / n;
  r.always_up_accuracy = double(up) / n;
  r.persistence_mse = pers_n ? pse / double(pers_n) : std::nan("");
  r.persistence_direction_accuracy = pers_n ? double(pers_hit) / double(pers_n) : std::nan("");
  return r;
}

nlohmann::json EvalResult::to_json() const {
  return {{"n", n},
          {"mse", mse},
          {"direction_accuracy", direction_accuracy},
          {"zero_mse", zero_mse},
          {"persistence_mse", persistence_mse},
          {"persistence_direction_accuracy", persistence_direction_accuracy},
          {"always_up_accuracy", always_up_accuracy}};
}

std::string EvalResult::table() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "  %-26s %14s %12s\n"
                "  %-26s %14.6e %11.2f%%\n"
                "  %-26s %14.6e %12s\n"
                "  %-26s %14.6e %11.2f%%\n"
                "  %-26s %14s %11.2f%%\n",
                ("forecast (n=" + std::to_string(n) + ")").c_str(),
                "MSE", "direction", "GQATrader", mse, 100 * direction_accuracy, "zero forecast", zero_mse, "-",
                "persistence (prev return)", persistence_mse, 100 * persistence_direction_accuracy, "always up", "-",
                100 * always_up_accuracy);
  return buf;
}

nlohmann::json checkpoint_config(const GQATrader& model, const TraderDataset& ds, const TrainConfig& cfg,
                                 const nlohmann::json& metrics) {
  return {{"format", "attnlab.gqa_trader"}, {"version", 1},
          {"model", model.config.to_json()}, {"train", cfg.to_json()},
          {"normalizer", ds.normalizer.to_json()}, {"target_std", ds.target_std}, {"features", ds.features.names},
          {"data", data_info(ds)}, {"metrics", metrics}};
}

// ---- training ---------------------------------------------------------------------------------------

namespace {

namespace fs = std::filesystem;

constexpr const char* kStateFormat = "attnlab.trader_train_state";
constexpr int kStateVersion = 1;

nn::NamedTensorList snapshot(const nn::Module& m) {
  NoGradGuard ng;
  nn::NamedTensorList out;
  for (const auto& [name, t] : m.state_dict()) out.emplace_back(name, clone(t.detach()));
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

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

}  // namespace


namespace {

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

}  // namespace

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
  return info;
}

TrainResult train_trader(GQATrader& model, const TraderDataset& ds, const TrainConfig& cfg) {
  cfg.validate();
  ATTNLAB_CHECK(cfg.lookback == ds.lookback && cfg.horizon == ds.horizon, "train_trader: the dataset was built "
                "with lookback ", ds.lookback, "/horizon ", ds.horizon, ", the config says ", cfg.lookback, "/",
                cfg.horizon);
  ATTNLAB_CHECK(int64_t(ds.lookback) <= model.config.max_seq_len, "train_trader: lookback ", ds.lookback,
                " exceeds the model's max_seq_len ", model.config.max_seq_len);
  ATTNLAB_CHECK(ds.n_features() == size_t(model.config.input_dim), "train_trader: dataset has ", ds.n_features(),
                " features, the model expects ", model.config.input_dim);
  using Clock = std::chrono::steady_clock;
  const auto t_start = Clock::now();

  const DType precision = autocast::parse_precision(cfg.precision);
  model.to(cfg.device);  // before the optimizer, so its state is created on the same device
  const std::vector<Tensor> params = model.parameters();
  optim::AdamW opt(params, cfg.lr, {0.9, 0.999}, 1e-8, cfg.weight_decay);
  optim::GradScalerOptions scaler_opt;
  scaler_opt.enabled = precision == DType::f16;  // bf16 has f32's range: no scaling
  optim::GradScaler scaler(scaler_opt);
  const int64_t batches_per_epoch = int64_t((ds.split.train.size() + cfg.batch_size - 1) / cfg.batch_size);
  int64_t total_steps = batches_per_epoch * cfg.epochs;
  if (cfg.max_steps > 0) total_steps = std::min(total_steps, cfg.max_steps);
  optim::CosineAnnealingLR sched(opt, std::max<int64_t>(total_steps, 1));
  const std::vector<Generator*> gens = dropout_generators(model);

  if (!cfg.out_dir.empty()) fs::create_directories(cfg.out_dir);
  TrainResult res;
  res.best_val_loss = std::numeric_limits<double>::infinity();
  res.initial_val_loss = std::numeric_limits<double>::quiet_NaN();
  nn::NamedTensorList best;
  int since_best = 0;
  bool finished = false;
  double seconds_before = 0;  // training time of the epochs run before a resume

  auto save_best = [&](int epoch, double val_loss, double train_loss) {
    if (cfg.out_dir.empty()) return;
    res.checkpoint = (fs::path(cfg.out_dir) / kModelFile).string();
    const nlohmann::json metrics{{"best_epoch", epoch}, {"val_loss", val_loss}, {"train_loss", train_loss},
                                 {"steps", res.steps}};
    nn::save_module(res.checkpoint, model, checkpoint_config(model, ds, cfg, metrics));
  };
  auto save_state = [&](int epoch) {
    if (cfg.out_dir.empty()) return;
    res.state = (fs::path(cfg.out_dir) / kTrainStateFile).string();
    const double elapsed = seconds_before + std::chrono::duration<double>(Clock::now() - t_start).count();
    nlohmann::json extra{
        {"format", kStateFormat}, {"version", kStateVersion},
        {"epoch", epoch}, {"finished", finished}, {"early_stopped", res.early_stopped},
        {"best_epoch", res.best_epoch},
        {"best_val_loss", std::isfinite(res.best_val_loss) ? nlohmann::json(res.best_val_loss) : nlohmann::json()},
        {"initial_val_loss",
         std::isfinite(res.initial_val_loss) ? nlohmann::json(res.initial_val_loss) : nlohmann::json()},
        {"since_best", since_best}, {"history", history_json(res.history)}, {"seconds", elapsed},
        {"dropout_generators", generator_states(gens)},
        {"model", model.config.to_json()}, {"train", cfg.to_json()}, {"data", data_info(ds)},
        {"run_info", cfg.run_info}};
    if (scaler.enabled()) extra["grad_scaler"] = scaler.state();
    optim::save_training_state(res.state, model, opt, &sched, res.steps, default_generator(), extra);
  };

  int start_epoch = 1;
  if (!cfg.resume_from.empty()) {
    const std::string path = train_state_path(cfg.resume_from);
    const nlohmann::json info = read_train_state_info(path);
    const std::string who = "train_trader: resume from " + path;
    ATTNLAB_CHECK(info.at("model") == model.config.to_json(), who, ": the model config differs from the saved "
                  "run's (", json_diff(info.at("model"), model.config.to_json()), ")");
    ATTNLAB_CHECK(info.at("train") == cfg.to_json(), who, ": the training config differs from the saved run's (",
                  json_diff(info.at("train"), cfg.to_json()), "); a resumed run keeps its settings");
    const nlohmann::json have = data_info(ds), saved = info.at("data");
    ATTNLAB_CHECK(saved.at("fingerprint") == have.at("fingerprint"), who, ": the data differ from the saved run's "
                  "(saved: ", saved.dump(), "; now: ", have.dump(), ")");
    const optim::TrainingState st = optim::load_training_state(path, model, opt, &sched, default_generator());
    try {
      set_generator_states(gens, info.at("dropout_generators"));
      if (scaler.enabled()) scaler.load_state(info.at("grad_scaler"));
      res.steps = st.step;
      res.history = history_from_json(info.at("history"));
      res.best_epoch = info.at("best_epoch").get<int>();
      if (!info.at("best_val_loss").is_null()) res.best_val_loss = info.at("best_val_loss").get<double>();
      if (!info.at("initial_val_loss").is_null()) res.initial_val_loss = info.at("initial_val_loss").get<double>();
      since_best = info.at("since_best").get<int>();
      res.early_stopped = info.at("early_stopped").get<bool>();
      finished = info.at("finished").get<bool>();
      seconds_before = info.at("seconds").get<double>();
      start_epoch = info.at("epoch").get<int>() + 1;
    } catch (const nlohmann::json::exception& e) {
      throw Error(cat(who, ": corrupt training-state metadata: ", e.what()));
    } catch (const std::logic_error& e) {  // std::stoull
      throw Error(cat(who, ": corrupt training-state metadata: ", e.what()));
    }
    if (res.best_epoch > 0 || std::isfinite(res.best_val_loss)) {
      // The best weights: the model.safetensors written beside the state when that epoch finished.
      const std::string best_path = (fs::path(path).parent_path() / kModelFile).string();
      ATTNLAB_CHECK(fs::exists(best_path), who, ": ", best_path, " (the best weights, epoch ", res.best_epoch,
                    ") is missing");
      const nlohmann::json bm = nn::read_module_config(best_path);
      const int file_epoch = bm.is_object() && bm.contains("metrics") ? bm.at("metrics").value("best_epoch", -1) : -1;
      ATTNLAB_CHECK(file_epoch == res.best_epoch, who, ": ", best_path, " holds epoch ", file_epoch,
                    ", the state says the best epoch is ", res.best_epoch);
      best = nn::load_tensors(best_path).tensors;
      if (!cfg.out_dir.empty()) {  // resuming into another directory: it starts with the same best file
        res.checkpoint = (fs::path(cfg.out_dir) / kModelFile).string();
        if (!fs::exists(res.checkpoint) || !fs::equivalent(res.checkpoint, best_path)) {
          const std::string tmp = res.checkpoint + ".tmp";
          fs::copy_file(best_path, tmp, fs::copy_options::overwrite_existing);
          fs::rename(tmp, res.checkpoint);
        }
      }
    }
    res.start_epoch = start_epoch;
    if (cfg.progress)
      std::fprintf(stderr, "resumed %s: %d epochs done, step %lld, best epoch %d%s\n", path.c_str(),
                   start_epoch - 1, (long long)res.steps, res.best_epoch,
                   finished ? "; the run had already finished" : "");
  } else if (cfg.start_as_best) {
    res.initial_val_loss = evaluate_loss(model, ds, ds.split.val, 256, cfg.causal);
    res.best_val_loss = res.initial_val_loss;
    best = snapshot(model);
    save_best(0, res.initial_val_loss, std::numeric_limits<double>::quiet_NaN());
    if (cfg.progress) std::fprintf(stderr, "epoch 0 (starting weights): val_loss %.6g\n", res.initial_val_loss);
  }

  for (int epoch = start_epoch; epoch <= cfg.epochs && !finished; ++epoch) {
    const auto t_epoch = Clock::now();
    model.train();
    const auto order = data::shuffled(ds.split.train, cfg.seed * 1000003ULL + uint64_t(epoch));
    const auto batches = data::make_batches(order, cfg.batch_size);
    ProgressBar bar("epoch " + std::to_string(epoch) + "/" + std::to_string(cfg.epochs), int64_t(batches.size()),
                    cfg.progress);
    double loss_sum = 0;
    size_t seen = 0;
    int64_t done = 0;
    for (const auto& b : batches) {
      if (cfg.max_steps > 0 && res.steps >= cfg.max_steps) break;
      opt.zero_grad();
      Tensor loss;
      {
        // f32: autocast off. bf16/f16: low-precision matmuls and attention, an f32 loss.
        autocast::AutocastGuard ac(precision);
        const Tensor pred = model.forward(ops::to_device(ds.windows(b), cfg.device), cfg.causal).pred;
        loss = model.compute_loss(pred, ops::to_device(ds.target_tensor(b), cfg.device));
      }
      const double lv = loss.item<double>();
      ATTNLAB_CHECK(std::isfinite(lv), "train_trader: non-finite loss at epoch ", epoch, " step ", res.steps);
      backward(scaler.scale(loss));
      scaler.unscale_(params);  // true gradients before clipping (no-op unless f16)
      const double gn = optim::clip_grad_norm_(params, cfg.clip_norm);
      if (scaler.enabled()) {
        scaler.step(opt);  // skipped when a gradient overflowed; the scale then halves
        scaler.update();
      } else if (std::isfinite(gn)) {
        opt.step();
      }
      sched.step();
      ++res.steps;
      loss_sum += lv * double(b.size());
      seen += b.size();
      bar.update(++done, int64_t(b.size()), "loss " + fmt("%.6g", loss_sum / double(seen)));
    }
    bar.finish();
    if (seen == 0) break;  // max_steps reached
    EpochRecord rec;
    rec.epoch = epoch;
    rec.train_loss = loss_sum / double(seen);
    rec.val_loss = evaluate_loss(model, ds, ds.split.val, 256, cfg.causal);
    rec.lr = opt.lr();
    rec.seconds = std::chrono::duration<double>(Clock::now() - t_epoch).count();
    res.history.push_back(rec);
    const bool improved = rec.val_loss < res.best_val_loss;
    if (cfg.progress)
      std::fprintf(stderr, "epoch %d: train_loss %.6g  val_loss %.6g  lr %.3g  %.1fs%s\n", epoch, rec.train_loss,
                   rec.val_loss, rec.lr, rec.seconds, improved ? "  (best)" : "");
    if (improved) {
      res.best_val_loss = rec.val_loss;
      res.best_epoch = epoch;
      best = snapshot(model);
      since_best = 0;
      save_best(epoch, rec.val_loss, rec.train_loss);
    } else if (cfg.patience > 0 && ++since_best >= cfg.patience) {
      res.early_stopped = true;
      if (cfg.progress) std::fprintf(stderr, "early stopping: no val improvement in %d epochs\n", cfg.patience);
    }
    finished = res.early_stopped || epoch == cfg.epochs || (cfg.max_steps > 0 && res.steps >= cfg.max_steps);
    save_state(epoch);  // after the best checkpoint, so a state never points at a best file not yet written
    if (!cfg.out_dir.empty()) write_history_csv(cfg.out_dir, res.history);
    if (!finished && cfg.stop_after_epoch > 0 && epoch >= cfg.stop_after_epoch) {
      res.interrupted = true;
      if (cfg.progress)
        std::fprintf(stderr, "stopped after epoch %d (--stop-after-epoch); continue with --resume %s\n", epoch,
                     cfg.out_dir.empty() ? "DIR" : cfg.out_dir.c_str());
      break;
    }
  }
  if (!best.empty()) model.load_state_dict(best);
  model.eval();
  res.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - t_start).count();
  if (!cfg.out_dir.empty() && !res.history.empty()) {
    write_history_csv(cfg.out_dir, res.history);
    plot_history(cfg.out_dir, res.history);
  }
  return res;
}

}  // namespace attnlab::trading
