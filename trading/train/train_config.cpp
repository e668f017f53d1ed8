#include "trading/train/train_config.h"

#include <cmath>
#include <type_traits>

#include "autograd/autocast.h"
#include "kernels/error.h"

namespace attnlab::trading {

namespace {

std::string known_keys(const nlohmann::json& j) {
  std::string out;
  for (const auto& [key, value] : j.items()) out += (out.empty() ? "" : ", ") + key;
  return out;
}

}  // namespace

void TrainConfig::validate() const {
  ATTNLAB_CHECK(lookback > 0, "train: lookback must be > 0");
  ATTNLAB_CHECK(horizon > 0, "train: horizon must be > 0");
  ATTNLAB_CHECK(epochs > 0, "train: epochs must be > 0, got ", epochs);
  ATTNLAB_CHECK(batch_size > 0, "train: batch_size must be > 0");
  ATTNLAB_CHECK(lr > 0 && std::isfinite(lr), "train: lr must be > 0, got ", lr);
  ATTNLAB_CHECK(weight_decay >= 0, "train: weight_decay must be >= 0, got ", weight_decay);
  ATTNLAB_CHECK(clip_norm > 0, "train: clip_norm must be > 0, got ", clip_norm);
  ATTNLAB_CHECK(patience >= 0, "train: patience must be >= 0, got ", patience);
  ATTNLAB_CHECK(train_frac > 0 && val_frac > 0 && train_frac + val_frac < 1,
                "train: need train_frac > 0, val_frac > 0 and train_frac + val_frac < 1");
  autocast::parse_precision(precision);  // throws on an unknown name
  ATTNLAB_CHECK(objective == "window" || objective == "stream", "train: unknown objective '", objective,
                "' (expected window or stream)");
  ATTNLAB_CHECK(stream_targets > 0, "train: stream_targets must be > 0");
}

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j{{"lookback", lookback}, {"horizon", horizon},     {"epochs", epochs},
                   {"batch_size", batch_size}, {"lr", lr},           {"weight_decay", weight_decay},
                   {"clip_norm", clip_norm}, {"patience", patience}, {"seed", seed},
                   {"train_frac", train_frac}, {"val_frac", val_frac}, {"max_steps", max_steps}};
  if (precision != "f32") j["precision"] = precision;
  if (objective != "window") j["objective"] = objective, j["stream_targets"] = stream_targets;
  return j;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j) {
  ATTNLAB_CHECK(j.is_object(), "TrainConfig: expected a JSON object");
  TrainConfig c;
  nlohmann::json known = c.to_json();
  known["precision"] = c.precision;  // written only when not f32
  known["objective"] = c.objective;  // written only for the stream objective
  known["stream_targets"] = c.stream_targets;
  for (const auto& [key, value] : j.items())
    ATTNLAB_CHECK(known.contains(key), "TrainConfig: unknown key '", key, "' (known: ", known_keys(known), ")");
  auto get = [&j](const char* key, auto& var) {
    if (!j.contains(key)) return;
    using T = std::decay_t<decltype(var)>;
    const nlohmann::json& v = j.at(key);
    if constexpr (std::is_unsigned_v<T> && !std::is_same_v<T, bool>)
      ATTNLAB_CHECK(!v.is_number_integer() || v.get<int64_t>() >= 0 || v.is_number_unsigned(), "TrainConfig: '",
                    key, "' must be >= 0, got ", v.dump());
    try {
      var = v.get<T>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(cat("TrainConfig: bad value for '", key, "' (", v.dump(), "): ", e.what()));
    }
  };
  get("lookback", c.lookback);
  get("horizon", c.horizon);
  get("epochs", c.epochs);
  get("batch_size", c.batch_size);
  get("lr", c.lr);
  get("weight_decay", c.weight_decay);
  get("clip_norm", c.clip_norm);
  get("patience", c.patience);
  get("seed", c.seed);
  get("train_frac", c.train_frac);
  get("val_frac", c.val_frac);
  get("max_steps", c.max_steps);
  get("precision", c.precision);
  get("objective", c.objective);
  get("stream_targets", c.stream_targets);
  return c;
}

void move_legacy_causal(nlohmann::json& model, nlohmann::json& train) {
  if (!train.is_object() || !train.contains("causal")) return;
  ATTNLAB_CHECK(model.is_object(), "the \"model\" config must be a JSON object");
  const nlohmann::json v = train.at("causal");
  ATTNLAB_CHECK(!model.contains("causal") || model.at("causal") == v, "causal is given twice: ", v.dump(),
                " in \"train\" (where older versions kept it) and ", model.at("causal").dump(),
                " in \"model\"");
  model["causal"] = v;
  train.erase("causal");
}

}  // namespace attnlab::trading
