// Generic PNG plots rendered by gnuplot: line plot of several series, histogram, bar chart, clustered
// bar chart, small multiples of bar charts, heatmap.
//
// Every plot function writes three files next to each other in `dir`:
//   <stem>.dat  the numbers (plain whitespace-separated text),
//   <stem>.gp   a gnuplot script reading <stem>.dat by relative path,
//   <stem>.png  the picture, when gnuplot is available.
// A user can re-render (e.g. after editing the script) with:  cd dir && gnuplot <stem>.gp
// The PNG is rendered to a temporary name and renamed into place, so a PNG that exists is complete.
//
// gnuplot is found at run time (Debian's gnuplot-nox): $ATTNLAB_GNUPLOT if set ("" or "none" disables
// plotting), else `gnuplot` on PATH. The pngcairo terminal is used when the binary has it, else png.
// Without gnuplot the .dat and .gp files are still written and PlotResult::message says why no PNG was.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace attnlab::report {

struct Gnuplot {
  std::string executable;  // empty = not available
  std::string terminal;    // "pngcairo" or "png"
  bool available() const { return !executable.empty(); }
  // Looks it up now (environment, PATH, terminal probe).
  static Gnuplot find();
  // find(), done once per process and cached.
  static const Gnuplot& detected();
};

struct PlotOptions {
  std::string title, xlabel, ylabel;
  int width = 1000, height = 600;  // pixels
  bool x_is_time_ms = false;       // line plot: x values are Unix milliseconds, shown as dates
  bool fill_to_zero = false;       // line plot: fill between each series and y = 0 (drawdowns)
  bool log_y = false;
  bool log_x = false;              // histogram: bins equal in log10(x) on a log axis (values <= 0 skipped)
  // Bar charts (grouped_bar_chart, bar_panels): gnuplot gprintf format of the value printed above each
  // bar ("%g", "%.3f", "%.1f%%"); empty = no value labels.
  std::string value_format = "%g";
  // Vertical marker lines (label shown verbatim, x), e.g. {"mean 1.2 ms", 1.2} on a latency histogram.
  std::vector<std::pair<std::string, double>> vlines;
};

struct Series {
  std::string label;
  std::vector<double> y;  // same length as x; NaN = gap
};

struct PlotResult {
  bool rendered = false;           // the PNG exists and is complete
  std::filesystem::path png, data, script;
  std::string message;             // why nothing was rendered (empty when rendered)
};

// y-series against shared x. Throws attnlab::Error when a series length differs from x.
PlotResult line_plot(const std::filesystem::path& dir, const std::string& stem, std::span<const double> x,
                     const std::vector<Series>& series, const PlotOptions& opt,
                     const Gnuplot& gp = Gnuplot::detected());

// Histogram of finite values in `bins` equal-width bins over [min, max] (NaN/inf are skipped); with
// opt.log_x, bins of equal width in log10 over the positive values (for long-tailed latencies).
PlotResult histogram_plot(const std::filesystem::path& dir, const std::string& stem,
                          std::span<const double> values, int bins, const PlotOptions& opt,
                          const Gnuplot& gp = Gnuplot::detected());

// One bar per (label, value), in the given order.
PlotResult bar_chart(const std::filesystem::path& dir, const std::string& stem,
                     const std::vector<std::pair<std::string, double>>& bars, const PlotOptions& opt,
                     const Gnuplot& gp = Gnuplot::detected());

// Clustered bars: one cluster per category, one bar (and colour, with a key) per series in it;
// series[k].y[c] is series k's value in category c. Values label the bars (opt.value_format).
// Throws attnlab::Error when a series does not have one value per category.
PlotResult grouped_bar_chart(const std::filesystem::path& dir, const std::string& stem,
                             const std::vector<std::string>& categories, const std::vector<Series>& series,
                             const PlotOptions& opt, const Gnuplot& gp = Gnuplot::detected());

// Small multiples in one PNG: one bar chart per panel (panels[k].label titles it, panels[k].y[c] is the
// bar of category c), `columns` panels per row; negative values hang below a zero line. opt.title is
// the overall title, opt.width/height the whole picture.
PlotResult bar_panels(const std::filesystem::path& dir, const std::string& stem,
                      const std::vector<std::string>& categories, const std::vector<Series>& panels, int columns,
                      const PlotOptions& opt, const Gnuplot& gp = Gnuplot::detected());

// Heatmap of a row-major [rows, cols] matrix; row 0 at the top (as an attention map is read).
PlotResult heatmap(const std::filesystem::path& dir, const std::string& stem, std::span<const double> m,
                   std::int64_t rows, std::int64_t cols, const PlotOptions& opt,
                   const Gnuplot& gp = Gnuplot::detected());

// The gnuplot date format for time-axis tick labels of a series of Unix-ms times (what line_plot with
// x_is_time_ms uses): spans over 4 years "%Y", over 120 days "%Y-%m", daily bars or spans over 20 days
// "%Y-%m-%d", intraday spans over 2 days "%m-%d %H:%M", shorter "%H:%M". Daily bars never show hours.
std::string time_axis_format(std::span<const double> time_ms);

// numpy.histogram's binning: `bins` equal-width bins over [lo, hi], the last one closed on the right;
// values outside [lo, hi] or not finite are not counted. Returns counts [bins].
std::vector<std::int64_t> histogram_counts(std::span<const double> values, int bins, double lo, double hi);

}  // namespace attnlab::report
