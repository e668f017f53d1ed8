// Report writer: every file is produced and non-empty; PNGs are real PNGs when gnuplot exists; without
// gnuplot everything else is still written and a warning says so.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "trading/backtest/engine.h"
#include "trading/report/files.h"
#include "trading/report/plot.h"
#include "trading/report/report.h"

namespace fs = std::filesystem;
using namespace attnlab;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("attnlab_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool is_png(const fs::path& p) {
  const std::string s = slurp(p);
  return s.size() > 8 && s.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

// A 60-bar, 2-asset daily backtest with a trade log.
struct Fixture {
  std::vector<std::int64_t> time;
  std::vector<double> open, close, pred;
  backtest::BacktestConfig cfg;
  backtest::BacktestResult result;
  Fixture() {
    const int T = 60, N = 2;
    for (int t = 0; t < T; ++t) {
      time.push_back(1'700'000'000'000 + static_cast<std::int64_t>(t) * 86'400'000);
      for (int i = 0; i < N; ++i) {
        open.push_back(100 + 10 * std::sin(0.2 * t + i));
        close.push_back(100 + 10 * std::sin(0.2 * t + i + 0.1));
        pred.push_back(0.01 * std::cos(0.2 * t + i));
      }
    }
    backtest::Panel p;
    p.n_bars = T;
    p.n_assets = N;
    p.time_ms = time;
    p.open = open;
    p.close = close;
    p.symbols = {"BTCUSDT", "ETH,USDT"};  // a comma must be quoted in CSV
    cfg.max_position = 0.5;
    cfg.market = backtest::Market::crypto;
    result = backtest::run_backtest(p, pred, cfg);
  }
};

report::ReportInput make_input(const Fixture& f) {
  report::ReportInput in;
  in.title = "test report";
  in.backtest = &f.result;
  in.config = &f.cfg;
  for (int i = 0; i < 200; ++i) in.latency_ms.push_back(1.0 + 0.01 * (i % 17));
  in.bars_title = "KV-cache bytes";
  in.bars_ylabel = "bytes";
  in.bars = {{"MHA", 4096}, {"GQA (2 groups)", 1024}, {"MQA", 512}};
  in.heatmap_title = "attention";
  in.heatmap_rows = 4;
  in.heatmap_cols = 5;
  for (int k = 0; k < 20; ++k) in.heatmap.push_back(k / 20.0);
  return in;
}

}  // namespace

TEST_CASE("report: every file is written and non-empty") {
  const Fixture f;
  const fs::path dir = fresh_dir("report");
  const report::Gnuplot& gp = report::Gnuplot::detected();
  const report::ReportOutput out = report::write_report(dir, make_input(f), gp);

  for (const char* name : {"metrics.json", "equity.csv", "trades.csv", "round_trips.csv", "latency.csv",
                           "report.html", "equity.dat", "equity.gp", "drawdown.dat", "drawdown.gp",
                           "returns_hist.dat", "returns_hist.gp", "latency_hist.dat", "latency_hist.gp",
                           "bars.dat", "bars.gp", "heatmap.dat", "heatmap.gp"}) {
    INFO(name);
    REQUIRE(fs::exists(dir / name));
    CHECK(fs::file_size(dir / name) > 0);
  }
  for (const fs::path& p : out.files) CHECK(fs::exists(p));
  // No temporaries left behind by the atomic writes or the renders.
  for (const auto& e : fs::directory_iterator(dir))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);

  if (gp.available()) {
    CHECK(out.plots_rendered);
    for (const char* png : {"equity.png", "drawdown.png", "returns_hist.png", "latency_hist.png", "bars.png",
                            "heatmap.png"}) {
      INFO(png);
      CHECK(is_png(dir / png));
    }
    CHECK(slurp(dir / "report.html").find("<img src=\"equity.png\"") != std::string::npos);
  } else {
    MESSAGE("gnuplot not found: PNG checks skipped");
  }

  // metrics.json holds the same numbers as the result; non-finite values are strings.
  const nlohmann::json j = nlohmann::json::parse(slurp(dir / "metrics.json"));
  CHECK(j["strategy"]["total_return"].get<double>() == doctest::Approx(f.result.metrics.total_return));
  CHECK(j["benchmark"]["sharpe"].get<double>() == doctest::Approx(f.result.benchmark_metrics.sharpe));
  CHECK(j["config"]["execution"] == "next_open");
  CHECK(j["latency"]["count"] == 200);
  CHECK(j["n_assets"] == 2);
  CHECK(report::json_number(NAN) == "NaN");
  CHECK(report::json_number(-INFINITY) == "-inf");

  // CSV shapes: header + one line per bar / fill; the comma in a symbol is quoted.
  const std::string eq = slurp(dir / "equity.csv");
  CHECK(std::count(eq.begin(), eq.end(), '\n') == 61);
  CHECK(eq.find("w_BTCUSDT,\"w_ETH,USDT\"") != std::string::npos);
  const std::string tr = slurp(dir / "trades.csv");
  CHECK(static_cast<std::size_t>(std::count(tr.begin(), tr.end(), '\n')) == f.result.fills.size() + 1);
  CHECK(tr.find("\"ETH,USDT\"") != std::string::npos);
  const std::string lat = slurp(dir / "latency.csv");
  CHECK(std::count(lat.begin(), lat.end(), '\n') == 201);
  fs::remove_all(dir);
}

