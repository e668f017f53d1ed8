#include "trading/report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "kernels/error.h"
#include "trading/report/files.h"

namespace attnlab::report {

namespace fs = std::filesystem;
namespace bt = attnlab::backtest;

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

// Numbers for people: percentages with 2 decimals, ratios with 3 significant decimals.
std::string fmt(double v, const char* spec) {
  if (!std::isfinite(v)) return number_text(v);
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}
std::string pct(double v) { return std::isfinite(v) ? fmt(100.0 * v, "%.2f %%") : number_text(v); }

void add(std::string& s, double v) {
  s += ',';
  append_number(s, v);
}

const char* execution_name(bt::Execution e) { return e == bt::Execution::next_open ? "next_open" : "next_close"; }

}  // namespace

nlohmann::json json_number(double v) {
  if (std::isfinite(v)) return v;
  return number_text(v);
}

nlohmann::json to_json(const bt::Metrics& m) {
  nlohmann::json j;
  j["n_bars"] = m.n_bars;
  j["annualization"] = json_number(m.annualization);
  j["total_return"] = json_number(m.total_return);
  j["cagr"] = json_number(m.cagr);
  j["volatility"] = json_number(m.volatility);
  j["sharpe"] = json_number(m.sharpe);
  j["sortino"] = json_number(m.sortino);
  j["max_drawdown"] = json_number(m.max_drawdown);
  j["calmar"] = json_number(m.calmar);
  j["win_rate_bars"] = json_number(m.win_rate_bars);
  j["winning_bars"] = m.winning_bars;
  j["losing_bars"] = m.losing_bars;
  j["profit_factor"] = json_number(m.profit_factor);
  j["turnover_per_bar"] = json_number(m.turnover_per_bar);
  j["turnover_annual"] = json_number(m.turnover_annual);
  j["exposure"] = json_number(m.exposure);
  j["fills"] = m.fills;
  j["round_trips"] = m.round_trips;
  j["open_trips"] = m.open_trips;
  j["win_rate_trades"] = json_number(m.win_rate_trades);
  return j;
}

nlohmann::json to_json(const bt::BacktestConfig& c) {
  nlohmann::json j;
  j["initial_capital"] = c.initial_capital;
  j["sizing"] = c.sizing == bt::Sizing::tanh ? "tanh" : "threshold";
  j["tanh_scale"] = c.tanh_scale;
  j["max_position"] = c.max_position;
  j["threshold"] = c.threshold;
  j["threshold_full"] = c.threshold_full;
  j["asset_limit"] = c.asset_limit;
  j["gross_limit"] = c.gross_limit;
  j["execution"] = execution_name(c.execution);
  j["cost_bps"] = c.cost_bps;
  j["slippage_bps"] = c.slippage_bps;
  j["rebalance_band"] = c.rebalance_band;
  j["nan_policy"] = c.nan_policy == bt::NanPolicy::hold ? "hold" : "flat";
  j["annualization"] = c.annualization;
  j["market"] = bt::market_name(c.market);
  return j;
}

nlohmann::json to_json(const bt::LatencySummary& s) {
  return {{"count", s.count},          {"mean_ms", json_number(s.mean_ms)}, {"min_ms", json_number(s.min_ms)},
          {"p50_ms", json_number(s.p50_ms)}, {"p90_ms", json_number(s.p90_ms)},
          {"p99_ms", json_number(s.p99_ms)}, {"max_ms", json_number(s.max_ms)}};
}

std::string equity_csv(const bt::BacktestResult& r) {
  const std::size_t T = r.equity.size(), N = static_cast<std::size_t>(r.n_assets);
  const bool w = r.weights.size() == T * N;
  const double start = T ? r.equity[0] : 1.0, bstart = T ? r.benchmark_equity[0] : 1.0;
  const std::vector<double> dd = bt::drawdown_curve(r.equity, start);
  const std::vector<double> bdd = bt::drawdown_curve(r.benchmark_equity, bstart);
  std::string s =
      "bar,time_ms,equity,benchmark,drawdown,benchmark_drawdown,return,benchmark_return,cost,turnover,"
      "gross_exposure";
  if (w)
    for (const std::string& sym : r.symbols) s += "," + csv_field("w_" + sym);
  s += '\n';
  s.reserve(s.size() + T * (120 + 12 * (w ? N : 0)));
  for (std::size_t t = 0; t < T; ++t) {
    s += std::to_string(t) + ',' + std::to_string(r.time_ms[t]);
    add(s, r.equity[t]);
    add(s, r.benchmark_equity[t]);
    add(s, dd[t]);
    add(s, bdd[t]);
    add(s, r.returns[t]);
    add(s, r.benchmark_returns[t]);
    add(s, r.costs[t]);
    add(s, r.turnover[t]);
    add(s, r.gross_exposure[t]);
    if (w)
      for (std::size_t i = 0; i < N; ++i) add(s, r.weights[t * N + i]);
    s += '\n';
  }
  return s;
}

