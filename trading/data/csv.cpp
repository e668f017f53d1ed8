#include "trading/data/csv.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>

#include "kernels/error.h"
#include "trading/data/timeutil.h"

namespace attnlab::data {

size_t CsvReport::total_skipped() const {
  size_t n = 0;
  for (const auto& [_, c] : skipped) n += c;
  return n;
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = trim(s.substr(1, s.size() - 2));
  return s;
}

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= line.size(); ++i)
    if (i == line.size() || line[i] == ',') {
      out.push_back(trim(line.substr(start, i - start)));
      start = i + 1;
    }
  return out;
}

// "Adj Close" -> "adjclose", "open_time" -> "opentime".
std::string normalize(std::string_view name) {
  std::string out;
  for (char c : name)
    if (c != ' ' && c != '_' && c != '-') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_null(std::string_view v) {
  std::string low = normalize(v);
  return v.empty() || low == "null" || low == "nan" || low == "none" || low == "na";
}

// Column positions in the file (-1 = absent).
struct Columns {
  int time = -1, open = -1, high = -1, low = -1, close = -1, adj = -1, volume = -1, turnover = -1;
  bool time_is_ms = false;  // "timestamp_ms"/"ts_ms": integer milliseconds, no magnitude guess
  std::vector<std::string> names;
};

Columns map_header(const std::vector<std::string_view>& header, const std::string& name) {
  Columns c;
  for (size_t i = 0; i < header.size(); ++i) {
    const std::string h = normalize(header[i]);
    c.names.emplace_back(header[i]);
    const int idx = static_cast<int>(i);
    auto take = [&](int& slot) { if (slot < 0) slot = idx; };
    if (h == "timestampms" || h == "tsms") {
      if (c.time < 0 || !c.time_is_ms) c.time = idx;  // an explicit unit beats a guessed one
      c.time_is_ms = true;
    } else if (h == "date" || h == "time" || h == "timestamp" || h == "datetime" || h == "opentime") {
      take(c.time);
    } else if (h == "open") take(c.open);
    else if (h == "high") take(c.high);
    else if (h == "low") take(c.low);
    else if (h == "close") take(c.close);
    else if (h == "adjclose") take(c.adj);
    else if (h == "volume") take(c.volume);
    else if (h == "turnover") take(c.turnover);
  }
  auto need = [&](int slot, const char* what) {
    if (slot < 0) {
      std::string joined;
      for (const auto& n : c.names) joined += (joined.empty() ? "" : ",") + n;
      throw Error(cat(name, ":1: missing column '", what, "' (header: ", joined, ")"));
    }
  };
  need(c.time, "date/time/timestamp");
  need(c.open, "open");
  need(c.high, "high");
  need(c.low, "low");
  need(c.close, "close");
  need(c.volume, "volume");
  return c;
}

// A row's problem: `key` is what skip mode counts, `detail` what the message says.
struct Problem {
  std::string key, detail;
};

}  // namespace

