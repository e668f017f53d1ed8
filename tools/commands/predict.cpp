// `attnlab predict`: loads a train checkpoint, builds the latest window of a CSV (same features, the
// checkpoint's normalizer) and prints the predicted return and direction; optionally writes the
// attention of the last position, averaged over heads and layers, to a CSV.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "nn/serialization.h"
#include "tools/commands/commands.h"
#include "tools/commands/trader_common.h"
#include "trading/data/dataset.h"
#include "trading/report/files.h"

namespace attnlab::cli {

void add_predict(CLI::App& app) {
  struct Args {
    std::string checkpoint, data, attention_csv;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("predict", "Predict the next-horizon return for the latest window of a CSV");
  cmd->add_option("--checkpoint", args->checkpoint, "model.safetensors written by `attnlab train`")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", args->data, "OHLCV CSV (the latest lookback bars after the feature warm-up are used)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--attention-csv", args->attention_csv,
                  "Write the last position's attention (mean over heads and layers) to this CSV");
  cmd->callback([args] {
    const nlohmann::json meta = nn::read_module_config(args->checkpoint);
    ATTNLAB_CHECK(meta.is_object() && meta.contains("model") && meta.contains("normalizer") &&
                      meta.contains("features") && meta.contains("train"),
                  args->checkpoint, ": not a GQATrader checkpoint written by `attnlab train` (no model/normalizer "
                  "config in its metadata)");
    trading::TraderConfig mc = trading::TraderConfig::from_json(meta.at("model"));
    const auto normalizer = data::ZScoreNormalizer::from_json(meta.at("normalizer"));
    const auto names = meta.at("features").get<std::vector<std::string>>();
    const size_t lookback = meta.at("train").at("lookback").get<size_t>();
    const size_t horizon = meta.at("train").at("horizon").get<size_t>();
    const bool causal = meta.at("train").value("causal", false);
    trading::GQATrader model(mc);
    nn::load_module(args->checkpoint, model);
    model.eval();

    SeriesFeatures sf = load_series_features(args->data, names);
    data::FeatureSet& fs = sf.features;
    normalizer.transform(fs);
    const size_t rows = fs.rows();
    ATTNLAB_CHECK(rows >= fs.first_valid + lookback, args->data, ": need ", lookback,
                  " bars after the feature warm-up (first valid row ", fs.first_valid, "), have ", rows);
    const size_t t = rows - 1;
    const std::vector<double> w = data::gather_windows(fs, {t}, lookback);
    NoGradGuard ng;
    const bool want_attn = !args->attention_csv.empty();
    const trading::TraderOutput out = model.forward(
        from_vector(w, {1, int64_t(lookback), int64_t(fs.cols())}), causal, nullptr, want_attn);
    const double target_std = meta.value("target_std", 1.0);
    double p = out.pred.to_vector<double>()[0];
    if (mc.output_type == trading::OutputType::regression) p *= target_std;  // back to log-return units
    const char* dir = "";
    double expected = p;
    switch (mc.output_type) {
      case trading::OutputType::regression: dir = p > 0 ? "UP" : (p < 0 ? "DOWN" : "FLAT"); break;
      case trading::OutputType::direction: dir = p > 0 ? "UP" : "DOWN"; expected = std::nan(""); break;
      case trading::OutputType::allocation: dir = p > 0 ? "LONG" : (p < 0 ? "SHORT" : "FLAT"); expected = std::nan(""); break;
    }
    std::printf("bar        : %s (row %zu)\n", sf.series.symbol.c_str(), t);
    std::printf("time_ms    : %lld\n", (long long)fs.ts_ms[t]);
    std::printf("horizon    : %zu bars\n", horizon);
    std::printf("output     : %s = %.8g\n", trading::to_string(mc.output_type), p);
    if (mc.output_type == trading::OutputType::regression)
      std::printf("predicted  : log return %.6g (%.4f%%)\n", expected, 100 * (std::exp(expected) - 1));
    if (mc.output_type == trading::OutputType::direction)
      std::printf("P(up)      : %.4f\n", 1 / (1 + std::exp(-p)));
    std::printf("direction  : %s\n", dir);
    if (want_attn) {
      const std::vector<double> a = last_row_attention(out.attention);
      std::ostringstream csv;
      csv << "position,bars_before_latest,time_ms,weight\n";
      csv.precision(10);
      for (size_t i = 0; i < a.size(); ++i) {
        const size_t row = t + 1 - lookback + i;
        csv << i << "," << (lookback - 1 - i) << "," << fs.ts_ms[row] << "," << a[i] << "\n";
      }
      report::write_file_atomic(args->attention_csv, csv.str());
      std::printf("attention  : %s (%zu positions, mean over %lld heads x %lld layers)\n",
                  args->attention_csv.c_str(), a.size(), (long long)mc.n_heads, (long long)mc.n_layers);
    }
  });
}

}  // namespace attnlab::cli
