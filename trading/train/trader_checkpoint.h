// Using a GQATrader checkpoint written by train_trader (model.safetensors): its metadata, the model,
// new data scaled as the model saw its own, the prediction for the latest window, and the attention
// analysis (`attnlab predict`, `attnlab convert --uptrain-data`).
//
//   TraderCheckpoint ck = read_trader_checkpoint("runs/x/model.safetensors");
//   std::unique_ptr<GQATrader> model = load_trader(ck);
//   LatestPrediction p = predict_latest(*model, ck, data::compute_features(series, ck.feature_config()), true);
//
// The model runs with the causal setting it was trained with (TraderConfig::causal, in "model"; older
// checkpoints keep it in "train" and are read as if it were in "model").
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "trading/data/dataset.h"
#include "trading/data/features.h"
#include "trading/data/trader_dataset.h"
#include "trading/models/gqa_trader.h"
#include "trading/train/train_config.h"

namespace attnlab::trading {

struct TraderCheckpoint {
  std::string path;
  nlohmann::json meta;                 // the whole config json of the file
  TraderConfig model;                  // "model"
  TrainConfig train;                   // "train": lookback, horizon, split fractions, ...
  data::ZScoreNormalizer normalizer;   // "normalizer", fitted on the training rows
  std::vector<std::string> features;   // "features", the column order the model expects
  double target_std = 1.0;             // "target_std": regression outputs are in these units

  // A FeatureConfig computing exactly `features` (default windows).
  data::FeatureConfig feature_config() const;
};

// Reads and checks the metadata. attnlab::Error naming the file when it is not a GQATrader checkpoint
// written by train_trader (missing "model", "normalizer", "features" or "train") or a section is bad.
TraderCheckpoint read_trader_checkpoint(const std::string& path);

// Builds the model from ck.model and loads the weights (strict); eval mode.
std::unique_ptr<GQATrader> load_trader(const TraderCheckpoint& ck);

// A dataset of (new) raw features and closes, normalized with the checkpoint's normalizer and target
// scale and split with its lookback, horizon and fractions: what fine-tuning needs.
TraderDataset checkpoint_dataset(const TraderCheckpoint& ck, data::FeatureSet raw, const std::vector<double>& close);

struct LatestPrediction {
  size_t row = 0;                       // the last row of raw: the decision bar
  int64_t time_ms = 0;
  double output = 0;                    // pred[0, 0] in the output type's units (log return for regression)
  double log_return = 0;                // regression: the predicted log return; NaN otherwise
  std::string direction;                // UP/DOWN/FLAT (regression, direction) or LONG/SHORT/FLAT (allocation)
  std::vector<double> attention;        // [lookback] the last position's attention, mean over heads and layers
  std::vector<double> attention_map;    // [lookback, lookback] every position's, mean over heads and layers
  std::vector<int64_t> window_time_ms;  // [lookback] the time of each window row
};

// Normalizes raw (un-normalized features named ck.features) with the checkpoint's normalizer, takes
// the window ending at the last row and runs the model on it. attention = true also
// fills the attention fields (math backend for this call). attnlab::Error when the features differ
// or there are fewer than lookback valid rows.
LatestPrediction predict_latest(GQATrader& model, const TraderCheckpoint& ck, data::FeatureSet raw,
                                bool attention = false);

// attention: per layer [1, H, T, Sk] -> the last query row averaged over heads and layers [Sk].
std::vector<double> last_row_attention(const std::vector<Tensor>& attention);
// The same for every query row: [T, Sk] row-major, averaged over heads and layers (for a heatmap).
std::vector<double> mean_attention_map(const std::vector<Tensor>& attention);

}  // namespace attnlab::trading
