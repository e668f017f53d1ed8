#include "trading/train/evaluate.h"

#include <cmath>
#include <cstdio>

#include "autograd/functions.h"
#include "kernels/error.h"
#include "tensor/ops.h"
#include "trading/report/report.h"
#include "trading/train/stream_objective.h"

namespace attnlab::trading {

std::vector<double> predict_samples(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx,
                                    size_t batch_size) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  std::vector<double> out;
  out.reserve(idx.size());
  const Device dev = model.device();
  if (sequence_predictions_exact(model, ds)) {
    out = predict_sequence(model, ds, idx);  // a windowed model: one pass per run of samples
  } else {
    for (const auto& b : data::make_batches(idx, batch_size)) {
      const Tensor p = model.forward(ops::to_device(ds.windows(b), dev)).pred;
      const auto v = select(p, 1, 0).to_vector<double>();
      out.insert(out.end(), v.begin(), v.end());
    }
  }
  model.train(was_training);
  if (model.config.output_type == OutputType::regression)
    for (double& v : out) v *= ds.target_std;
  return out;
}

double evaluate_loss(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx, size_t batch_size) {
  ATTNLAB_CHECK(!idx.empty(), "evaluate_loss: no samples");
  if (sequence_predictions_exact(model, ds) && model.config.n_outputs == 1) {  // one pass per run of samples
    const bool was_training = model.is_training();
    model.eval();
    NoGradGuard ng;
    const std::vector<double> p = predict_sequence(model, ds, idx);
    model.train(was_training);
    return model.compute_loss(from_vector(p, {int64_t(p.size()), 1}), ds.target_tensor(idx)).item<double>();
  }
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  double total = 0;
  const Device dev = model.device();
  for (const auto& b : data::make_batches(idx, batch_size)) {
    const Tensor p = model.forward(ops::to_device(ds.windows(b), dev)).pred;
    total += model.compute_loss(p, ops::to_device(ds.target_tensor(b), dev)).item<double>() * double(b.size());
  }
  model.train(was_training);
  return total / double(idx.size());
}

EvalResult score_forecast(const TraderDataset& ds, const std::vector<size_t>& idx,
                          const std::vector<double>& predictions, OutputType type) {
  ATTNLAB_CHECK(idx.size() == predictions.size(), "score_forecast: ", idx.size(), " samples and ",
                predictions.size(), " predictions");
  EvalResult r;
  r.regression = type == OutputType::regression;
  r.predictions = predictions;
  size_t hit = 0, up = 0, pers_hit = 0, pers_n = 0;
  double se = 0, zse = 0, pse = 0;
  for (size_t i = 0; i < idx.size(); ++i) {
    const size_t t = idx[i];
    ATTNLAB_CHECK(t < ds.targets.size(), "score_forecast: sample ", t, " is past the data's ", ds.targets.size(),
                  " rows");
    const double y = ds.targets[t], p = predictions[i];
    if (!std::isfinite(y)) continue;  // the target lies beyond the data
    ++r.n;
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
  const double n = double(r.n), nan = std::nan("");
  r.mse = r.regression && r.n ? se / n : nan;
  r.zero_mse = r.n ? zse / n : nan;
  r.direction_accuracy = r.n ? double(hit) / n : nan;
  r.always_up_accuracy = r.n ? double(up) / n : nan;
  r.persistence_mse = pers_n ? pse / double(pers_n) : nan;
  r.persistence_direction_accuracy = pers_n ? double(pers_hit) / double(pers_n) : nan;
  return r;
}

EvalResult evaluate(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx, size_t batch_size) {
  ATTNLAB_CHECK(!idx.empty(), "evaluate: no samples");
  return score_forecast(ds, idx, predict_samples(model, ds, idx, batch_size), model.config.output_type);
}

nlohmann::json EvalResult::to_json() const {
  return {{"n", n},
          {"mse", report::json_number(mse)},
          {"direction_accuracy", report::json_number(direction_accuracy)},
          {"zero_mse", report::json_number(zero_mse)},
          {"persistence_mse", report::json_number(persistence_mse)},
          {"persistence_direction_accuracy", report::json_number(persistence_direction_accuracy)},
          {"always_up_accuracy", report::json_number(always_up_accuracy)}};
}

std::string EvalResult::table() const {
  char model_mse[32] = "-";
  if (regression) std::snprintf(model_mse, sizeof model_mse, "%.6e", mse);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "  %-26s %14s %12s\n"
                "  %-26s %14s %11.2f%%\n"
                "  %-26s %14.6e %12s\n"
                "  %-26s %14.6e %11.2f%%\n"
                "  %-26s %14s %11.2f%%\n",
                ("forecast (n=" + std::to_string(n) + ")").c_str(),
                "MSE", "direction", "GQATrader", model_mse, 100 * direction_accuracy, "zero forecast", zero_mse, "-",
                "persistence (prev return)", persistence_mse, 100 * persistence_direction_accuracy, "always up", "-",
                100 * always_up_accuracy);
  return buf;
}

}  // namespace attnlab::trading