TEST_CASE("report: without gnuplot everything else is written and a warning says so") {
  const Fixture f;
  const fs::path dir = fresh_dir("report_nognuplot");
  const report::Gnuplot none;  // as if gnuplot were not installed
  const report::ReportOutput out = report::write_report(dir, make_input(f), none);
  CHECK_FALSE(out.plots_rendered);
  REQUIRE_FALSE(out.warnings.empty());
  CHECK(out.warnings[0].find("gnuplot") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "equity.png"));
  for (const char* name : {"metrics.json", "equity.csv", "trades.csv", "latency.csv", "report.html",
                           "equity.gp", "equity.dat", "heatmap.gp"}) {
    INFO(name);
    CHECK(fs::file_size(dir / name) > 0);
  }
  const nlohmann::json j = nlohmann::json::parse(slurp(dir / "metrics.json"));
  CHECK_FALSE(j["warnings"].empty());
  fs::remove_all(dir);
}

TEST_CASE("report: a latency-only report (no backtest)") {
  const fs::path dir = fresh_dir("report_latency");
  report::ReportInput in;
  in.latency_ms = {1, 2, 3, 4};
  const report::ReportOutput out = report::write_report(dir, in, report::Gnuplot{});
  CHECK(fs::file_size(dir / "latency.csv") > 0);
  CHECK(fs::file_size(dir / "report.html") > 0);
  CHECK_FALSE(fs::exists(dir / "equity.csv"));
  const nlohmann::json j = nlohmann::json::parse(slurp(dir / "metrics.json"));
  CHECK(j["latency"]["p50_ms"].get<double>() == doctest::Approx(2.5));
  fs::remove_all(dir);
}

TEST_CASE("plots: generic functions, re-renderable scripts") {
  const fs::path dir = fresh_dir("plots");
  const report::Gnuplot& gp = report::Gnuplot::detected();
  report::PlotOptions o;
  o.title = "loss";
  const std::vector<double> x = {1, 2, 3, 4};
  const report::PlotResult r =
      report::line_plot(dir, "loss", x, {{"train", {1.0, 0.5, 0.3, 0.2}}, {"val", {1.1, 0.7, NAN, 0.4}}}, o, gp);
  CHECK(fs::file_size(r.data) > 0);
  CHECK(slurp(r.script).find("'loss.dat'") != std::string::npos);  // relative path: directory can move
  CHECK(slurp(r.data).find("NaN") != std::string::npos);
  if (gp.available()) {
    CHECK(r.rendered);
    CHECK(is_png(r.png));
    // The written script renders on its own, as a user would run it.
    fs::remove(r.png);
    const std::string cmd = "cd '" + dir.string() + "' && '" + gp.executable + "' loss.gp 2>/dev/null";
    CHECK(std::system(cmd.c_str()) == 0);
    CHECK(is_png(r.png));
  } else {
    MESSAGE("gnuplot not found: PNG checks skipped");
    CHECK_FALSE(r.rendered);
  }
  CHECK_THROWS_AS(report::line_plot(dir, "bad", x, {{"short", {1.0}}}, o, gp), attnlab::Error);
  CHECK_THROWS_AS(report::line_plot(dir, "../escape", x, {}, o, gp), attnlab::Error);
  CHECK_THROWS_AS(report::heatmap(dir, "hm", std::vector<double>(5), 2, 3, o, gp), attnlab::Error);
  const report::PlotResult empty = report::histogram_plot(dir, "empty", std::vector<double>{NAN}, 10, o, gp);
  CHECK_FALSE(empty.rendered);
  CHECK_FALSE(empty.message.empty());
  fs::remove_all(dir);
}

TEST_CASE("histogram counts follow numpy.histogram") {
  // [0, 4] in 2 bins: [0, 2) and [2, 4] (the last bin closed).
  const std::vector<std::int64_t> c = report::histogram_counts(std::vector<double>{0, 1, 2, 3, 4, 5, NAN}, 2, 0, 4);
  CHECK(c == std::vector<std::int64_t>{2, 3});
}

TEST_CASE("number text and atomic writes") {
  CHECK(report::number_text(0.1) == "0.1");
  CHECK(report::number_text(-2.5e-7) == "-2.5e-07");
  CHECK(report::number_text(NAN) == "NaN");
  CHECK(report::number_text(INFINITY) == "inf");
  const fs::path dir = fresh_dir("atomic");
  report::write_file_atomic(dir / "sub" / "a.txt", "first");
  report::write_file_atomic(dir / "sub" / "a.txt", "second");
  CHECK(slurp(dir / "sub" / "a.txt") == "second");
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir / "sub")) (void)e, ++n;
  CHECK(n == 1);
  fs::remove_all(dir);
}

