// Report directory writer: numbers as JSON/CSV, pictures as PNG (gnuplot), one report.html tying them.
//
//   dir/metrics.json   strategy and benchmark metrics, config, latency summary, warnings
//   dir/equity.csv     per bar: time, equity, benchmark, drawdowns, return, cost, turnover, gross, weights
//   dir/trades.csv     the fill log;  dir/round_trips.csv  closed and open round trips
//   dir/latency.csv    one latency sample per line (header only when none were given)
//   dir/*.png          equity vs benchmark, drawdown, returns histogram, latency histogram, and the
//                      optional bar chart, clustered bar charts (e.g. KV-cache sizes) and heatmap
//                      (e.g. attention); each with its .dat and .gp (see plot.h)
//   dir/<extra files>  ReportInput::extra_files (e.g. predictions.csv)
//   dir/report.html    the metric tables, ReportInput::tables, relative links to every PNG and file
// Every file is written atomically (plot.h, files.h). Without gnuplot everything but the PNGs is written
// and ReportOutput::warnings says so; nothing throws for a missing gnuplot.
//
// Non-finite metrics (a Sharpe of 0/0, a profit factor with no loss) are written to JSON as the strings
// "NaN", "inf", "-inf", since JSON has no such numbers and null would hide which one it was.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "trading/backtest/engine.h"
#include "trading/backtest/latency.h"
#include "trading/backtest/metrics.h"
#include "trading/report/plot.h"

namespace attnlab::report {

// A table for report.html (cells are text, escaped when written), e.g. forecast quality or KV sizes.
struct ReportTable {
  std::string title;
  std::string note;                             // a paragraph under the title (optional)
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;   // each as long as header
};

// A clustered bar chart (plot.h grouped_bar_chart): <stem>.png, and its numbers in metrics.json under
// "charts".<stem>.
struct GroupedBars {
  std::string stem, title, ylabel, value_format = "%g";
  std::vector<std::string> categories;
  std::vector<Series> series;  // series[k].y[c]: series k in category c
};

struct ReportInput {
  std::string title = "attnlab backtest";
  const backtest::BacktestResult* backtest = nullptr;  // optional; without it only latency/bars/heatmap
  const backtest::BacktestConfig* config = nullptr;    // optional, recorded in metrics.json
  std::vector<double> latency_ms;                      // optional per-step latencies (milliseconds)
  std::string latency_title = "Inference latency";
  // Optional generic bar chart (e.g. KV-cache bytes per strategy) and heatmap (e.g. attention weights).
  std::string bars_title, bars_ylabel;
  std::vector<std::pair<std::string, double>> bars;
  std::string heatmap_title, heatmap_xlabel = "column", heatmap_ylabel = "row";
  std::vector<double> heatmap;  // [heatmap_rows, heatmap_cols] row-major
  std::int64_t heatmap_rows = 0, heatmap_cols = 0;
  std::vector<GroupedBars> grouped_bars;  // e.g. KV-cache bytes per storage kind x MHA/GQA/MQA
  std::vector<ReportTable> tables;        // shown in report.html after the performance tables
  // More files written into the report directory and linked from report.html: (file name, content).
  std::vector<std::pair<std::string, std::string>> extra_files;
  nlohmann::json extra;         // merged into metrics.json under "extra"
};

struct ReportOutput {
  std::vector<std::filesystem::path> files;  // every file written
  std::vector<std::string> warnings;         // e.g. gnuplot missing
  bool plots_rendered = false;               // every requested PNG was rendered
};

// Writes the report into `dir` (created if needed). Throws attnlab::Error on I/O failure or
// inconsistent input (e.g. heatmap size).
ReportOutput write_report(const std::filesystem::path& dir, const ReportInput& input,
                          const Gnuplot& gp = Gnuplot::detected());

// JSON forms used in metrics.json (non-finite numbers as strings, see above).
nlohmann::json to_json(const backtest::Metrics& m);
nlohmann::json to_json(const backtest::BacktestConfig& c);
nlohmann::json to_json(const backtest::LatencySummary& s);
nlohmann::json json_number(double v);

// Text tables.
std::string equity_csv(const backtest::BacktestResult& r);
std::string trades_csv(const backtest::BacktestResult& r);
std::string round_trips_csv(const backtest::BacktestResult& r);
std::string latency_csv(const std::vector<double>& latency_ms);

}  // namespace attnlab::report
