// Helpers shared by the trader commands (train, predict, convert, demo): loading a CSV into features,
// and the attention of the last position averaged over heads and layers.
#pragma once
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "kernels/error.h"
#include "trading/data/csv.h"
#include "trading/data/features.h"
#include "trading/models/gqa_trader.h"
#include "trading/train/trader_checkpoint.h"

namespace attnlab::cli {

struct SeriesFeatures {
  data::OhlcvSeries series;
  data::FeatureSet features;
};

inline SeriesFeatures load_series_features(const std::string& csv, const std::vector<std::string>& names = {}) {
  SeriesFeatures out;
  out.series = data::read_ohlcv_csv(csv);
  data::FeatureConfig fc;
  if (!names.empty()) fc.features = names;
  out.features = data::compute_features(out.series, fc);
  ATTNLAB_CHECK(out.features.first_valid < out.features.rows(), csv, ": no row has every feature (",
                out.features.rows(), " rows)");
  return out;
}

// The attention summaries live with the checkpoint helpers (trading/train/trader_checkpoint.h).
using trading::last_row_attention;
using trading::mean_attention_map;

}  // namespace attnlab::cli
