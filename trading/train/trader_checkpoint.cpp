#include "trading/train/trader_checkpoint.h"

#include <cmath>
#include <limits>

#include "autograd/functions.h"
#include "kernels/error.h"
#include "nn/serialization.h"
#include "tensor/creation.h"

namespace attnlab::trading {

data::FeatureConfig TraderCheckpoint::feature_config() const {
  data::FeatureConfig fc;
  fc.features = features;
  return fc;
}

TraderCheckpoint read_trader_checkpoint(const std::string& path) {
  TraderCheckpoint ck;
  ck.path = path;
  ck.meta = nn::read_module_config(path);
  auto& m = ck.meta;
  ATTNLAB_CHECK(m.is_object() && m.contains("model") && m.contains("normalizer") && m.contains("features") &&
                    m.contains("train"),
                path, ": not a GQATrader checkpoint written by `attnlab train` (no model/normalizer/features/train "
                "config in its metadata)");
  try {
    move_legacy_causal(m.at("model"), m.at("train"));
    ck.model = TraderConfig::from_json(m.at("model"));
    ck.train = TrainConfig::from_json(m.at("train"));
    ck.normalizer = data::ZScoreNormalizer::from_json(m.at("normalizer"));
    ck.features = m.at("features").get<std::vector<std::string>>();
    ck.target_std = m.value("target_std", 1.0);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(path, ": bad checkpoint metadata: ", e.what()));
  } catch (const Error& e) {
    throw Error(cat(path, ": bad checkpoint metadata: ", e.what()));
  }
  ATTNLAB_CHECK(ck.features == ck.normalizer.names, path, ": the normalizer's features differ from \"features\"");
  ATTNLAB_CHECK(size_t(ck.model.input_dim) == ck.features.size(), path, ": the model takes ", ck.model.input_dim,
                " inputs but the checkpoint lists ", ck.features.size(), " features");
  return ck;
}

std::unique_ptr<GQATrader> load_trader(const TraderCheckpoint& ck) {
  auto model = std::make_unique<GQATrader>(ck.model);
  nn::load_module(ck.path, *model);
  model->eval();
  return model;
}

TraderDataset checkpoint_dataset(const TraderCheckpoint& ck, data::FeatureSet raw, const std::vector<double>& close) {
  return make_dataset_fixed(std::move(raw), close, ck.train.lookback, ck.train.horizon, ck.normalizer, ck.target_std,
                            ck.train.train_frac, ck.train.val_frac);
}

std::vector<double> last_row_attention(const std::vector<Tensor>& attention) {
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

std::vector<double> mean_attention_map(const std::vector<Tensor>& attention) {
  ATTNLAB_CHECK(!attention.empty(), "no attention weights returned");
  std::vector<double> avg;
  for (const Tensor& w : attention) {
    const auto v = mean(select(w, 0, 0), {0}).to_vector<double>();
    if (avg.empty()) avg.assign(v.size(), 0.0);
    for (size_t i = 0; i < v.size(); ++i) avg[i] += v[i] / double(attention.size());
  }
  return avg;
}

LatestPrediction predict_latest(GQATrader& model, const TraderCheckpoint& ck, data::FeatureSet raw, bool attention) {
  ATTNLAB_CHECK(raw.names == ck.features, "predict: the data's features differ from the checkpoint's");
  ck.normalizer.transform(raw);
  const size_t lookback = ck.train.lookback, rows = raw.rows();
  ATTNLAB_CHECK(rows >= raw.first_valid + lookback, "predict: need ", lookback,
                " bars after the feature warm-up (first valid row ", raw.first_valid, "), have ", rows);
  LatestPrediction p;
  p.row = rows - 1;
  p.time_ms = raw.ts_ms[p.row];
  const std::span<const double> w = data::window_view(raw, p.row, lookback);
  const Tensor x = from_vector(std::vector<double>(w.begin(), w.end()), {1, int64_t(lookback), int64_t(raw.cols())});
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  const TraderOutput out = model.forward(x, nullptr, attention);
  model.train(was_training);
  p.output = out.pred.to_vector<double>()[0];
  p.log_return = std::numeric_limits<double>::quiet_NaN();
  switch (model.config.output_type) {
    case OutputType::regression:
      p.output *= ck.target_std;  // back to log-return units
      p.log_return = p.output;
      p.direction = p.output > 0 ? "UP" : (p.output < 0 ? "DOWN" : "FLAT");
      break;
    case OutputType::direction: p.direction = p.output > 0 ? "UP" : "DOWN"; break;
    case OutputType::allocation: p.direction = p.output > 0 ? "LONG" : (p.output < 0 ? "SHORT" : "FLAT"); break;
  }
  if (attention) {
    p.attention = last_row_attention(out.attention);
    p.attention_map = mean_attention_map(out.attention);
    p.window_time_ms.assign(raw.ts_ms.begin() + long(p.row + 1 - lookback), raw.ts_ms.begin() + long(p.row + 1));
  }
  return p;
}

}  // namespace attnlab::trading