TEST_CASE("report: clustered bars, tables and extra files; report.html links every PNG and file") {
  const Fixture f;
  const fs::path dir = fresh_dir("report_more");
  const report::Gnuplot& gp = report::Gnuplot::detected();
  report::ReportInput in = make_input(f);
  report::GroupedBars g;
  g.stem = "kv_cache";
  g.title = "KV-cache KiB per sequence";
  g.ylabel = "KiB";
  g.categories = {"f32", "bf16", "int8"};
  g.series = {{"MHA", {64, 32, 17}}, {"GQA", {16, 8, 4.25}}, {"MQA", {8, 4, 2.125}}};
  in.grouped_bars.push_back(g);
  in.tables.push_back({"Forecast <quality>", "a note", {"model", "MSE"}, {{"GQA", "1e-4"}, {"zero", "2e-4"}}});
  in.extra_files.emplace_back("predictions.csv", "row,prediction\n0,0.1\n");
  const report::ReportOutput out = report::write_report(dir, in, gp);
  CHECK(fs::file_size(dir / "kv_cache.dat") > 0);
  CHECK(slurp(dir / "kv_cache.gp").find("clustered") != std::string::npos);
  CHECK(slurp(dir / "predictions.csv") == "row,prediction\n0,0.1\n");
  const std::string html = slurp(dir / "report.html");
  CHECK(html.find("<h2>Forecast &lt;quality&gt;</h2>") != std::string::npos);
  CHECK(html.find("<td>1e-4</td>") != std::string::npos);
  CHECK(html.find("href=\"predictions.csv\"") != std::string::npos);
  int pngs = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".png") {
      ++pngs;
      INFO(e.path().filename().string() << " is not referenced by report.html");
      CHECK(html.find("src=\"" + e.path().filename().string() + "\"") != std::string::npos);
    }
  if (gp.available()) {
    CHECK(out.plots_rendered);
    CHECK(pngs == 7);  // equity, drawdown, returns, latency, bars, kv_cache, heatmap
    CHECK(is_png(dir / "kv_cache.png"));
  }
  const nlohmann::json j = nlohmann::json::parse(slurp(dir / "metrics.json"));
  CHECK(j["charts"]["kv_cache"]["series"]["GQA"][2].get<double>() == 4.25);
  CHECK(j["charts"]["kv_cache"]["categories"].size() == 3);

  // Inconsistent input is refused before anything is written.
  report::ReportInput bad;
  bad.tables.push_back({"t", "", {"a", "b"}, {{"only one"}}});
  CHECK_THROWS_WITH_AS(report::write_report(dir / "bad", bad, gp), doctest::Contains("table 't'"), attnlab::Error);
  CHECK_FALSE(fs::exists(dir / "bad"));
  report::ReportInput clash;
  clash.extra_files.emplace_back("report.html", "x");
  CHECK_THROWS_AS(report::write_report(dir / "bad", clash, gp), attnlab::Error);
  report::GroupedBars short_series = g;
  short_series.series[0].y.pop_back();
  CHECK_THROWS_AS(report::grouped_bar_chart(dir, "x", short_series.categories, short_series.series, {}, gp),
                  attnlab::Error);
  fs::remove_all(dir);
}

TEST_CASE("plots: small multiples of bar charts") {
  const fs::path dir = fresh_dir("panels");
  const report::Gnuplot& gp = report::Gnuplot::detected();
  report::PlotOptions o;
  o.title = "MHA vs GQA vs MQA";
  const report::PlotResult r = report::bar_panels(
      dir, "cmp", {"MHA", "GQA", "MQA"}, {{"MSE", {1.0, 1.1, 1.2}}, {"Sharpe", {0.5, -0.2, 0.1}}}, 2, o, gp);
  const std::string sc = slurp(r.script);
  CHECK(sc.find("multiplot layout 1,2") != std::string::npos);
  CHECK(slurp(r.data).find("\"GQA\" 1.1 -0.2") != std::string::npos);
  if (gp.available()) CHECK(is_png(r.png));
  fs::remove_all(dir);
}

TEST_CASE("time axis format follows the data's span and spacing (daily bars never show hours)") {
  const double day = 86'400'000.0, hour = 3'600'000.0;
  auto series = [](double step, int n) {
    std::vector<double> x;
    for (int i = 0; i < n; ++i) x.push_back(1.6e12 + i * step);
    return x;
  };
  CHECK(report::time_axis_format(series(day, 5000)) == "%Y");        // 20 years of daily bars
  CHECK(report::time_axis_format(series(day, 760)) == "%Y-%m");      // a 3-year test split
  CHECK(report::time_axis_format(series(day, 60)) == "%Y-%m-%d");
  CHECK(report::time_axis_format(series(day, 3)) == "%Y-%m-%d");
  CHECK(report::time_axis_format(series(hour, 24 * 60)) == "%Y-%m-%d");
  CHECK(report::time_axis_format(series(hour, 24 * 7)) == "%m-%d %H:%M");
  CHECK(report::time_axis_format(series(60'000.0, 120)) == "%H:%M");
}