OhlcvSeries parse_ohlcv_csv(std::istream& in, const std::string& name, const CsvOptions& opt,
                            CsvReport* report) {
  CsvReport local;
  CsvReport& rep = report ? *report : local;
  rep = CsvReport{};

  std::string line;
  size_t lineno = 0;
  std::optional<Columns> cols;
  while (!cols && std::getline(in, line)) {
    ++lineno;
    if (lineno == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 byte order mark
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    cols = map_header(split(line), name);
  }
  ATTNLAB_CHECK(cols.has_value(), name, ": empty file (no header)");
  const Columns& c = *cols;
  ATTNLAB_CHECK(!opt.use_adj_close || c.adj >= 0, name, ": use_adj_close set but there is no adj close column");
  rep.has_adj_close = c.adj >= 0;

  OhlcvSeries s;
  if (opt.symbol.empty()) s.symbol = std::filesystem::path(name).stem().string();
  else s.symbol = opt.symbol;
  const bool with_turnover = c.turnover >= 0;
  const int max_col = std::max({c.time, c.open, c.high, c.low, c.close, c.adj, c.volume, c.turnover});

  std::optional<Problem> problem;
  auto fail = [&](std::string key, std::string detail) {
    problem = Problem{std::move(key), std::move(detail)};
    return false;
  };
  // Parses column `col` into out; on failure records the problem.
  auto number = [&](const std::vector<std::string_view>& f, int col, double& out) {
    const std::string_view v = f[col];
    if (is_null(v)) return fail("null value", cat("null value in column '", c.names[col], "'"));
    const char* b = v.data() + (v.front() == '+');
    auto [end, ec] = std::from_chars(b, v.data() + v.size(), out);
    if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(out))
      return fail("not a number", cat("not a number in column '", c.names[col], "': '", v, "'"));
    return true;
  };

  auto parse_row = [&](const std::vector<std::string_view>& f, OhlcvBar& bar) {
    if (static_cast<int>(f.size()) <= max_col)
      return fail("missing field", cat("missing field '", c.names[f.size()], "' (row has ", f.size(),
                                       " fields, header has ", c.names.size(), ")"));
    const std::string_view tv = f[c.time];
    if (is_null(tv)) return fail("null value", cat("null value in column '", c.names[c.time], "'"));
    try {
      bar.ts_ms = c.time_is_ms ? parse_epoch_ms(tv) : parse_time_ms(tv);
    } catch (const Error& e) {
      return fail("bad timestamp", e.what());
    }
    double adj = 0;
    if (!number(f, c.open, bar.open) || !number(f, c.high, bar.high) || !number(f, c.low, bar.low) ||
        !number(f, c.close, bar.close) || !number(f, c.volume, bar.volume) ||
        (c.adj >= 0 && !number(f, c.adj, adj)) || (with_turnover && !number(f, c.turnover, bar.turnover)))
      return false;
    const std::pair<double, int> prices[] = {{bar.open, c.open}, {bar.high, c.high}, {bar.low, c.low},
                                             {bar.close, c.close}};
    for (auto [p, col] : prices)
      if (p <= 0) return fail("non-positive price", cat("non-positive price in column '", c.names[col], "': ", p));
    if (c.adj >= 0 && adj <= 0)
      return fail("non-positive price", cat("non-positive price in column '", c.names[c.adj], "': ", adj));
    if (bar.high < bar.low) return fail("high < low", cat("high ", bar.high, " < low ", bar.low));
    if (opt.check_envelope &&
        (bar.high < std::max(bar.open, bar.close) || bar.low > std::min(bar.open, bar.close)))
      return fail("open/close outside [low, high]",
                  cat("open ", bar.open, " or close ", bar.close, " outside [low ", bar.low, ", high ", bar.high, "]"));
    if (bar.volume < 0) return fail("negative volume", cat("negative volume ", bar.volume));
    if (with_turnover && bar.turnover < 0) return fail("negative volume", cat("negative turnover ", bar.turnover));
    if (!s.empty() && bar.ts_ms == s.ts_ms.back())
      return fail("duplicate timestamp", cat("duplicate timestamp ", format_time_iso(bar.ts_ms)));
    if (!s.empty() && bar.ts_ms < s.ts_ms.back())
      return fail("unsorted timestamp", cat("timestamp ", format_time_iso(bar.ts_ms), " is before the previous row's ",
                                            format_time_iso(s.ts_ms.back())));
    if (opt.use_adj_close) {  // back-adjust the whole bar by the same factor as the close
      const double k = adj / bar.close;
      bar.open *= k, bar.high *= k, bar.low *= k, bar.close = adj;
    }
    return true;
  };

  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    ++rep.rows_read;
    OhlcvBar bar;
    problem.reset();
    if (parse_row(split(line), bar)) {
      s.push_back(bar, with_turnover);
      continue;
    }
    std::string msg = cat(name, ":", lineno, ": ", problem->detail);
    if (!opt.skip_bad_rows) throw Error(msg);
    ++rep.skipped[problem->key];
    if (rep.first_messages.size() < 20) rep.first_messages.push_back(std::move(msg));
  }
  rep.rows_kept = s.size();
  return s;
}

OhlcvSeries read_ohlcv_csv(const std::string& path, const CsvOptions& opt, CsvReport* report) {
  std::ifstream in(path, std::ios::binary);
  ATTNLAB_CHECK(in.good(), "read_ohlcv_csv: cannot open '", path, "'");
  return parse_ohlcv_csv(in, path, opt, report);
}

namespace {

void put_double(std::string& out, double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  out.append(buf, end);
}

}  // namespace

void write_ohlcv_csv(const std::string& path, const OhlcvSeries& s) {
  s.validate(/*check_envelope=*/false);
  std::string text = s.has_turnover() ? "timestamp_ms,open,high,low,close,volume,turnover\n"
                                      : "timestamp_ms,open,high,low,close,volume\n";
  text.reserve(text.size() + s.size() * 80);
  for (size_t i = 0; i < s.size(); ++i) {
    text += std::to_string(s.ts_ms[i]);
    for (double v : {s.open[i], s.high[i], s.low[i], s.close[i], s.volume[i]}) {
      text += ',';
      put_double(text, v);
    }
    if (s.has_turnover()) {
      text += ',';
      put_double(text, s.turnover[i]);
    }
    text += '\n';
  }
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    ATTNLAB_CHECK(out.good(), "write_ohlcv_csv: cannot open '", tmp, "' for writing");
    out << text;
    out.flush();
    ATTNLAB_CHECK(out.good(), "write_ohlcv_csv: write to '", tmp, "' failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, p, ec);
  ATTNLAB_CHECK(!ec, "write_ohlcv_csv: cannot rename '", tmp, "' to '", path, "': ", ec.message());
}

}  // namespace attnlab::data