std::string trades_csv(const bt::BacktestResult& r) {
  std::string s =
      "bar,time_ms,symbol,side,weight_before,weight_target,delta_weight,delta_units,mid_price,fill_price,"
      "cost,predicted_return,realized_return\n";
  for (const bt::Fill& f : r.fills) {
    s += std::to_string(f.bar) + ',' + std::to_string(f.time_ms) + ',' +
         csv_field(r.symbols[static_cast<std::size_t>(f.asset)]) + ',' + (f.side > 0 ? "buy" : "sell");
    add(s, f.weight_before);
    add(s, f.weight_target);
    add(s, f.weight_target - f.weight_before);
    add(s, f.delta_units);
    add(s, f.mid_price);
    add(s, f.fill_price);
    add(s, f.cost);
    add(s, f.predicted_return);
    add(s, f.realized_return);
    s += '\n';
  }
  return s;
}

std::string round_trips_csv(const bt::BacktestResult& r) {
  std::string s = "symbol,side,entry_bar,exit_bar,entry_time_ms,exit_time_ms,pnl,open_at_end\n";
  for (const bt::RoundTrip& t : r.round_trips) {
    s += csv_field(r.symbols[static_cast<std::size_t>(t.asset)]) + ',' + (t.side > 0 ? "long" : "short") +
         ',' + std::to_string(t.entry_bar) + ',' + std::to_string(t.exit_bar) + ',' +
         std::to_string(r.time_ms[static_cast<std::size_t>(t.entry_bar)]) + ',' +
         (t.open_at_end() ? std::string() : std::to_string(r.time_ms[static_cast<std::size_t>(t.exit_bar)]));
    add(s, t.pnl);
    s += t.open_at_end() ? ",1\n" : ",0\n";
  }
  return s;
}

std::string latency_csv(const std::vector<double>& lat) {
  std::string s = "step,latency_ms\n";
  for (std::size_t i = 0; i < lat.size(); ++i) {
    s += std::to_string(i);
    add(s, lat[i]);
    s += '\n';
  }
  return s;
}

