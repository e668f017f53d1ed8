#include "trading/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "autograd/autocast.h"
#include "autograd/functions.h"
#include "kernels/error.h"
#include "nn/optim/clip_grad.h"
#include "nn/serialization.h"
#include "tensor/ops.h"
#include "trading/train/evaluate.h"
#include "trading/train/progress.h"
#include "trading/train/stream_objective.h"

namespace attnlab::trading {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

void check_run(const GQATrader& model, const TraderDataset& ds, const TrainConfig& cfg) {
  cfg.validate();
  ATTNLAB_CHECK(cfg.lookback == ds.lookback && cfg.horizon == ds.horizon, "train_trader: the dataset was built "
                "with lookback ", ds.lookback, "/horizon ", ds.horizon, ", the config says ", cfg.lookback, "/",
                cfg.horizon);
  ATTNLAB_CHECK(int64_t(ds.lookback) <= model.config.max_seq_len, "train_trader: lookback ", ds.lookback,
                " exceeds the model's max_seq_len ", model.config.max_seq_len);
  ATTNLAB_CHECK(ds.n_features() == size_t(model.config.input_dim), "train_trader: dataset has ", ds.n_features(),
                " features, the model expects ", model.config.input_dim);
  if (cfg.objective != "stream") return;
  ATTNLAB_CHECK(model.config.window > 0 && model.config.causal, "train_trader: the stream objective trains a causal ",
                "sliding-window model (model window ", model.config.window, ", causal ", model.config.causal,
                "); set a window (--window W) and causal");
  ATTNLAB_CHECK(int64_t(ds.lookback) >= model.config.receptive_field(), "train_trader: lookback ", ds.lookback,
                " must cover the model's receptive field n_layers * (window - 1) + 1 = ", model.config.receptive_field(),
                " (each segment's warm-up is lookback - 1 rows)");
  ATTNLAB_CHECK(max_stream_segments(ds.split.train, cfg.stream_targets) > 0, "train_trader: no run of ",
                cfg.stream_targets, " consecutive training samples for a stream segment (stream_targets)");
}

// The schedule's length: every epoch's batches (the stream objective: its most segments), cut at max_steps.
int64_t total_steps(const TraderDataset& ds, const TrainConfig& cfg) {
  const size_t per = segments_per_batch(cfg.batch_size, cfg.stream_targets);
  const int64_t batches_per_epoch =
      cfg.objective == "stream" ? int64_t((max_stream_segments(ds.split.train, cfg.stream_targets) + per - 1) / per)
                                : int64_t((ds.split.train.size() + cfg.batch_size - 1) / cfg.batch_size);
  const int64_t all = batches_per_epoch * cfg.epochs;
  return std::max<int64_t>(cfg.max_steps > 0 ? std::min(all, cfg.max_steps) : all, 1);
}

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

struct EpochLoss {
  double sum = 0;  // sum of batch loss x targets in the batch
  size_t seen = 0;  // targets; 0 when max_steps was reached before the epoch began
};

// One epoch's batches: of shuffled samples (window objective) or of shuffled segments (stream objective).
struct EpochBatches {
  std::vector<std::vector<size_t>> samples;
  std::vector<std::vector<Segment>> segments;
  size_t size() const { return samples.size() + segments.size(); }
};

EpochBatches epoch_batches(const TraderDataset& ds, const TrainConfig& cfg, uint64_t seed) {
  EpochBatches b;
  if (cfg.objective != "stream") {
    b.samples = data::make_batches(data::shuffled(ds.split.train, seed), cfg.batch_size);
    return b;
  }
  const std::vector<Segment> segs = stream_segments(ds.split.train, cfg.stream_targets, seed);
  const size_t per = segments_per_batch(cfg.batch_size, cfg.stream_targets);
  for (size_t i = 0; i < segs.size(); i += per)
    b.segments.emplace_back(segs.begin() + long(i), segs.begin() + long(std::min(segs.size(), i + per)));
  return b;
}

// One pass over the epoch's batches: forward and loss (under autocast), backward, unscale (f16), clip,
// step, schedule. Counts the optimizer steps in `steps`.
EpochLoss train_epoch(const TrainingObjects& run, const std::vector<Tensor>& params, const TraderDataset& ds,
                      const TrainConfig& cfg, DType precision, int epoch, int64_t& steps) {
  run.model.train();
  const EpochBatches batches = epoch_batches(ds, cfg, cfg.seed * 1000003ULL + uint64_t(epoch));
  ProgressBar bar("epoch " + std::to_string(epoch) + "/" + std::to_string(cfg.epochs), int64_t(batches.size()),
                  cfg.progress);
  EpochLoss l;
  int64_t done = 0;
  for (size_t bi = 0; bi < batches.size(); ++bi) {
    if (cfg.max_steps > 0 && steps >= cfg.max_steps) break;
    run.opt.zero_grad();
    Tensor loss;
    size_t targets = 0;
    {
      // f32: autocast off. bf16/f16: low-precision matmuls and attention, an f32 loss.
      autocast::AutocastGuard ac(precision);
      if (!batches.segments.empty()) {
        loss = stream_batch_loss(run.model, ds, batches.segments[bi], cfg.device);
        for (const Segment& s : batches.segments[bi]) targets += s.targets;
      } else {
        const std::vector<size_t>& b = batches.samples[bi];
        const Tensor pred = run.model.forward(ops::to_device(ds.windows(b), cfg.device)).pred;
        loss = run.model.compute_loss(pred, ops::to_device(ds.target_tensor(b), cfg.device));
        targets = b.size();
      }
    }
    const double lv = loss.item<double>();
    ATTNLAB_CHECK(std::isfinite(lv), "train_trader: non-finite loss at epoch ", epoch, " step ", steps);
    backward(run.scaler.scale(loss));
    run.scaler.unscale_(params);  // true gradients before clipping (no-op unless f16)
    const double gn = optim::clip_grad_norm_(params, cfg.clip_norm);
    if (run.scaler.enabled()) {
      run.scaler.step(run.opt);  // skipped when a gradient overflowed; the scale then halves
      run.scaler.update();
    } else if (std::isfinite(gn)) {
      run.opt.step();
    }
    run.sched.step();
    ++steps;
    l.sum += lv * double(targets);
    l.seen += targets;
    bar.update(++done, int64_t(targets), "loss " + fmt("%.6g", l.sum / double(l.seen)));
  }
  bar.finish();
  return l;
}

// The best weights so far into out_dir/model.safetensors (nothing without out_dir).
void save_best(TrainResult& res, const GQATrader& model, const TraderDataset& ds, const TrainConfig& cfg, int epoch,
               double val_loss, double train_loss) {
  if (cfg.out_dir.empty()) return;
  res.checkpoint = (fs::path(cfg.out_dir) / kModelFile).string();
  const nlohmann::json metrics{{"best_epoch", epoch}, {"val_loss", val_loss}, {"train_loss", train_loss},
                               {"steps", res.steps}};
  nn::save_module(res.checkpoint, model, checkpoint_config(model, ds, cfg, metrics));
}

// Continues the run saved in cfg.resume_from: its progress into res, its best weights into best.
void resume(TrainResult& res, nn::NamedTensorList& best, const TrainingObjects& run, const TraderDataset& ds,
            const TrainConfig& cfg) {
  const std::string path = train_state_path(cfg.resume_from);
  static_cast<TrainProgress&>(res) = load_train_state(path, run, ds, cfg);
  if (res.best_epoch > 0 || std::isfinite(res.best_val_loss)) {
    BestWeights b = load_best_weights(path, res.best_epoch, cfg.out_dir);
    best = std::move(b.weights);
    res.checkpoint = b.checkpoint;
  }
  res.start_epoch = res.epoch + 1;
  if (cfg.progress)
    std::fprintf(stderr, "resumed %s: %d epochs done, step %lld, best epoch %d%s\n", path.c_str(), res.epoch,
                 (long long)res.steps, res.best_epoch, res.finished ? "; the run had already finished" : "");
}

}  // namespace

