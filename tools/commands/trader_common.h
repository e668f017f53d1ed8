// Helpers shared by the trader commands (train, predict, demo): loading a CSV into features, and the
// attention of the last position averaged over heads and layers.
#pragma once
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "kernels/error.h"
#include "trading/data/csv.h"
#include "trading/data/features.h"
#include "trading/models/gqa_trader.h"

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

// attention: per layer [1, H, T, Sk]; returns the last query row averaged over heads and layers [Sk].
inline std::vector<double> last_row_attention(const std::vector<Tensor>& attention) {
  ATTNLAB_CHECK(!attention.empty(), "no attention weights returned");
  std::vector<double> avg;
  for (const Tensor& w : attention) {
    const int64_t T = w.size(2);
    const Tensor row = mean(select(select(w, 0, 0), 1, T - 1), {0});  // [H, Sk] -> [Sk]
    const auto v = row.to_vector<double>();
    if (avg.empty()) avg.assign(v.size(), 0.0);
    for (size_t i = 0; i < v.size(); ++i) avg[i] += v[i] / double(attention.size());
  }
  return avg;
}

// The same for every query row: [T, Sk] averaged over heads and layers (for a heatmap).
inline std::vector<double> mean_attention_map(const std::vector<Tensor>& attention) {
  ATTNLAB_CHECK(!attention.empty(), "no attention weights returned");
  std::vector<double> avg;
  for (const Tensor& w : attention) {
    const auto v = mean(select(w, 0, 0), {0}).to_vector<double>();
    if (avg.empty()) avg.assign(v.size(), 0.0);
    for (size_t i = 0; i < v.size(); ++i) avg[i] += v[i] / double(attention.size());
  }
  return avg;
}

}  // namespace attnlab::cli
