#include "trading/report/plot.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "kernels/error.h"
#include "trading/report/files.h"

namespace attnlab::report {

namespace fs = std::filesystem;

namespace {

// Single-quoted shell word.
std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Single-quoted gnuplot string ('' is gnuplot's escaped quote); noenhanced mode keeps _ and ^ literal.
std::string gp_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

int run_shell(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

void check_stem(const std::string& stem) {
  ATTNLAB_CHECK(!stem.empty() && std::all_of(stem.begin(), stem.end(),
                                             [](char c) {
                                               return std::isalnum(static_cast<unsigned char>(c)) ||
                                                      c == '_' || c == '-' || c == '.';
                                             }),
                "plot: file stem '", stem, "' must be non-empty and use only [A-Za-z0-9_.-]");
}

// Script preamble shared by every plot: terminal, output (overridable), titles, grid.
std::string preamble(const std::string& stem, const PlotOptions& o, const Gnuplot& gp) {
  std::ostringstream s;
  s << "# Written by attnlab. Re-render with:  gnuplot " << stem << ".gp  (from this directory)\n"
    << "if (!exists('outfile')) outfile = '" << stem << ".png'\n"
    << "set terminal " << (gp.terminal.empty() ? "pngcairo" : gp.terminal) << " size " << o.width << ","
    << o.height << " noenhanced\n"
    << "set output outfile\n"
    << "set datafile missing 'NaN'\n"
    << "set grid\n"
    << "set title " << gp_quote(o.title) << "\n"
    << "set xlabel " << gp_quote(o.xlabel) << "\n"
    << "set ylabel " << gp_quote(o.ylabel) << "\n";
  if (o.log_y) s << "set logscale y\n";
  for (const auto& [label, x] : o.vlines) {
    std::string xs = number_text(x);
    s << "set arrow from " << xs << ", graph 0 to " << xs << ", graph 1 nohead front dashtype 2 lw 2\n"
      << "set label " << gp_quote(label) << " at " << xs << ", graph 0.95 left front offset 0.5,0\n";
  }
  return s.str();
}

// Writes data and script, then renders <stem>.png via a temporary name.
PlotResult render(const fs::path& dir, const std::string& stem, const std::string& data,
                  const std::string& script, const Gnuplot& gp, bool have_data) {
  PlotResult r;
  r.data = dir / (stem + ".dat");
  r.script = dir / (stem + ".gp");
  r.png = dir / (stem + ".png");
  write_file_atomic(r.data, data);
  write_file_atomic(r.script, script);
  if (!have_data) {
    r.message = "no data to plot in " + stem;
    return r;
  }
  if (!gp.available()) {
    r.message = "gnuplot not found (install gnuplot-nox or set ATTNLAB_GNUPLOT); " + stem +
                ".png not rendered, its .dat and .gp files are written";
    return r;
  }
  const std::string tmp = stem + ".png.tmp." + std::to_string(::getpid());
  const std::string err = stem + ".err." + std::to_string(::getpid());
  const std::string cmd = "cd " + shell_quote(dir.string()) + " && " + shell_quote(gp.executable) +
                          " -e " + shell_quote("outfile='" + tmp + "'") + " " + shell_quote(stem + ".gp") +
                          " >/dev/null 2>" + shell_quote(err);
  const int rc = run_shell(cmd);
  std::error_code ec;
  const bool produced = fs::exists(dir / tmp, ec) && fs::file_size(dir / tmp, ec) > 0;
  if (rc == 0 && produced) {
    replace_file(dir / tmp, r.png);
    r.rendered = true;
  } else {
    std::ifstream in(dir / err);
    std::stringstream msg;
    msg << in.rdbuf();
    r.message = "gnuplot failed on " + stem + ".gp (exit " + std::to_string(rc) + "): " + msg.str();
    fs::remove(dir / tmp, ec);
  }
  fs::remove(dir / err, ec);
  return r;
}

}  // namespace

std::string time_axis_format(std::span<const double> time_ms) {
  constexpr double kDay = 86'400'000.0;
  std::vector<double> steps;
  for (std::size_t i = 1; i < time_ms.size(); ++i)
    if (std::isfinite(time_ms[i]) && std::isfinite(time_ms[i - 1])) steps.push_back(time_ms[i] - time_ms[i - 1]);
  if (steps.empty()) return "%Y-%m-%d %H:%M";
  std::nth_element(steps.begin(), steps.begin() + std::ptrdiff_t(steps.size() / 2), steps.end());
  const double step = steps[steps.size() / 2];
  const double span = time_ms.back() - time_ms.front();
  if (span > 6 * 365 * kDay) return "%Y";
  if (span > 120 * kDay) return "%Y-%m";
  if (step >= kDay || span > 20 * kDay) return "%Y-%m-%d";
  if (span > 2 * kDay) return "%m-%d %H:%M";
  return "%H:%M";
}

Gnuplot Gnuplot::find() {
  Gnuplot g;
  if (const char* env = std::getenv("ATTNLAB_GNUPLOT")) {
    const std::string e = env;
    if (e.empty() || e == "none") return g;
    g.executable = e;
  } else if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    std::string d;
    while (std::getline(ss, d, ':')) {
      const fs::path p = fs::path(d.empty() ? "." : d) / "gnuplot";
      if (::access(p.c_str(), X_OK) == 0) {
        g.executable = p.string();
        break;
      }
    }
  }
  if (g.executable.empty()) return g;
  // Probe: a gnuplot that cannot even start is treated as missing; one without cairo falls back to png.
  const std::string q = shell_quote(g.executable);
  if (run_shell(q + " -e 'set terminal png' >/dev/null 2>&1") != 0) {
    g.executable.clear();
    return g;
  }
  g.terminal = run_shell(q + " -e 'set terminal pngcairo' >/dev/null 2>&1") == 0 ? "pngcairo" : "png";
  return g;
}

const Gnuplot& Gnuplot::detected() {
  static const Gnuplot g = find();
  return g;
}

std::vector<std::int64_t> histogram_counts(std::span<const double> values, int bins, double lo, double hi) {
  ATTNLAB_CHECK(bins >= 1, "histogram_counts: bins must be >= 1, got ", bins);
  ATTNLAB_CHECK(std::isfinite(lo) && std::isfinite(hi) && hi > lo, "histogram_counts: bad range [", lo,
                ", ", hi, "]");
  std::vector<std::int64_t> c(static_cast<std::size_t>(bins), 0);
  const double w = (hi - lo) / bins;
  for (double v : values) {
    if (!std::isfinite(v) || v < lo || v > hi) continue;
    auto b = static_cast<std::int64_t>((v - lo) / w);
    b = std::min<std::int64_t>(b, bins - 1);  // v == hi goes into the last bin, as in numpy
    ++c[static_cast<std::size_t>(b)];
  }
  return c;
}

PlotResult line_plot(const fs::path& dir, const std::string& stem, std::span<const double> x,
                     const std::vector<Series>& series, const PlotOptions& o, const Gnuplot& gp) {
  check_stem(stem);
  for (const Series& s : series)
    ATTNLAB_CHECK(s.y.size() == x.size(), "line_plot: series '", s.label, "' has ", s.y.size(),
                  " points, x has ", x.size());
  std::string data = "# x";
  for (const Series& s : series) data += " | " + s.label;
  data += "\n";
  for (std::size_t i = 0; i < x.size(); ++i) {
    // Dates are written as whole Unix seconds, which gnuplot's timefmt "%s" reads.
    append_number(data, o.x_is_time_ms ? std::floor(x[i] / 1000.0) : x[i]);
    for (const Series& s : series) {
      data += ' ';
      append_number(data, s.y[i]);
    }
    data += '\n';
  }
  std::string sc = preamble(stem, o, gp);
  if (o.x_is_time_ms) {
    const std::string f = time_axis_format(x);
    sc += "set xdata time\nset timefmt '%s'\nset format x '" + f + "'\n";
    if (f.size() > 8) sc += "set xtics rotate by -30 font ',9'\n";
  }
  sc += "set key top left\n";
  if (o.fill_to_zero) sc += "set style fill transparent solid 0.4 noborder\n";
  sc += "plot ";
  for (std::size_t k = 0; k < series.size(); ++k) {
    if (k) sc += ", \\\n     ";
    sc += "'" + stem + ".dat' using 1:" + std::to_string(k + 2) +
          (o.fill_to_zero ? " with filledcurves y=0" : " with lines lw 1.5") + " title " +
          gp_quote(series[k].label);
  }
  sc += "\n";
  return render(dir, stem, data, sc, gp, !x.empty() && !series.empty());
}

PlotResult histogram_plot(const fs::path& dir, const std::string& stem, std::span<const double> values,
                          int bins, const PlotOptions& o, const Gnuplot& gp) {
  check_stem(stem);
  ATTNLAB_CHECK(bins >= 1, "histogram_plot: bins must be >= 1, got ", bins);
  // With log_x the bins are equal in log10(value) and only values > 0 count.
  std::vector<double> v;
  v.reserve(values.size());
  for (double x : values)
    if (std::isfinite(x) && (!o.log_x || x > 0)) v.push_back(o.log_x ? std::log10(x) : x);
  double lo = INFINITY, hi = -INFINITY;
  for (double x : v) lo = std::min(lo, x), hi = std::max(hi, x);
  const bool have = lo <= hi;
  std::string data = "# bin_center count bin_low bin_high\n";
  if (have) {
    if (lo == hi) lo -= 0.5, hi += 0.5;  // numpy's range for constant data
    const std::vector<std::int64_t> c = histogram_counts(v, bins, lo, hi);
    const double w = (hi - lo) / bins;
    auto out = [&](double x) { return o.log_x ? std::pow(10.0, x) : x; };
    for (int b = 0; b < bins; ++b) {
      append_number(data, out(lo + (b + 0.5) * w));
      data += ' ' + std::to_string(c[static_cast<std::size_t>(b)]) + ' ';
      append_number(data, out(lo + b * w));
      data += ' ';
      append_number(data, out(lo + (b + 1) * w));
      data += '\n';
    }
  }
  std::string sc = preamble(stem, o, gp);
  sc += "set style fill solid 0.6 border -1\nset yrange [0:*]\n";
  if (o.log_x) sc += "set logscale x\nset format x '%g'\n";
  sc += "plot '" + stem + ".dat' using 1:2:3:4:(0):2 with boxxyerror notitle\n";
  return render(dir, stem, data, sc, gp, have);
}

PlotResult bar_chart(const fs::path& dir, const std::string& stem,
                     const std::vector<std::pair<std::string, double>>& bars, const PlotOptions& o,
                     const Gnuplot& gp) {
  check_stem(stem);
  std::string data = "# label value\n";
  for (const auto& [label, v] : bars) {
    std::string l = label;
    std::replace(l.begin(), l.end(), '"', '\'');  // a double quote would end the data-file string
    data += "\"" + l + "\" ";
    append_number(data, v);
    data += '\n';
  }
  std::string sc = preamble(stem, o, gp);
  sc += "set style fill solid 0.6 border -1\nset boxwidth 0.7\nset xtics rotate by -30\n"
        "set yrange [0:*]\nset offsets 0.5, 0.5, 0, 0\n";
  sc += "plot '" + stem + ".dat' using 0:2:xtic(1) with boxes notitle, \\\n     '" + stem +
        ".dat' using 0:2:(sprintf('%g', $2)) with labels offset 0,1 notitle\n";
  return render(dir, stem, data, sc, gp, !bars.empty());
}

namespace {

// `"label" v0 v1 ...` rows: one per category, one column per series (the layout both charts read).
std::string category_table(const std::vector<std::string>& categories, const std::vector<Series>& series) {
  std::string data = "# category";
  for (const Series& s : series) data += " | " + s.label;
  data += "\n";
  for (std::size_t c = 0; c < categories.size(); ++c) {
    std::string l = categories[c];
    std::replace(l.begin(), l.end(), '"', '\'');  // a double quote would end the data-file string
    data += "\"" + l + "\"";
    for (const Series& s : series) {
      data += ' ';
      append_number(data, s.y[c]);
    }
    data += '\n';
  }
  return data;
}

void check_categories(const char* who, const std::vector<std::string>& categories, const std::vector<Series>& series) {
  for (const Series& s : series)
    ATTNLAB_CHECK(s.y.size() == categories.size(), who, ": series '", s.label, "' has ", s.y.size(), " values for ",
                  categories.size(), " categories");
}

}  // namespace

PlotResult grouped_bar_chart(const fs::path& dir, const std::string& stem, const std::vector<std::string>& categories,
                             const std::vector<Series>& series, const PlotOptions& o, const Gnuplot& gp) {
  check_stem(stem);
  check_categories("grouped_bar_chart", categories, series);
  std::string sc = preamble(stem, o, gp);
  const std::size_t n = series.size();
  sc += "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.7 border -1\n"
        "set yrange [0:*]\nset key top right\nset offsets 0, 0, graph 0.08, 0\n";
  sc += "plot ";
  for (std::size_t k = 0; k < n; ++k) {
    if (k) sc += ", \\\n     ";
    sc += "'" + stem + ".dat' using " + std::to_string(k + 2) + (k == 0 ? ":xtic(1)" : "") + " title " +
          gp_quote(series[k].label);
  }
  if (!o.value_format.empty())
    for (std::size_t k = 0; k < n; ++k) {
      // Bar k of cluster c sits at c + (k - (n - 1) / 2) / (n + gap) with gap 1.
      const std::string x = "($0 + (" + std::to_string(k) + " - " + number_text((double(n) - 1) / 2) + ") / " +
                            std::to_string(n + 1) + ".0)";
      const std::string col = "(column(" + std::to_string(k + 2) + "))";
      sc += ", \\\n     '" + stem + ".dat' using " + x + ":" + col + ":(gprintf(" + gp_quote(o.value_format) +
            ", " + col + ")) with labels offset 0,0.6 font ',8' notitle";
    }
  sc += "\n";
  return render(dir, stem, category_table(categories, series), sc, gp, !categories.empty() && n > 0);
}

PlotResult bar_panels(const fs::path& dir, const std::string& stem, const std::vector<std::string>& categories,
                      const std::vector<Series>& panels, int columns, const PlotOptions& o, const Gnuplot& gp) {
  check_stem(stem);
  check_categories("bar_panels", categories, panels);
  ATTNLAB_CHECK(columns >= 1, "bar_panels: columns must be >= 1, got ", columns);
  const int n = int(panels.size());
  const int cols = std::min(columns, std::max(n, 1)), rows = (n + cols - 1) / cols;
  PlotOptions po = o;
  po.title.clear();  // the multiplot carries the title; each panel its metric
  std::string sc = preamble(stem, po, gp);
  sc += "set style fill solid 0.7 border -1\nset boxwidth 0.6\nset xzeroaxis lt -1\nunset key\n"
        "set xlabel ''\nset ylabel ''\nset xtics font ',9'\n";
  sc += "set multiplot layout " + std::to_string(rows) + "," + std::to_string(cols) + " title " + gp_quote(o.title) +
        "\n";
  for (int k = 0; k < n; ++k) {
    const std::string col = "(column(" + std::to_string(k + 2) + "))";
    // Bars start at zero (their length is the value): the range always includes 0.
    double lo = 0, hi = 0;
    for (double y : panels[size_t(k)].y)
      if (std::isfinite(y)) lo = std::min(lo, y), hi = std::max(hi, y);
    sc += std::string(lo == 0 ? "set yrange [0:*]\n" : hi == 0 ? "set yrange [*:0]\n" : "set yrange [*:*]\n");
    sc += std::string("set offsets 0.5, 0.5, graph ") + (hi > 0 ? "0.12" : "0") + ", graph " + (lo < 0 ? "0.12" : "0") +
          "\n";
    sc += "set title " + gp_quote(panels[size_t(k)].label) + "\nplot '" + stem + ".dat' using 0:" + col +
          ":xtic(1) with boxes notitle";
    if (!o.value_format.empty())
      sc += ", '' using 0:" + col + ":(gprintf(" + gp_quote(o.value_format) + ", " + col +
            ")) with labels offset 0,0.7 font ',9' notitle";
    sc += "\n";
  }
  sc += "unset multiplot\n";
  return render(dir, stem, category_table(categories, panels), sc, gp, !categories.empty() && n > 0);
}

PlotResult heatmap(const fs::path& dir, const std::string& stem, std::span<const double> m,
                   std::int64_t rows, std::int64_t cols, const PlotOptions& o, const Gnuplot& gp) {
  check_stem(stem);
  ATTNLAB_CHECK(rows >= 0 && cols >= 0 && m.size() == static_cast<std::size_t>(rows * cols), "heatmap: ",
                m.size(), " values for a [", rows, ", ", cols, "] matrix");
  std::string data;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) {
      if (c) data += ' ';
      append_number(data, m[static_cast<std::size_t>(r * cols + c)]);
    }
    data += '\n';
  }
  std::string sc = preamble(stem, o, gp);
  sc += "set xrange [-0.5:" + std::to_string(cols) + "-0.5]\nset yrange [" + std::to_string(rows) +
        "-0.5:-0.5]\nunset grid\nset palette rgbformulae 7,5,15\n";
  sc += "plot '" + stem + ".dat' matrix with image notitle\n";
  return render(dir, stem, data, sc, gp, rows > 0 && cols > 0);
}

}  // namespace attnlab::report
