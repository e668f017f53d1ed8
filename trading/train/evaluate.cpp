#include "trading/train/evaluate.h"

#include <cmath>
#include <cstdio>

#include "autograd/functions.h"
#include "kernels/error.h"
#include "tensor/ops.h"

namespace attnlab::trading {

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

}  // namespace attnlab::trading
