#include "trading/data/ohlcv.h"

#include <algorithm>
#include <cmath>

#include "kernels/error.h"
#include "trading/data/timeutil.h"

namespace attnlab::data {

void OhlcvSeries::push_back(const OhlcvBar& b, bool with_turnover) {
  ts_ms.push_back(b.ts_ms);
  open.push_back(b.open);
  high.push_back(b.high);
  low.push_back(b.low);
  close.push_back(b.close);
  volume.push_back(b.volume);
  if (with_turnover) turnover.push_back(b.turnover);
}

OhlcvBar OhlcvSeries::bar(size_t i) const {
  ATTNLAB_CHECK(i < size(), "OhlcvSeries::bar: index ", i, " out of range (", size(), " bars)");
  return {ts_ms[i], open[i], high[i], low[i], close[i], volume[i],
          has_turnover() ? turnover[i] : std::nan("")};
}

void OhlcvSeries::reserve(size_t n) {
  for (auto* v : {&open, &high, &low, &close, &volume}) v->reserve(n);
  ts_ms.reserve(n);
}

void OhlcvSeries::validate(bool check_envelope) const {
  const size_t n = size();
  const std::string who = cat("OhlcvSeries '", symbol, "'");
  ATTNLAB_CHECK(open.size() == n && high.size() == n && low.size() == n && close.size() == n &&
                    volume.size() == n,
                who, ": columns have different lengths (ts ", n, ", open ", open.size(), ", high ",
                high.size(), ", low ", low.size(), ", close ", close.size(), ", volume ", volume.size(), ")");
  ATTNLAB_CHECK(turnover.empty() || turnover.size() == n, who, ": turnover has ", turnover.size(),
                " values for ", n, " bars");
  for (size_t i = 0; i < n; ++i) {
    auto where = [&] { return cat(who, " bar ", i, " (", format_time_iso(ts_ms[i]), "): "); };
    if (i > 0)
      ATTNLAB_CHECK(ts_ms[i] > ts_ms[i - 1], where(),
                    ts_ms[i] == ts_ms[i - 1] ? "duplicate timestamp" : "timestamps not ascending");
    for (double p : {open[i], high[i], low[i], close[i]})
      ATTNLAB_CHECK(std::isfinite(p) && p > 0, where(), "non-positive or non-finite price ", p);
    ATTNLAB_CHECK(high[i] >= low[i], where(), "high ", high[i], " < low ", low[i]);
    if (check_envelope)
      ATTNLAB_CHECK(high[i] >= std::max(open[i], close[i]) && low[i] <= std::min(open[i], close[i]),
                    where(), "open/close outside [low, high]");
    ATTNLAB_CHECK(std::isfinite(volume[i]) && volume[i] >= 0, where(), "bad volume ", volume[i]);
    if (!turnover.empty())
      ATTNLAB_CHECK(std::isfinite(turnover[i]) && turnover[i] >= 0, where(), "bad turnover ", turnover[i]);
  }
}

OhlcvSeries slice_rows(const OhlcvSeries& s, size_t begin, size_t end) {
  end = std::min(end, s.size());
  begin = std::min(begin, end);
  OhlcvSeries out;
  out.symbol = s.symbol;
  auto cut = [&](const auto& v) { return std::decay_t<decltype(v)>(v.begin() + begin, v.begin() + end); };
  out.ts_ms = cut(s.ts_ms);
  out.open = cut(s.open);
  out.high = cut(s.high);
  out.low = cut(s.low);
  out.close = cut(s.close);
  out.volume = cut(s.volume);
  if (s.has_turnover()) out.turnover = cut(s.turnover);
  return out;
}

size_t lower_bound_time(const OhlcvSeries& s, int64_t t) {
  return static_cast<size_t>(std::lower_bound(s.ts_ms.begin(), s.ts_ms.end(), t) - s.ts_ms.begin());
}

OhlcvSeries slice_time(const OhlcvSeries& s, int64_t begin_ms, int64_t end_ms) {
  if (end_ms <= begin_ms) return slice_rows(s, 0, 0);
  return slice_rows(s, lower_bound_time(s, begin_ms), lower_bound_time(s, end_ms));
}

OhlcvSeries merge_series(const OhlcvSeries& older, const OhlcvSeries& newer) {
  // An empty side says nothing about turnover, so it does not strip it from the other.
  const bool turnover = (older.empty() || older.has_turnover()) && (newer.empty() || newer.has_turnover());
  OhlcvSeries out;
  out.symbol = newer.symbol.empty() ? older.symbol : newer.symbol;
  out.reserve(older.size() + newer.size());
  size_t i = 0, j = 0;
  while (i < older.size() || j < newer.size()) {
    if (j == newer.size() || (i < older.size() && older.ts_ms[i] < newer.ts_ms[j])) {
      out.push_back(older.bar(i++), turnover);
    } else {
      if (i < older.size() && older.ts_ms[i] == newer.ts_ms[j]) ++i;  // same bar: newer wins
      out.push_back(newer.bar(j++), turnover);
    }
  }
  return out;
}

}  // namespace attnlab::data
