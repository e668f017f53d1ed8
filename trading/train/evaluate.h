// Evaluating a GQATrader on samples of a TraderDataset: the mean training loss, the predictions, and the
// forecast quality against naive baselines (zero forecast, persistence, always up). Every call runs in eval
// mode without gradients and restores the model's training flag.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "trading/data/trader_dataset.h"
#include "trading/models/gqa_trader.h"

namespace attnlab::trading {

// Mean loss (model.compute_loss) over samples in eval mode, no grad.
double evaluate_loss(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx,
                     size_t batch_size = 256, bool causal = false);

// Predictions pred[:, 0] for the samples, eval mode, no grad; regression outputs are multiplied by
// ds.target_std (log-return units), other output types are returned as the model gives them.
std::vector<double> predict_samples(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx,
                                    size_t batch_size = 256, bool causal = false);

// Forecast quality on a split against naive baselines. Direction: a prediction is right when
// (pred > 0) == (target > 0).
struct EvalResult {
  size_t n = 0;
  double mse = 0, direction_accuracy = 0;
  double zero_mse = 0;                 // always forecast 0
  double persistence_mse = 0;          // forecast = the previous horizon's return ln(close[t]/close[t-h])
  double persistence_direction_accuracy = 0;
  double always_up_accuracy = 0;       // fraction of targets > 0
  std::vector<double> predictions;     // [n]
  nlohmann::json to_json() const;
  std::string table() const;           // a printable comparison table
};

EvalResult evaluate(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx,
                    size_t batch_size = 256, bool causal = false);

}  // namespace attnlab::trading
