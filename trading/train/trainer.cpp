#include "trading/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>

#include "autograd/functions.h"
#include "kernels/error.h"
#include "nn/optim/adamw.h"
#include "nn/optim/clip_grad.h"
#include "nn/optim/schedule.h"
#include "nn/serialization.h"
#include "trading/report/files.h"
#include "trading/report/plot.h"
#include "trading/train/progress.h"

namespace attnlab::trading {

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
}

nlohmann::json TrainConfig::to_json() const {
  return {{"lookback", lookback}, {"horizon", horizon},     {"epochs", epochs},
          {"batch_size", batch_size}, {"lr", lr},           {"weight_decay", weight_decay},
          {"clip_norm", clip_norm}, {"patience", patience}, {"seed", seed},
          {"train_frac", train_frac}, {"val_frac", val_frac}, {"causal", causal}, {"max_steps", max_steps}};
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  ATTNLAB_CHECK(j.is_object(), "TrainConfig: expected a JSON object");
  TrainConfig c;
  try {
    if (j.contains("lookback")) c.lookback = j.at("lookback").get<size_t>();
    if (j.contains("horizon")) c.horizon = j.at("horizon").get<size_t>();
    if (j.contains("epochs")) c.epochs = j.at("epochs").get<int>();
    if (j.contains("batch_size")) c.batch_size = j.at("batch_size").get<size_t>();
    if (j.contains("lr")) c.lr = j.at("lr").get<double>();
    if (j.contains("weight_decay")) c.weight_decay = j.at("weight_decay").get<double>();
    if (j.contains("clip_norm")) c.clip_norm = j.at("clip_norm").get<double>();
    if (j.contains("patience")) c.patience = j.at("patience").get<int>();
    if (j.contains("seed")) c.seed = j.at("seed").get<uint64_t>();
    if (j.contains("train_frac")) c.train_frac = j.at("train_frac").get<double>();
    if (j.contains("val_frac")) c.val_frac = j.at("val_frac").get<double>();
    if (j.contains("causal")) c.causal = j.at("causal").get<bool>();
    if (j.contains("max_steps")) c.max_steps = j.at("max_steps").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("TrainConfig: bad JSON value: ") + e.what());
  }
  return c;
}

// ---- dataset ----------------------------------------------------------------------------------------

TraderDataset make_dataset(data::FeatureSet fs, const std::vector<double>& close, size_t lookback, size_t horizon,
                           double train_frac, double val_frac, bool scale_targets) {
  ATTNLAB_CHECK(close.size() == fs.rows(), "make_dataset: ", close.size(), " close prices for ", fs.rows(),
                " feature rows");
  ATTNLAB_CHECK(lookback > 0 && horizon > 0, "make_dataset: lookback and horizon must be > 0");
  TraderDataset ds;
  ds.lookback = lookback;
  ds.horizon = horizon;
  ds.log_ret = data::log_returns(close);
  ds.targets = data::forward_return_targets(ds.log_ret, horizon);
  ds.samples = data::sample_indices(fs.rows(), fs.first_valid, lookback, horizon);
  ATTNLAB_CHECK(!ds.samples.empty(), "make_dataset: no samples (", fs.rows(), " rows, first valid row ",
                fs.first_valid, ", lookback ", lookback, ", horizon ", horizon, ")");
  ds.split = data::chronological_split(ds.samples, horizon, train_frac, val_frac);
  ATTNLAB_CHECK(!ds.split.train.empty() && !ds.split.val.empty() && !ds.split.test.empty(),
                "make_dataset: a split is empty (train ", ds.split.train.size(), ", val ", ds.split.val.size(),
                ", test ", ds.split.test.size(), " samples); use more data or a shorter lookback");
  if (scale_targets) {
    double m = 0, ss = 0;
    for (size_t t : ds.split.train) m += ds.targets[t];
    m /= double(ds.split.train.size());
    for (size_t t : ds.split.train) ss += (ds.targets[t] - m) * (ds.targets[t] - m);
    const double sd = std::sqrt(ss / double(ds.split.train.size()));
    ds.target_std = sd > 0 && std::isfinite(sd) ? sd : 1.0;
  }
  const auto [r0, r1] = data::window_rows(ds.split.train, lookback);
  ds.normalizer.fit(fs, r0, r1);
  ds.normalizer.transform(fs);
  ds.features = std::move(fs);
  return ds;
}

Tensor TraderDataset::windows(const std::vector<size_t>& idx) const {
  const std::vector<double> w = data::gather_windows(features, idx, lookback);
  return from_vector(w, {int64_t(idx.size()), int64_t(lookback), int64_t(features.cols())});
}

Tensor TraderDataset::target_tensor(const std::vector<size_t>& idx) const {
  std::vector<double> y(idx.size());
  for (size_t i = 0; i < idx.size(); ++i) y[i] = targets[idx[i]] / target_std;
  return from_vector(y, {int64_t(idx.size()), 1});
}