TrainResult train_trader(GQATrader& model, const TraderDataset& ds, const TrainConfig& cfg) {
  check_run(model, ds, cfg);
  const auto t_start = Clock::now();
  const DType precision = autocast::parse_precision(cfg.precision);
  model.to(cfg.device);  // before the optimizer, so its state is created on the same device
  const std::vector<Tensor> params = model.parameters();
  optim::AdamW opt(params, cfg.lr, {0.9, 0.999}, 1e-8, cfg.weight_decay);
  optim::GradScalerOptions scaler_opt;
  scaler_opt.enabled = precision == DType::f16;  // bf16 has f32's range: no scaling
  optim::GradScaler scaler(scaler_opt);
  optim::CosineAnnealingLR sched(opt, total_steps(ds, cfg));
  const TrainingObjects run{model, opt, sched, scaler};
  if (!cfg.out_dir.empty()) fs::create_directories(cfg.out_dir);

  TrainResult res;
  nn::NamedTensorList best;  // the best weights so far
  if (!cfg.resume_from.empty()) {
    resume(res, best, run, ds, cfg);
  } else if (cfg.start_as_best) {
    res.initial_val_loss = evaluate_loss(model, ds, ds.split.val);
    res.best_val_loss = res.initial_val_loss;
    best = snapshot(model);
    save_best(res, model, ds, cfg, 0, res.initial_val_loss, std::numeric_limits<double>::quiet_NaN());
    if (cfg.progress) std::fprintf(stderr, "epoch 0 (starting weights): val_loss %.6g\n", res.initial_val_loss);
  }
  const double seconds_before = res.seconds;  // training time of the epochs run before a resume
  auto elapsed = [&] { return seconds_before + std::chrono::duration<double>(Clock::now() - t_start).count(); };

  for (int epoch = res.epoch + 1; epoch <= cfg.epochs && !res.finished; ++epoch) {
    const auto t_epoch = Clock::now();
    const EpochLoss l = train_epoch(run, params, ds, cfg, precision, epoch, res.steps);
    if (l.seen == 0) break;  // max_steps reached
    EpochRecord rec{epoch, l.sum / double(l.seen), evaluate_loss(model, ds, ds.split.val), opt.lr(), 0.0};
    rec.seconds = std::chrono::duration<double>(Clock::now() - t_epoch).count();
    res.history.push_back(rec);
    const bool improved = rec.val_loss < res.best_val_loss;
    if (cfg.progress)
      std::fprintf(stderr, "epoch %d: train_loss %.6g  val_loss %.6g  lr %.3g  %.1fs%s\n", epoch, rec.train_loss,
                   rec.val_loss, rec.lr, rec.seconds, improved ? "  (best)" : "");
    if (improved) {
      res.best_val_loss = rec.val_loss;
      res.best_epoch = epoch;
      res.since_best = 0;
      best = snapshot(model);
      save_best(res, model, ds, cfg, epoch, rec.val_loss, rec.train_loss);
    } else if (cfg.patience > 0 && ++res.since_best >= cfg.patience) {
      res.early_stopped = true;
      if (cfg.progress) std::fprintf(stderr, "early stopping: no val improvement in %d epochs\n", cfg.patience);
    }
    res.epoch = epoch;
    res.finished = res.early_stopped || epoch == cfg.epochs || (cfg.max_steps > 0 && res.steps >= cfg.max_steps);
    res.seconds = elapsed();
    if (!cfg.out_dir.empty()) {  // after the best checkpoint, so a state never points at a best file not yet written
      res.state = (fs::path(cfg.out_dir) / kTrainStateFile).string();
      save_train_state(res.state, run, res, ds, cfg);
      write_history_csv(cfg.out_dir, res.history);
    }
    if (!res.finished && cfg.stop_after_epoch > 0 && epoch >= cfg.stop_after_epoch) {
      res.interrupted = true;
      if (cfg.progress)
        std::fprintf(stderr, "stopped after epoch %d (--stop-after-epoch); continue with --resume %s\n", epoch,
                     cfg.out_dir.empty() ? "DIR" : cfg.out_dir.c_str());
      break;
    }
  }
  if (!best.empty()) model.load_state_dict(best);
  model.eval();
  res.seconds = elapsed();
  if (!cfg.out_dir.empty() && !res.history.empty()) {
    write_history_csv(cfg.out_dir, res.history);
    plot_history(cfg.out_dir, res.history);
  }
  return res;
}

}  // namespace attnlab::trading
