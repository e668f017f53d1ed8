#include "trading/data/timeutil.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "kernels/error.h"

namespace attnlab::data {

// Howard Hinnant's days_from_civil (public domain): exact for all int64 years we care about.
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

namespace {

bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int64_t y, int m) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

// Reads exactly n digits at s[pos..pos+n) into out; false if any is not a digit.
bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

bool looks_numeric(std::string_view s) {
  size_t i = (s.size() > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == s.size()) return false;
  bool dot = false;
  for (; i < s.size(); ++i) {
    if (s[i] == '.' && !dot) dot = true;
    else if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

int64_t parse_iso(std::string_view s) {
  auto bad = [&](const char* why) { return Error(cat("bad timestamp '", s, "': ", why)); };
  int y, mo, d;
  if (!digits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d))
    throw bad("expected YYYY-MM-DD, epoch seconds or epoch milliseconds");
  if (mo < 1 || mo > 12) throw bad("month out of range");
  if (d < 1 || d > days_in_month(y, mo)) throw bad("day out of range");
  int64_t ms = days_from_civil(y, mo, d) * kMsPerDay;
  size_t p = 10;
  if (p == s.size()) return ms;
  if (s[p] != 'T' && s[p] != ' ') throw bad("expected 'T' or ' ' after the date");
  int h, mi, sec = 0;
  if (!digits(s, p + 1, 2, h) || p + 3 >= s.size() || s[p + 3] != ':' || !digits(s, p + 4, 2, mi))
    throw bad("expected HH:MM after the date");
  p += 6;
  if (p < s.size() && s[p] == ':') {
    if (!digits(s, p + 1, 2, sec)) throw bad("expected seconds after HH:MM:");
    p += 3;
  }
  if (h > 23 || mi > 59 || sec > 60) throw bad("time of day out of range");
  ms += h * kMsPerHour + mi * kMsPerMinute + sec * kMsPerSecond;
  if (p < s.size() && s[p] == '.') {  // fraction of a second: keep milliseconds, drop the rest
    ++p;
    int64_t scale = 100, frac = 0;
    const size_t start = p;
    for (; p < s.size() && std::isdigit(static_cast<unsigned char>(s[p])); ++p, scale /= 10)
      frac += (s[p] - '0') * scale;
    if (p == start) throw bad("empty fraction of a second");
    ms += frac;
  }
  if (p == s.size()) return ms;
  if (s[p] == 'Z' && p + 1 == s.size()) return ms;
  if ((s[p] == '+' || s[p] == '-') && s.size() == p + 6 && s[p + 3] == ':') {
    int oh, om;
    if (!digits(s, p + 1, 2, oh) || !digits(s, p + 4, 2, om)) throw bad("bad UTC offset");
    const int64_t off = oh * kMsPerHour + om * kMsPerMinute;
    return s[p] == '+' ? ms - off : ms + off;  // 10:00+02:00 is 08:00 UTC
  }
  throw bad("unexpected trailing text");
}

}  // namespace

int64_t parse_epoch_ms(std::string_view s) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  ATTNLAB_CHECK(ec == std::errc() && end == s.data() + s.size(), "bad timestamp '", s,
                "': expected integer epoch milliseconds");
  return v;
}

int64_t parse_time_ms(std::string_view s) {
  if (s.empty()) throw Error("empty timestamp");
  if (looks_numeric(s)) {
    double v = 0;
    auto [end, ec] = std::from_chars(s.data() + (s[0] == '+'), s.data() + s.size(), v);
    ATTNLAB_CHECK(ec == std::errc() && end == s.data() + s.size(), "bad timestamp '", s, "'");
    if (std::fabs(v) >= 1e11) return static_cast<int64_t>(std::llround(v));  // already milliseconds
    return static_cast<int64_t>(std::llround(v * 1000.0));                   // seconds
  }
  return parse_iso(s);
}

CivilDate civil_from_days(int64_t days) {
  // Hinnant's civil_from_days, inverse of days_from_civil.
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return {yoe + era * 400 + (m <= 2), m, d};
}

std::string format_time_iso(int64_t ms) {
  const int64_t days = ms >= 0 ? ms / kMsPerDay : -((-ms + kMsPerDay - 1) / kMsPerDay);
  const int64_t rem = ms - days * kMsPerDay;
  const CivilDate c = civil_from_days(days);
  const long long y = c.year;
  const int m = c.month, d = c.day;
  char buf[48];
  const int h = static_cast<int>(rem / kMsPerHour), mi = static_cast<int>(rem / kMsPerMinute % 60),
            sec = static_cast<int>(rem / kMsPerSecond % 60), milli = static_cast<int>(rem % 1000);
  if (milli)
    std::snprintf(buf, sizeof buf, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, h, mi, sec, milli);
  else
    std::snprintf(buf, sizeof buf, "%04lld-%02d-%02dT%02d:%02d:%02dZ", y, m, d, h, mi, sec);
  return buf;
}

}  // namespace attnlab::data