// ---- evaluation -------------------------------------------------------------------------------------

std::vector<double> predict_samples(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx,
                                    size_t batch_size, bool causal) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  std::vector<double> out;
  out.reserve(idx.size());
  for (const auto& b : data::make_batches(idx, batch_size)) {
    const Tensor p = model.forward(ds.windows(b), causal).pred;
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
  for (const auto& b : data::make_batches(idx, batch_size)) {
    const Tensor p = model.forward(ds.windows(b), causal).pred;
    total += model.compute_loss(p, ds.target_tensor(b)).item<double>() * double(b.size());
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
          {"metrics", metrics}};
}

// ---- training ---------------------------------------------------------------------------------------

namespace {

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

}  // namespace

TrainResult train_trader(GQATrader& model, const TraderDataset& ds, const TrainConfig& cfg) {
  cfg.validate();
  ATTNLAB_CHECK(cfg.lookback == ds.lookback && cfg.horizon == ds.horizon, "train_trader: the dataset was built "
                "with lookback ", ds.lookback, "/horizon ", ds.horizon, ", the config says ", cfg.lookback, "/",
                cfg.horizon);
  ATTNLAB_CHECK(int64_t(ds.lookback) <= model.config.max_seq_len, "train_trader: lookback ", ds.lookback,
                " exceeds the model's max_seq_len ", model.config.max_seq_len);
  ATTNLAB_CHECK(ds.n_features() == size_t(model.config.input_dim), "train_trader: dataset has ", ds.n_features(),
                " features, the model expects ", model.config.input_dim);
  namespace fs = std::filesystem;
  using Clock = std::chrono::steady_clock;
  const auto t_start = Clock::now();

  const std::vector<Tensor> params = model.parameters();
  optim::AdamW opt(params, cfg.lr, {0.9, 0.999}, 1e-8, cfg.weight_decay);
  const int64_t batches_per_epoch = int64_t((ds.split.train.size() + cfg.batch_size - 1) / cfg.batch_size);
  int64_t total_steps = batches_per_epoch * cfg.epochs;
  if (cfg.max_steps > 0) total_steps = std::min(total_steps, cfg.max_steps);
  optim::CosineAnnealingLR sched(opt, std::max<int64_t>(total_steps, 1));

  if (!cfg.out_dir.empty()) fs::create_directories(cfg.out_dir);
  TrainResult res;
  res.best_val_loss = std::numeric_limits<double>::infinity();
  nn::NamedTensorList best;
  int since_best = 0;
  for (int epoch = 1; epoch <= cfg.epochs; ++epoch) {
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
      const Tensor pred = model.forward(ds.windows(b), cfg.causal).pred;
      const Tensor loss = model.compute_loss(pred, ds.target_tensor(b));
      const double lv = loss.item<double>();
      ATTNLAB_CHECK(std::isfinite(lv), "train_trader: non-finite loss at epoch ", epoch, " step ", res.steps);
      backward(loss);
      const double gn = optim::clip_grad_norm_(params, cfg.clip_norm);
      if (std::isfinite(gn)) opt.step();
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
      if (!cfg.out_dir.empty()) {
        res.checkpoint = (fs::path(cfg.out_dir) / "model.safetensors").string();
        const nlohmann::json metrics{{"best_epoch", epoch}, {"val_loss", rec.val_loss}, {"train_loss", rec.train_loss},
                                     {"steps", res.steps}};
        nn::save_module(res.checkpoint, model, checkpoint_config(model, ds, cfg, metrics));
      }
    } else if (cfg.patience > 0 && ++since_best >= cfg.patience) {
      res.early_stopped = true;
      if (cfg.progress) std::fprintf(stderr, "early stopping: no val improvement in %d epochs\n", cfg.patience);
      break;
    }
    if (cfg.max_steps > 0 && res.steps >= cfg.max_steps) break;
  }
  if (!best.empty()) model.load_state_dict(best);
  model.eval();
  res.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();

  if (!cfg.out_dir.empty() && !res.history.empty()) {
    std::ostringstream csv;
    csv << "epoch,train_loss,val_loss,lr,seconds\n";
    csv.precision(10);
    std::vector<double> x, tr, va;
    for (const auto& r : res.history) {
      csv << r.epoch << "," << r.train_loss << "," << r.val_loss << "," << r.lr << "," << r.seconds << "\n";
      x.push_back(r.epoch);
      tr.push_back(r.train_loss);
      va.push_back(r.val_loss);
    }
    report::write_file_atomic(fs::path(cfg.out_dir) / "history.csv", csv.str());
    report::PlotOptions po;
    po.title = "GQATrader loss";
    po.xlabel = "epoch";
    po.ylabel = "loss";
    report::line_plot(cfg.out_dir, "loss_curve", x, {{"train", tr}, {"val", va}}, po);
  }
  return res;
}

}  // namespace attnlab::trading