ReportOutput write_report(const fs::path& dir, const ReportInput& in, const Gnuplot& gp) {
  for (const ReportTable& t : in.tables)
    for (const auto& r : t.rows)
      ATTNLAB_CHECK(r.size() == t.header.size(), "write_report: table '", t.title, "' has a row of ", r.size(),
                    " cells under a header of ", t.header.size());
  for (const auto& [name, content] : in.extra_files)
    ATTNLAB_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "report.html" &&
                      name != "metrics.json",
                  "write_report: extra file name '", name, "' must be a plain file name other than the report's own");
  ReportOutput out;
  std::error_code ec;
  fs::create_directories(dir, ec);
  ATTNLAB_CHECK(!ec, "write_report: cannot create directory ", dir.string(), ": ", ec.message());
  auto write = [&](const std::string& name, const std::string& content) {
    write_file_atomic(dir / name, content);
    out.files.push_back(dir / name);
  };
  std::vector<std::pair<std::string, std::string>> images;  // (file, caption) for the HTML
  bool all_rendered = true;
  auto plotted = [&](const PlotResult& p, const std::string& caption) {
    out.files.push_back(p.data);
    out.files.push_back(p.script);
    if (p.rendered) {
      out.files.push_back(p.png);
      images.emplace_back(p.png.filename().string(), caption);
    } else {
      all_rendered = false;
      out.warnings.push_back(p.message);
    }
  };
  if (!gp.available())
    out.warnings.push_back("gnuplot not found: PNG plots skipped (install gnuplot-nox, or set ATTNLAB_GNUPLOT)");

  const bt::BacktestResult* r = in.backtest;
  if (r) {
    write("equity.csv", equity_csv(*r));
    write("trades.csv", trades_csv(*r));
    write("round_trips.csv", round_trips_csv(*r));
    std::vector<double> x(r->time_ms.begin(), r->time_ms.end());
    PlotOptions o;
    o.x_is_time_ms = true;
    o.title = in.title + ": equity";
    o.ylabel = "equity";
    plotted(line_plot(dir, "equity", x, {{"strategy", r->equity}, {"buy & hold", r->benchmark_equity}}, o, gp),
            "Equity: strategy vs equal-weight buy and hold");
    o.title = in.title + ": drawdown";
    o.ylabel = "drawdown (fraction of peak)";
    o.fill_to_zero = true;
    const double start = r->equity.empty() ? 1.0 : r->equity[0];
    plotted(line_plot(dir, "drawdown", x, {{"strategy", bt::drawdown_curve(r->equity, start)}}, o, gp),
            "Drawdown from the running peak (the starting capital counts)");
    PlotOptions h;
    h.title = in.title + ": per-bar returns";
    h.xlabel = "return per bar";
    h.ylabel = "bars";
    h.vlines = {{"r = 0", 0.0}};
    const std::vector<double> rets(r->returns.begin() + (r->returns.empty() ? 0 : 1), r->returns.end());
    plotted(histogram_plot(dir, "returns_hist", rets, 50, h, gp), "Distribution of per-bar returns");
  }

  const bt::LatencySummary lat = bt::summarize_latency(in.latency_ms);
  write("latency.csv", latency_csv(in.latency_ms));
  if (!in.latency_ms.empty()) {
    PlotOptions h;
    h.title = in.latency_title;
    h.xlabel = "latency (ms)";
    h.ylabel = "steps";
    h.vlines = {{"p50 " + fmt(lat.p50_ms, "%.3g ms"), lat.p50_ms}, {"p99 " + fmt(lat.p99_ms, "%.3g ms"), lat.p99_ms}};
    // Latencies are long-tailed (a preempted step costs 10-100x the median): log bins keep both visible.
    h.log_x = lat.min_ms > 0 && lat.max_ms > 10 * lat.p50_ms;
    if (h.log_x) h.xlabel = "latency (ms, log scale)";
    plotted(histogram_plot(dir, "latency_hist", in.latency_ms, 50, h, gp), in.latency_title);
  }
  if (!in.bars.empty()) {
    PlotOptions b;
    b.title = in.bars_title;
    b.ylabel = in.bars_ylabel;
    plotted(bar_chart(dir, "bars", in.bars, b, gp), in.bars_title);
  }
  if (!in.heatmap.empty() || in.heatmap_rows || in.heatmap_cols) {
    PlotOptions m;
    m.title = in.heatmap_title;
    m.xlabel = in.heatmap_xlabel;
    m.ylabel = in.heatmap_ylabel;
    m.width = m.height = 700;
    plotted(heatmap(dir, "heatmap", in.heatmap, in.heatmap_rows, in.heatmap_cols, m, gp), in.heatmap_title);
  }
  nlohmann::json charts = nlohmann::json::object();
  for (const GroupedBars& g : in.grouped_bars) {
    PlotOptions b;
    b.title = g.title;
    b.ylabel = g.ylabel;
    b.value_format = g.value_format;
    plotted(grouped_bar_chart(dir, g.stem, g.categories, g.series, b, gp), g.title);
    nlohmann::json series = nlohmann::json::object();
    for (const Series& s : g.series) {
      nlohmann::json v = nlohmann::json::array();
      for (double y : s.y) v.push_back(json_number(y));
      series[s.label] = v;
    }
    charts[g.stem] = {{"title", g.title}, {"unit", g.ylabel}, {"categories", g.categories}, {"series", series}};
  }
  for (const auto& [name, content] : in.extra_files) write(name, content);
  out.plots_rendered = all_rendered && gp.available();

  // metrics.json
  nlohmann::json j;
  j["title"] = in.title;
  if (r) {
    j["n_bars"] = r->n_bars;
    j["n_assets"] = r->n_assets;
    j["symbols"] = r->symbols;
    j["strategy"] = to_json(r->metrics);
    j["benchmark"] = to_json(r->benchmark_metrics);
    j["final_equity"] = json_number(r->equity.back());
    double costs = 0;
    for (double c : r->costs) costs += c;
    j["total_costs"] = json_number(costs);
  }
  if (in.config) j["config"] = to_json(*in.config);
  j["latency"] = to_json(lat);
  if (!in.bars.empty()) {
    nlohmann::json b = nlohmann::json::array();
    for (const auto& [label, v] : in.bars) b.push_back({{"label", label}, {"value", json_number(v)}});
    j["bars"] = {{"title", in.bars_title}, {"unit", in.bars_ylabel}, {"values", b}};
  }
  if (!charts.empty()) j["charts"] = charts;
  if (!in.extra.is_null()) j["extra"] = in.extra;
  j["warnings"] = out.warnings;
  write("metrics.json", j.dump(2) + "\n");

  // report.html
  std::string h = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html_escape(in.title) +
                  "</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
                  "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:3px 10px;text-align:right}"
                  "th:first-child,td:first-child{text-align:left}img{max-width:100%}</style></head><body>\n";
  h += "<h1>" + html_escape(in.title) + "</h1>\n";
  for (const std::string& w : out.warnings) h += "<p><b>Warning:</b> " + html_escape(w) + "</p>\n";
  if (r) {
    const bt::Metrics &s = r->metrics, &b = r->benchmark_metrics;
    h += "<h2>Performance</h2>\n<p>" + std::to_string(r->n_assets) + " assets, " +
         std::to_string(r->n_bars) + " bars (" + std::to_string(s.n_bars) +
         " evaluated), annualization factor " + fmt(r->annualization, "%g") +
         " bars/year. Formulas: docs/backtesting.md.</p>\n";
    h += "<table><tr><th>metric</th><th>strategy</th><th>buy &amp; hold</th></tr>\n";
    auto row = [&](const std::string& name, const std::string& a, const std::string& c) {
      h += "<tr><td>" + name + "</td><td>" + a + "</td><td>" + c + "</td></tr>\n";
    };
    row("total return", pct(s.total_return), pct(b.total_return));
    row("CAGR", pct(s.cagr), pct(b.cagr));
    row("volatility (ann.)", pct(s.volatility), pct(b.volatility));
    row("Sharpe", fmt(s.sharpe, "%.3f"), fmt(b.sharpe, "%.3f"));
    row("Sortino", fmt(s.sortino, "%.3f"), fmt(b.sortino, "%.3f"));
    row("max drawdown", pct(s.max_drawdown), pct(b.max_drawdown));
    row("Calmar", fmt(s.calmar, "%.3f"), fmt(b.calmar, "%.3f"));
    row("win rate (bars with r&gt;0 / r&ne;0)", pct(s.win_rate_bars), pct(b.win_rate_bars));
    row("profit factor", fmt(s.profit_factor, "%.3f"), fmt(b.profit_factor, "%.3f"));
    row("turnover per bar", fmt(s.turnover_per_bar, "%.4f"), fmt(b.turnover_per_bar, "%.4f"));
    row("turnover (ann.)", fmt(s.turnover_annual, "%.2f"), fmt(b.turnover_annual, "%.2f"));
    row("exposure", pct(s.exposure), pct(b.exposure));
    row("fills", std::to_string(s.fills), std::to_string(b.fills));
    row("closed round trips", std::to_string(s.round_trips), "");
    row("win rate (round trips)", pct(s.win_rate_trades), "");
    h += "</table>\n";
  }
  if (lat.count > 0) {
    h += "<h2>Latency</h2>\n<table><tr><th>count</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th>"
         "<th>max</th></tr>\n<tr><td>" +
         std::to_string(lat.count) + "</td><td>" + fmt(lat.mean_ms, "%.4f ms") + "</td><td>" +
         fmt(lat.p50_ms, "%.4f ms") + "</td><td>" + fmt(lat.p90_ms, "%.4f ms") + "</td><td>" +
         fmt(lat.p99_ms, "%.4f ms") + "</td><td>" + fmt(lat.max_ms, "%.4f ms") + "</td></tr></table>\n";
  }
  for (const ReportTable& t : in.tables) {
    h += "<h2>" + html_escape(t.title) + "</h2>\n";
    if (!t.note.empty()) h += "<p>" + html_escape(t.note) + "</p>\n";
    h += "<table><tr>";
    for (const std::string& c : t.header) h += "<th>" + html_escape(c) + "</th>";
    h += "</tr>\n";
    for (const auto& r : t.rows) {
      h += "<tr>";
      for (const std::string& c : r) h += "<td>" + html_escape(c) + "</td>";
      h += "</tr>\n";
    }
    h += "</table>\n";
  }
  if (in.config) h += "<h2>Configuration</h2>\n<pre>" + html_escape(to_json(*in.config).dump(2)) + "</pre>\n";
  if (!images.empty()) h += "<h2>Plots</h2>\n";
  for (const auto& [file, caption] : images)
    h += "<figure><img src=\"" + html_escape(file) + "\" alt=\"" + html_escape(caption) +
         "\"><figcaption>" + html_escape(caption) + "</figcaption></figure>\n";
  h += "<h2>Files</h2>\n<ul>";
  std::vector<std::string> files = {"metrics.json", "equity.csv", "trades.csv", "round_trips.csv", "latency.csv"};
  for (const auto& [name, content] : in.extra_files) files.push_back(name);
  for (const std::string& f : files)
    if (fs::exists(dir / f)) h += "<li><a href=\"" + html_escape(f) + "\">" + html_escape(f) + "</a></li>";
  h += "</ul>\n</body></html>\n";
  write("report.html", h);
  return out;
}

}  // namespace attnlab::report
