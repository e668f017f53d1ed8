// OhlcvSeries: one symbol's bars as parallel columns (struct of arrays), the exchange format of the
// market layer. Column layout because every consumer (features, alignment, backtests) walks one
// column at a time.
//
// Invariants (checked by validate()):
//   ts_ms       bar open time, UTC epoch milliseconds, strictly ascending (so unique)
//   open..close finite and > 0; low <= min(open, close) and high >= max(open, close)
//   volume      finite and >= 0
//   turnover    empty (source has none) or one value per bar, finite and >= 0
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab::data {

// One bar, for building series row by row (turnover is used only by series that carry turnover).
struct OhlcvBar {
  int64_t ts_ms = 0;
  double open = 0, high = 0, low = 0, close = 0, volume = 0;
  double turnover = 0;
};

struct OhlcvSeries {
  std::string symbol;
  std::vector<int64_t> ts_ms;
  std::vector<double> open, high, low, close, volume;
  std::vector<double> turnover;  // empty if the source has no turnover column

  size_t size() const { return ts_ms.size(); }
  bool empty() const { return ts_ms.empty(); }
  bool has_turnover() const { return !turnover.empty(); }

  // Appends a bar; turnover is stored only when the series has (or starts with) turnover.
  void push_back(const OhlcvBar& bar, bool with_turnover);
  OhlcvBar bar(size_t i) const;
  void reserve(size_t n);

  // Throws attnlab::Error naming the symbol, the bar index and time and the broken invariant.
  // check_envelope=false skips "open/close within [low, high]" (some vendors' adjusted data breaks it).
  void validate(bool check_envelope = true) const;
};

// Bars with begin_ms <= ts_ms < end_ms (half-open, so consecutive ranges tile without overlap).
OhlcvSeries slice_time(const OhlcvSeries& s, int64_t begin_ms, int64_t end_ms);

// Rows [begin, end) (clamped to the series).
OhlcvSeries slice_rows(const OhlcvSeries& s, size_t begin, size_t end);

// Union of two series of the same symbol, sorted by time; where both have a bar at the same time the
// one from `newer` wins (used to merge freshly fetched bars into a cache). Turnover is kept only when
// both have it (or one is empty).
OhlcvSeries merge_series(const OhlcvSeries& older, const OhlcvSeries& newer);

// Index of the first bar with ts_ms >= t (size() if none).
size_t lower_bound_time(const OhlcvSeries& s, int64_t t);

}  // namespace attnlab::data
