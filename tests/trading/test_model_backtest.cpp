// The model backtest library (trading/backtest/model_backtest.h) without the CLI: which rows a split
// backtests, the per-bar predictions against the model's own forward, the panel and predictions the
// engine gets, the KV-cache bars and table, the report input and the printed summary. A tiny untrained
// model on planted data (the numbers need not be good, only the same as computed by hand).
#include <doctest/doctest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "tensor/creation.h"
#include "tests/test_util.h"
#include "trading/backtest/model_backtest.h"
#include "trading/data/features.h"
#include "trading/data/synth.h"
#include "trading/report/kv_size.h"

using namespace attnlab;
using namespace attnlab::trading;

namespace {

data::OhlcvSeries planted_series(size_t bars = 260) {
  data::SynthConfig sc;
  sc.n_symbols = 1, sc.n_bars = bars, sc.seed = 7, sc.signal = data::SignalKind::OwnMomentum;
  return data::generate_synthetic(sc).series[0];
}

TraderDataset dataset(const data::OhlcvSeries& s, size_t lookback = 8) {
  data::FeatureConfig fc;
  fc.features = {"log_return", "volatility", "price_ma_ratio"};
  return make_dataset(data::compute_features(s, fc), s.close, lookback, 1);
}

TraderConfig tiny(size_t features, OutputType type = OutputType::regression) {
  TraderConfig c;
  c.input_dim = int64_t(features);
  c.d_model = 8, c.n_heads = 2, c.n_kv_heads = 1, c.n_layers = 1, c.d_ff = 16, c.max_seq_len = 8;
  c.dropout = 0.0;
  c.output_type = type;
  c.backend = nn::AttentionBackend::math;
  return c;
}

}  // namespace

TEST_CASE("split_rows and row_split: the split's samples, every row with a window for all, gaps named") {
  const auto s = planted_series();
  const TraderDataset ds = dataset(s);
  CHECK(split_rows(ds, "train") == ds.split.train);
  CHECK(split_rows(ds, "val") == ds.split.val);
  CHECK(split_rows(ds, "test") == ds.split.test);
  const std::vector<size_t> all = split_rows(ds, "all");
  REQUIRE(!all.empty());
  CHECK(all.front() == ds.samples.front());
  CHECK(all.back() == ds.features.rows() - 2);  // the last decision still has a bar to fill in
  for (size_t i = 1; i < all.size(); ++i) CHECK(all[i] == all[i - 1] + 1);
  for (size_t t : ds.split.train) CHECK(std::string(row_split(ds, t)) == "train");
  for (size_t t : ds.split.test) CHECK(std::string(row_split(ds, t)) == "test");
  // gap = horizon: the row right after the last training sample belongs to no split
  CHECK(std::string(row_split(ds, ds.split.train.back() + 1)) == "gap");
  CHECK(std::string(row_split(ds, ds.features.rows() - 1)) == "gap");
  testing::check_error([&] { split_rows(ds, "holdout"); }, {"unknown split 'holdout'"});
}

TEST_CASE("predict_bars: one timed forward per row, the model's own output as the trading signal") {
  const auto s = planted_series();
  const TraderDataset ds = dataset(s);
  for (const OutputType type : {OutputType::regression, OutputType::direction, OutputType::allocation}) {
    INFO(to_string(type));
    manual_seed(3);
    GQATrader model(tiny(ds.n_features(), type));
    model.train();  // predict_bars switches to eval and back
    const std::vector<size_t> rows(ds.split.test.begin(), ds.split.test.begin() + 12);
    const BarPredictions p = predict_bars(model, ds, rows, /*progress=*/false);
    CHECK(model.is_training());
    CHECK(p.rows == rows);
    REQUIRE(p.prediction.size() == rows.size());
    REQUIRE(p.latency_ms.size() == rows.size());
    model.eval();
    NoGradGuard ng;
    for (size_t i = 0; i < rows.size(); ++i) {
      const double out = model.forward(unsqueeze(ds.window(rows[i]), 0)).pred.item<double>();
      CHECK(p.prediction[i] == trading_signal(type, out, ds.target_std));
      CHECK(p.latency_ms[i] >= 0);
    }
    testing::check_error([&] { predict_bars(model, ds, {rows[1], rows[0]}, false); }, {"ascending"});
    testing::check_error([&] { predict_bars(model, ds, {}, false); }, {"no rows"});
  }
}

