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
                     size_t batch_size = 256);

// Predictions pred[:, 0] for the samples, eval mode, no grad; regression outputs are multiplied by
// ds.target_std (log-return units), other output types are returned as the model gives them.
std::vector<double> predict_samples(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx,
                                    size_t batch_size = 256);

// Forecast quality on samples against naive baselines: the one implementation behind `train`'s test
// table, `demo`, `compare attention` and the backtest report's forecast table. Direction: a prediction
// is right when (pred > 0) == (target > 0). Samples whose target lies beyond the data are left out.
struct EvalResult {
  size_t n = 0;                        // samples with a known target
  bool regression = true;              // the predictions are forecasts of the return
  double mse = 0;                      // regression only (NaN otherwise: a direction or an allocation is
                                       // not a forecast of the return's size)
  double direction_accuracy = 0;
  double zero_mse = 0;                 // always forecast 0
  double persistence_mse = 0;          // forecast = the previous horizon's return ln(close[t]/close[t-h])
  double persistence_direction_accuracy = 0;
  double always_up_accuracy = 0;       // fraction of targets > 0
  std::vector<double> predictions;     // [samples] as given (those without a target included)
  nlohmann::json to_json() const;
  std::string table() const;           // a printable comparison table
};

// Scores given predictions of samples idx (predictions[i] for sample idx[i], in log-return units for
// regression; for other output types only the sign is used). attnlab::Error when the sizes differ.
EvalResult score_forecast(const TraderDataset& ds, const std::vector<size_t>& idx,
                          const std::vector<double>& predictions, OutputType type);

// score_forecast of predict_samples.
EvalResult evaluate(GQATrader& model, const TraderDataset& ds, const std::vector<size_t>& idx,
                    size_t batch_size = 256);

}  // namespace attnlab::trading
