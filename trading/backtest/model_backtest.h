// Backtesting a trained GQATrader, bar by bar: what `attnlab backtest`, `attnlab demo` and
// `attnlab compare attention` run.
//
//   BarPredictions p = predict_bars(model, ds, rows, progress);      // one timed batch-1 forward per bar
//   ModelBacktest bt = backtest_predictions(series, p, config);     // the engine over those bars
//   report::ReportInput in = model_report_input(bt, ...);           // + latency, KV-cache bars, attention
//
// The bar loop is the seeds' backtest loop: the window ending at the decision row is built and run
// through the model alone (batch 1, eval mode, no grad), and that call is timed — the latency the
// report shows is what a live trader waits per bar. The engine then fills each decision at the next
// bar (trading/backtest/engine.h): predictions are computed first, so the timing loop and the
// accounting loop are separate but see exactly the same bars.
//
// Library: the file sits with the backtest engine it drives, but it runs the model, so it builds into
// attnlab_trading (trading/CMakeLists.txt), not into the model-free attnlab_market.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "trading/backtest/engine.h"
#include "trading/data/ohlcv.h"
#include "trading/data/trader_dataset.h"
#include "trading/models/gqa_trader.h"
#include "trading/report/report.h"
#include "trading/train/evaluate.h"

namespace attnlab::trading {

// What the engine sizes from a model output (pred[0, 0]):
//   regression  -> the predicted log return (output * target_std)
//   direction   -> P(up) - 0.5 = sigmoid(logit) - 0.5, in (-0.5, 0.5)
//   allocation  -> the model's own position in [-1, 1]
double trading_signal(OutputType type, double output, double target_std);
const char* signal_meaning(OutputType type);  // "predicted log return", "P(up) - 0.5", ...

struct BarPredictions {
  std::vector<size_t> rows;        // decision rows of the dataset (ascending)
  std::vector<double> prediction;  // [rows] trading_signal of the model output
  std::vector<double> latency_ms;  // [rows] the timed batch-1 forward of each bar
};

// One forward per row of `rows` (ascending, each with a full window in ds), timed with
// backtest::LatencyRecorder; a progress bar on stderr when `progress`. Eval mode, no grad.
BarPredictions predict_bars(GQATrader& model, const TraderDataset& ds,
                            const std::vector<size_t>& rows, bool progress,
                            const std::string& label = "inference");

// Every decision row a backtest of `split` covers: "train", "val", "test" (that split's samples) or
// "all" (every row with a full window, from the first sample to the second-to-last row of the data —
// gap rows between splits and rows whose target lies beyond the data included). attnlab::Error for
// another name.
std::vector<size_t> split_rows(const TraderDataset& ds, const std::string& split);
// "train", "val", "test" or "gap" (between splits, or after the last sample) for one row.
const char* row_split(const TraderDataset& ds, size_t row);

// Owns the arrays a backtest::Panel points into.
struct PanelData {
  std::vector<int64_t> time;
  std::vector<double> open, close;
  std::string symbol;
  backtest::Panel panel() const;
};

struct ModelBacktest {
  size_t first_row = 0;             // series row of panel bar 0 (= the first decision row)
  PanelData data;                   // series rows first_row .. last decision row + 1 (clipped to the data)
  std::vector<double> predictions;  // [T] per panel bar; NaN where no decision was made
  std::vector<double> latency_ms;   // the BarPredictions' latencies
  backtest::BacktestResult result;
};

// The engine over the bars of p.rows: the panel runs from the first decision row to the bar after the
// last one, where that decision fills. attnlab::Error when the rows leave fewer than 2 bars.
ModelBacktest backtest_predictions(const data::OhlcvSeries& series, const BarPredictions& p,
                                   const backtest::BacktestConfig& config);

// KV-cache bytes of one sequence of seq_len positions for f32/bf16/int8/int4/fp8 x MHA/GQA/MQA of the
// model's shape (trading/report/kv_size.h), as a clustered bar chart (KiB) and a table.
report::GroupedBars kv_cache_chart(const TraderConfig& model, int64_t seq_len);
report::ReportTable kv_cache_table(const TraderConfig& model, int64_t seq_len);

// The [lookback, lookback] attention of the window ending at `row`, mean over heads and layers.
std::vector<double> attention_map_at(GQATrader& model, const TraderDataset& ds, size_t row);

// The report's forecast table of an evaluation (trading/train/evaluate.h) of per-bar predictions,
// score_forecast(ds, p.rows, p.prediction, type): MSE (regression only) and direction accuracy against
// the zero forecast, persistence and always-up baselines.
report::ReportTable forecast_table(const EvalResult& e, size_t horizon);

// The report of a model backtest: equity, drawdown, returns and latency histograms, KV-cache bars
// (at the model's lookback), the attention heatmap of the last decision window, and the tables given.
report::ReportInput model_report_input(const ModelBacktest& bt, const backtest::BacktestConfig& config,
                                       const TraderConfig& model, size_t lookback,
                                       std::vector<double> attention_map, std::string title);

// printf-formatted number; "NaN", "inf", "-inf" for non-finite values (as in metrics.json).
std::string format_number(const char* spec, double v);

// The strategy vs buy-and-hold summary printed by the commands (total return, CAGR, Sharpe, Sortino,
// max drawdown, win rates, trades) and the latency line.
std::string backtest_summary(const backtest::BacktestResult& r, const std::vector<double>& latency_ms);

}  // namespace attnlab::trading
