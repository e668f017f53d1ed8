// Forecast scoring (trading/train/evaluate.h): the one implementation of MSE, direction accuracy and
// the zero / persistence / always-up baselines, checked by hand on a small dataset; evaluate() is the
// score of predict_samples; the backtest report's forecast table shows the same numbers.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tensor/creation.h"
#include "tests/test_util.h"
#include "trading/backtest/model_backtest.h"
#include "trading/data/features.h"
#include "trading/data/synth.h"
#include "trading/train/evaluate.h"

using namespace attnlab;
using namespace attnlab::trading;

namespace {

TraderDataset dataset(size_t horizon) {
  data::SynthConfig sc;
  sc.n_symbols = 1, sc.n_bars = 240, sc.seed = 21, sc.signal = data::SignalKind::OwnMomentum;
  const data::OhlcvSeries s = data::generate_synthetic(sc).series[0];
  data::FeatureConfig fc;
  fc.features = {"log_return", "volatility"};
  return make_dataset(data::compute_features(s, fc), s.close, 8, horizon);
}

}  // namespace

TEST_CASE("score_forecast: MSE, direction and the baselines by hand; rows without a target left out") {
  for (const size_t h : {size_t(1), size_t(3)}) {
    INFO("horizon " << h);
    const TraderDataset ds = dataset(h);
    // The test split, then the last row of the data, whose target lies beyond it.
    std::vector<size_t> idx = ds.split.test;
    const size_t last = ds.features.rows() - 1;
    REQUIRE(std::isnan(ds.targets[last]));
    idx.push_back(last);
    std::vector<double> pred;
    for (size_t i = 0; i < idx.size(); ++i) pred.push_back(0.004 * std::cos(double(i)));
    const EvalResult e = score_forecast(ds, idx, pred, OutputType::regression);

    double se = 0, zse = 0, pse = 0;
    size_t n = 0, hit = 0, up = 0, phit = 0;
    for (size_t i = 0; i + 1 < idx.size(); ++i) {
      const size_t t = idx[i];
      const double y = ds.targets[t];
      double prev = 0;  // ln(close[t] / close[t-h])
      for (size_t k = t + 1 - h; k <= t; ++k) prev += ds.log_ret[k];
      ++n;
      se += (pred[i] - y) * (pred[i] - y);
      zse += y * y;
      pse += (prev - y) * (prev - y);
      hit += (pred[i] > 0) == (y > 0);
      phit += (prev > 0) == (y > 0);
      up += y > 0;
    }
    CHECK(e.n == n);
    CHECK(e.regression);
    CHECK(e.mse == doctest::Approx(se / double(n)).epsilon(1e-12));
    CHECK(e.zero_mse == doctest::Approx(zse / double(n)).epsilon(1e-12));
    CHECK(e.persistence_mse == doctest::Approx(pse / double(n)).epsilon(1e-12));
    CHECK(e.direction_accuracy == double(hit) / double(n));
    CHECK(e.persistence_direction_accuracy == double(phit) / double(n));
    CHECK(e.always_up_accuracy == double(up) / double(n));
    CHECK(e.predictions == pred);

    // Other heads: only the sign counts; no MSE of a probability or a position against a return.
    const EvalResult d = score_forecast(ds, idx, pred, OutputType::direction);
    CHECK(!d.regression);
    CHECK(std::isnan(d.mse));
    CHECK(d.direction_accuracy == e.direction_accuracy);
    CHECK(d.zero_mse == e.zero_mse);
    CHECK(d.to_json().at("mse") == "NaN");
    CHECK(d.table().find("GQATrader") != std::string::npos);
  }
  const TraderDataset ds = dataset(1);
  testing::check_error([&] { score_forecast(ds, {ds.split.test[0]}, {}, OutputType::regression); },
                       {"1 samples and 0 predictions"});
  testing::check_error([&] { score_forecast(ds, {ds.features.rows()}, {0.0}, OutputType::regression); },
                       {"past the data"});
}

TEST_CASE("evaluate is the score of predict_samples; the report's forecast table shows it") {
  const TraderDataset ds = dataset(1);
  TraderConfig c;
  c.input_dim = int64_t(ds.n_features());
  c.d_model = 8, c.n_heads = 2, c.n_kv_heads = 1, c.n_layers = 1, c.d_ff = 16, c.max_seq_len = 8;
  c.dropout = 0.0;
  c.backend = nn::AttentionBackend::math;
  manual_seed(2);
  GQATrader model(c);
  const EvalResult e = evaluate(model, ds, ds.split.val);
  const EvalResult s = score_forecast(ds, ds.split.val, predict_samples(model, ds, ds.split.val),
                                      OutputType::regression);
  CHECK(e.predictions == s.predictions);
  CHECK(e.mse == s.mse);
  CHECK(e.direction_accuracy == s.direction_accuracy);

  const report::ReportTable t = forecast_table(e, ds.horizon);
  REQUIRE(t.rows.size() == 4);
  CHECK(t.rows[0][1] == format_number("%.4e", e.mse));
  CHECK(t.rows[0][2] == format_number("%.2f %%", 100 * e.direction_accuracy));
  CHECK(t.rows[1][1] == format_number("%.4e", e.zero_mse));
  CHECK(t.rows[2][1] == format_number("%.4e", e.persistence_mse));
  CHECK(t.rows[3][2] == format_number("%.2f %%", 100 * e.always_up_accuracy));
  c.output_type = OutputType::direction;
  GQATrader direction(c);
  CHECK(forecast_table(evaluate(direction, ds, ds.split.val), ds.horizon).rows[0][1] == "-");
}
