#include "trading/data/trader_dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "kernels/error.h"
#include "tensor/creation.h"
#include "tensor/ops.h"

namespace attnlab::trading {

namespace {

// The shared part of make_dataset and make_dataset_fixed: targets, samples and the split.
TraderDataset dataset_skeleton(const data::FeatureSet& fs, const std::vector<double>& close, size_t lookback,
                               size_t horizon, double train_frac, double val_frac) {
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
  return ds;
}

// Normalizes fs with ds.normalizer and makes it the dataset's matrix, f64 and (once) f32.
void set_features(TraderDataset& ds, data::FeatureSet fs) {
  ds.normalizer.transform(fs);
  ds.features = std::move(fs);
  ds.inputs = from_vector(ds.features.values, {int64_t(ds.features.rows()), int64_t(ds.features.cols())});
}

}  // namespace

TraderDataset make_dataset(data::FeatureSet fs, const std::vector<double>& close, size_t lookback, size_t horizon,
                           double train_frac, double val_frac, bool scale_targets) {
  TraderDataset ds = dataset_skeleton(fs, close, lookback, horizon, train_frac, val_frac);
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
  set_features(ds, std::move(fs));
  return ds;
}

TraderDataset make_dataset_fixed(data::FeatureSet fs, const std::vector<double>& close, size_t lookback,
                                 size_t horizon, const data::ZScoreNormalizer& normalizer, double target_std,
                                 double train_frac, double val_frac) {
  ATTNLAB_CHECK(normalizer.names == fs.names, "make_dataset_fixed: the normalizer was fitted on other features");
  ATTNLAB_CHECK(target_std > 0 && std::isfinite(target_std), "make_dataset_fixed: target_std must be > 0, got ",
                target_std);
  TraderDataset ds = dataset_skeleton(fs, close, lookback, horizon, train_frac, val_frac);
  ds.target_std = target_std;
  ds.normalizer = normalizer;
  set_features(ds, std::move(fs));
  return ds;
}

Tensor TraderDataset::window(size_t t) const {
  ATTNLAB_CHECK(t < features.rows() && t + 1 >= lookback, "TraderDataset::window: sample ", t,
                " has no window of ", lookback, " rows in ", features.rows(), " rows");
  return ops::narrow(inputs, 0, int64_t(t + 1 - lookback), int64_t(lookback));
}

Tensor TraderDataset::windows(const std::vector<size_t>& idx) const {
  ATTNLAB_CHECK(!idx.empty(), "TraderDataset::windows: no samples");
  std::vector<Tensor> views;
  views.reserve(idx.size());
  for (size_t t : idx) views.push_back(window(t));
  return ops::stack(views, 0);
}

Tensor TraderDataset::target_tensor(const std::vector<size_t>& idx) const {
  std::vector<double> y(idx.size());
  for (size_t i = 0; i < idx.size(); ++i) y[i] = targets[idx[i]] / target_std;
  return from_vector(y, {int64_t(idx.size()), 1});
}

// FNV-1a over the bytes the training reads: the normalized matrix, the targets, the split and the scale.
std::string data_fingerprint(const TraderDataset& ds) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ULL;
  };
  mix(ds.features.values.data(), ds.features.values.size() * sizeof(double));
  mix(ds.targets.data(), ds.targets.size() * sizeof(double));
  for (const auto* v : {&ds.split.train, &ds.split.val, &ds.split.test}) mix(v->data(), v->size() * sizeof(size_t));
  mix(&ds.target_std, sizeof ds.target_std);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

nlohmann::json split_periods(const TraderDataset& ds) {
  nlohmann::json out = nlohmann::json::object();
  const auto& ts = ds.features.ts_ms;
  for (const auto& [name, idx] : {std::pair<const char*, const std::vector<size_t>*>{"train", &ds.split.train},
                                  {"val", &ds.split.val}, {"test", &ds.split.test}}) {
    if (idx->empty() || ts.empty()) continue;
    const size_t last_target = std::min(idx->back() + ds.horizon, ts.size() - 1);
    out[name] = {{"first_ms", ts[idx->front()]}, {"last_ms", ts[idx->back()]}, {"last_target_ms", ts[last_target]}};
  }
  return out;
}

nlohmann::json data_info(const TraderDataset& ds) {
  return {{"rows", ds.features.rows()},
          {"features", ds.features.names},
          {"first_ms", ds.features.rows() ? ds.features.ts_ms.front() : 0},
          {"last_ms", ds.features.rows() ? ds.features.ts_ms.back() : 0},
          {"train", ds.split.train.size()}, {"val", ds.split.val.size()}, {"test", ds.split.test.size()},
          {"periods", split_periods(ds)}, {"fingerprint", data_fingerprint(ds)}};
}

}  // namespace attnlab::trading
