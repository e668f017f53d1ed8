// Helpers shared by the trader commands (train, predict, convert, demo, backtest): loading a CSV into
// features, reading a --config file, and the attention of the last position averaged over heads and layers.
#pragma once
#include <CLI/CLI.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "kernels/cuda/runtime.h"
#include "kernels/error.h"
#include "trading/data/csv.h"
#include "trading/data/features.h"
#include "trading/models/gqa_trader.h"
#include "trading/train/trader_checkpoint.h"

#ifndef ATTNLAB_SOURCE_DIR
#define ATTNLAB_SOURCE_DIR "."
#endif

namespace attnlab::cli {

// The embedded S&P 500 daily CSV (data/README.md): the default --data of demo and the comparisons.
inline std::string embedded_data_csv() { return std::string(ATTNLAB_SOURCE_DIR) + "/data/sp500_daily_2000_2020.csv"; }

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

// A command's --config file: a JSON object of sections, {"<section>": {"<key>": value, ...}, ...}. Every
// section must be one of defaults_by_section's and every key one its defaults know, with a value of the
// default's type (a typo is an error rather than a silently ignored setting). Returns the parsed file.
inline nlohmann::json read_config_file(const std::string& path, const nlohmann::json& defaults_by_section) {
  std::ifstream in(path);
  ATTNLAB_CHECK(in, path, ": cannot open");
  nlohmann::json cfg;
  try {
    in >> cfg;
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  std::string sections;
  for (const auto& [name, body] : defaults_by_section.items())
    sections += (sections.empty() ? "\"" : " and/or \"") + name + "\"";
  ATTNLAB_CHECK(cfg.is_object(), path, ": expected a JSON object with ", sections, " sections");
  for (const auto& [section, body] : cfg.items()) {
    ATTNLAB_CHECK(defaults_by_section.contains(section), path, ": unknown section '", section, "' (expected ",
                  sections, ")");
    ATTNLAB_CHECK(body.is_object(), path, ": section '", section, "' must be a JSON object");
    const nlohmann::json& known = defaults_by_section.at(section);
    for (const auto& [key, value] : body.items()) {
      std::string names;
      for (const auto& [k, v] : known.items()) names += (names.empty() ? "" : ", ") + k;
      ATTNLAB_CHECK(known.contains(key), path, ": unknown key '", key, "' in \"", section, "\" (known: ", names, ")");
      const nlohmann::json& def = known.at(key);
      const bool same_kind = (def.is_number() && value.is_number()) || (def.is_string() && value.is_string()) ||
                             (def.is_boolean() && value.is_boolean());
      ATTNLAB_CHECK(same_kind, path, ": \"", section, "\".", key, " must be a ", def.type_name(), " like ",
                    def.dump(), ", got ", value.dump());
      ATTNLAB_CHECK(!def.is_number_integer() || value.is_number_integer(), path, ": \"", section, "\".", key,
                    " must be an integer, got ", value.dump());
    }
  }
  return cfg;
}

// The comparisons' backtest options: --cost-bps, --tanh-scale, --max-position (tanh sizing).
inline void add_backtest_sizing_options(CLI::App& cmd, double& cost_bps, double& tanh_scale, double& max_position) {
  cmd.add_option("--cost-bps", cost_bps, "Backtest commission, basis points of traded notional")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd.add_option("--tanh-scale", tanh_scale, "Backtest sizing: weight = tanh(scale * pred) * max_position")
      ->capture_default_str();
  cmd.add_option("--max-position", max_position, "Backtest: |weight| at full conviction")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
}

// A --device value: "cpu", "cuda" (= cuda:0) or "cuda:N". Asking for a GPU that is not there is an
// Error that says why (no GPU, no driver, a build without CUDA), before any data is read.
inline Device parse_device(const std::string& s) {
  if (s == "cpu") return kCPU;
  int index = -1;
  if (s == "cuda") {
    index = 0;
  } else if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.find_first_not_of("0123456789", 5) == std::string::npos &&
             s.size() < 10) {
    index = std::stoi(s.substr(5));
  }
  ATTNLAB_CHECK(index >= 0, "--device: unknown device '", s, "' (expected cpu, cuda or cuda:N)");
  const int n = kernels::cuda::device_count();
  ATTNLAB_CHECK(n > 0, "--device ", s, ": no usable GPU (", kernels::cuda::unavailable_reason(),
                "); use --device cpu");
  ATTNLAB_CHECK(index < n, "--device ", s, ": only ", n, " GPU(s) present (cuda:0", n > 1 ? cat("..cuda:", n - 1) : "",
                ")");
  return Device{DeviceType::cuda, index};
}

// The attention summaries live with the checkpoint helpers (trading/train/trader_checkpoint.h).
using trading::last_row_attention;
using trading::mean_attention_map;

}  // namespace attnlab::cli
