// `attnlab predict`: loads a train checkpoint, builds the latest window of a CSV (same features, the
// checkpoint's normalizer, its causal setting) and prints the predicted return and direction;
// optionally writes the attention of the last position, averaged over heads and layers, to a CSV and
// plots it (a line over the window and a heatmap of every position's attention) next to the CSV.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "tools/commands/commands.h"
#include "tools/commands/trader_common.h"
#include "trading/report/files.h"
#include "trading/report/plot.h"
#include "trading/train/trader_checkpoint.h"

namespace attnlab::cli {

namespace {

namespace fs = std::filesystem;

// <csv stem>.png (the last position's attention over the window) and <csv stem>_map.png (the [T, T]
// map), each with its .dat and .gp, in the CSV's directory. Returns lines describing what was written.
std::vector<std::string> plot_attention(const std::string& csv_path, const trading::LatestPrediction& p) {
  const fs::path csv(csv_path);
  const fs::path dir = csv.has_parent_path() ? csv.parent_path() : fs::path(".");
  std::string stem = csv.stem().string();
  for (char& c : stem)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') c = '_';
  if (stem.empty()) stem = "attention";
  const size_t L = p.attention.size();
  std::vector<double> x(L), uniform(L, 1.0 / double(L));
  for (size_t i = 0; i < L; ++i) x[i] = -double(L - 1 - i);  // bars relative to the latest (0)
  report::PlotOptions po;
  po.title = "Attention of the latest bar over its window (mean over heads and layers)";
  po.xlabel = "bars relative to the latest";
  po.ylabel = "attention weight";
  std::vector<report::PlotResult> rs;
  rs.push_back(report::line_plot(dir, stem, x, {{"attention", p.attention}, {"uniform 1/lookback", uniform}}, po));
  report::PlotOptions ph;
  ph.title = "Attention map of the latest window (mean over heads and layers)";
  ph.xlabel = "key position (0 = oldest bar)";
  ph.ylabel = "query position";
  ph.width = ph.height = 800;
  rs.push_back(report::heatmap(dir, stem + "_map", p.attention_map, int64_t(L), int64_t(L), ph));
  std::vector<std::string> lines;
  for (const auto& r : rs)
    lines.push_back(r.rendered ? r.png.string() : r.script.string() + " (no PNG: " + r.message + ")");
  return lines;
}

}  // namespace

void add_predict(CLI::App& app) {
  struct Args {
    std::string checkpoint, data, attention_csv;
    bool no_plot = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("predict", "Predict the next-horizon return for the latest window of a CSV");
  cmd->add_option("--checkpoint", args->checkpoint, "model.safetensors written by `attnlab train`")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", args->data, "OHLCV CSV (the latest lookback bars after the feature warm-up are used)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--attention-csv", args->attention_csv,
                  "Write the last position's attention (mean over heads and layers) to this CSV, and plot it "
                  "beside the CSV: <stem>.png (attention over the window) and <stem>_map.png (heatmap of every "
                  "position's attention), with their .dat/.gp (gnuplot)");
  cmd->add_flag("--no-plot", args->no_plot, "With --attention-csv: write the CSV only, no plots");
  cmd->callback([args] {
    const trading::TraderCheckpoint ck = trading::read_trader_checkpoint(args->checkpoint);
    const std::unique_ptr<trading::GQATrader> model = trading::load_trader(ck);
    SeriesFeatures sf = load_series_features(args->data, ck.features);
    const bool want_attn = !args->attention_csv.empty();
    const trading::LatestPrediction p = trading::predict_latest(*model, ck, std::move(sf.features), want_attn);
    const auto& mc = ck.model;
    std::printf("bar        : %s (row %zu)\n", sf.series.symbol.c_str(), p.row);
    std::printf("time_ms    : %lld\n", (long long)p.time_ms);
    std::printf("horizon    : %zu bars\n", ck.train.horizon);
    std::printf("attention  : %s mask\n", ck.model.causal ? "causal" : "no");
    std::printf("output     : %s = %.8g\n", trading::to_string(mc.output_type), p.output);
    if (mc.output_type == trading::OutputType::regression)
      std::printf("predicted  : log return %.6g (%.4f%%)\n", p.log_return, 100 * (std::exp(p.log_return) - 1));
    if (mc.output_type == trading::OutputType::direction)
      std::printf("P(up)      : %.4f\n", 1 / (1 + std::exp(-p.output)));
    std::printf("direction  : %s\n", p.direction.c_str());
    if (want_attn) {
      const size_t L = p.attention.size();
      std::ostringstream csv;
      csv << "position,bars_before_latest,time_ms,weight\n";
      csv.precision(10);
      for (size_t i = 0; i < L; ++i)
        csv << i << "," << (L - 1 - i) << "," << p.window_time_ms[i] << "," << p.attention[i] << "\n";
      report::write_file_atomic(args->attention_csv, csv.str());
      std::printf("attention  : %s (%zu positions, mean over %lld heads x %lld layers)\n",
                  args->attention_csv.c_str(), L, (long long)mc.n_heads, (long long)mc.n_layers);
      if (!args->no_plot)
        for (const auto& line : plot_attention(args->attention_csv, p)) std::printf("plot       : %s\n", line.c_str());
    }
  });
}

}  // namespace attnlab::cli