TEST_CASE("backtest_predictions: the panel runs from the first decision to the bar after the last") {
  const auto s = planted_series();
  const TraderDataset ds = dataset(s);
  BarPredictions p;
  for (size_t t = 100; t < 140; t += 3) {  // every third bar decides; the others hold (NaN)
    p.rows.push_back(t);
    p.prediction.push_back(std::sin(double(t)) * 0.01);
    p.latency_ms.push_back(0.5);
  }
  backtest::BacktestConfig bc;
  bc.market = backtest::Market::equity;
  const ModelBacktest m = backtest_predictions(s, p, bc);
  CHECK(m.first_row == 100);
  REQUIRE(m.data.time.size() == 139 - 100 + 1 + 1);  // rows 100, 103, ..., 139 decide; 140 fills the last
  CHECK(m.data.time.front() == s.ts_ms[100]);
  CHECK(m.data.close.back() == s.close[140]);
  size_t decided = 0;
  for (size_t i = 0; i < m.predictions.size(); ++i) {
    const size_t row = 100 + i;
    if ((row - 100) % 3 == 0 && row < 140) {
      CHECK(m.predictions[i] == std::sin(double(row)) * 0.01);
      ++decided;
    } else {
      CHECK(std::isnan(m.predictions[i]));
    }
  }
  CHECK(decided == p.rows.size());
  CHECK(m.latency_ms == p.latency_ms);
  // the same as running the engine on that panel by hand
  const backtest::BacktestResult ref = backtest::run_backtest(m.data.panel(), m.predictions, bc);
  CHECK(m.result.equity == ref.equity);
  CHECK(m.result.returns == ref.returns);

  // a last decision on the last bar has nothing to fill in: the panel stops at the data's end
  BarPredictions end;
  end.rows = {s.size() - 3, s.size() - 1};
  end.prediction = {0.01, -0.01};
  CHECK(backtest_predictions(s, end, bc).data.time.size() == 3);
  end.rows = {s.size() - 1};
  end.prediction = {0.01};
  testing::check_error([&] { backtest_predictions(s, end, bc); }, {"leave no bar to trade in"});
  end.prediction = {};
  testing::check_error([&] { backtest_predictions(s, end, bc); }, {"1 rows and 0 predictions"});
}

TEST_CASE("KV-cache bars and table: the kv_size_table bytes of the model's shape, its own row marked") {
  TraderConfig mc = tiny(3);
  mc.n_layers = 2, mc.n_heads = 4, mc.n_kv_heads = 2, mc.d_model = 32;
  const report::KvSizeTable want = report::kv_size_table(2, 4, 2, 8, 16);
  const report::GroupedBars g = kv_cache_chart(mc, 16);
  CHECK(g.categories == want.kinds);
  REQUIRE(g.series.size() == want.variants.size());
  for (size_t v = 0; v < want.variants.size(); ++v)
    for (size_t k = 0; k < want.kinds.size(); ++k) CHECK(g.series[v].y[k] == want.bytes[v][k] / 1024.0);
  const report::ReportTable t = kv_cache_table(mc, 16);
  REQUIRE(t.rows.size() == want.variants.size());
  size_t marked = 0;
  for (size_t v = 0; v < t.rows.size(); ++v) {
    const bool mine = t.rows[v][0].find("this model") != std::string::npos;
    CHECK(mine == want.variants[v].is_model);
    marked += mine;
    CHECK(t.rows[v][1].rfind(std::to_string(int64_t(want.bytes[v][0])) + " B", 0) == 0);
  }
  CHECK(marked == 1);
}

TEST_CASE("model_report_input and backtest_summary") {
  const auto s = planted_series();
  const TraderDataset ds = dataset(s);
  manual_seed(5);
  GQATrader model(tiny(ds.n_features()));
  const BarPredictions p = predict_bars(model, ds, ds.split.test, false);
  backtest::BacktestConfig bc;
  const ModelBacktest m = backtest_predictions(s, p, bc);
  const std::vector<double> attn = attention_map_at(model, ds, ds.split.test.back());
  REQUIRE(attn.size() == 64);
  for (size_t q = 0; q < 8; ++q) {  // each query row of the averaged map sums to 1
    double sum = 0;
    for (size_t k = 0; k < 8; ++k) sum += attn[q * 8 + k];
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
  }
  const report::ReportInput in = model_report_input(m, bc, model.config, ds.lookback, attn, "title");
  CHECK(in.title == "title");
  CHECK(in.backtest == &m.result);
  CHECK(in.latency_ms == p.latency_ms);
  CHECK(in.heatmap == attn);
  CHECK(in.heatmap_rows == 8);
  REQUIRE(in.grouped_bars.size() == 1);
  CHECK(in.grouped_bars[0].stem == "kv_cache");
  CHECK(model_report_input(m, bc, model.config, ds.lookback, {}, "t").heatmap.empty());

  const std::string text = backtest_summary(m.result, m.latency_ms);
  for (const char* line : {"total return", "Sharpe", "max drawdown", "fills / round trips", "bars evaluated",
                           "inference latency per bar (batch 1, " })
    CHECK_MESSAGE(text.find(line) != std::string::npos, line);
  CHECK(backtest_summary(m.result, {}).find("inference latency") == std::string::npos);
  CHECK(format_number("%.2f", 1.234) == "1.23");
  CHECK(format_number("%.2f", std::nan("")) == "NaN");
}
