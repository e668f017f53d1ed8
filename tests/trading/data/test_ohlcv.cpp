// OhlcvSeries invariants and the slicing/merging helpers.
#include <doctest/doctest.h>

#include "kernels/error.h"
#include "trading/data/ohlcv.h"

using namespace attnlab::data;

namespace {

OhlcvSeries make(std::initializer_list<int64_t> ts, double base, bool turnover) {
  OhlcvSeries s;
  s.symbol = "S";
  for (int64_t t : ts) s.push_back({t, base + t, base + t + 1, base + t - 1, base + t, 10, 100}, turnover);
  return s;
}

}  // namespace

TEST_CASE("validate names the broken invariant") {
  CHECK_NOTHROW(make({1, 2, 3}, 100, true).validate());
  OhlcvSeries s = make({1, 2, 3}, 100, false);
  s.ts_ms[2] = 2;
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("bar 2 (1970-01-01T00:00:00.002Z): duplicate timestamp"),
                       attnlab::Error);
  s = make({1, 2, 3}, 100, false);
  s.low[1] = s.high[1] + 1;
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("high 103 < low 104"), attnlab::Error);
  s = make({1, 2, 3}, 100, false);
  s.close[0] = 0;
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("non-positive"), attnlab::Error);
  s = make({1, 2, 3}, 100, false);
  s.open[0] = 200;  // above high
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("open/close outside [low, high]"), attnlab::Error);
  CHECK_NOTHROW(s.validate(/*check_envelope=*/false));
  s = make({1, 2, 3}, 100, false);
  s.volume.pop_back();
  CHECK_THROWS_WITH_AS(s.validate(), doctest::Contains("different lengths"), attnlab::Error);
}

TEST_CASE("slice by time (half-open) and by rows") {
  const OhlcvSeries s = make({10, 20, 30, 40}, 100, true);
  CHECK(slice_time(s, 20, 40).ts_ms == std::vector<int64_t>{20, 30});
  CHECK(slice_time(s, 15, 41).ts_ms == std::vector<int64_t>{20, 30, 40});
  CHECK(slice_time(s, 41, 100).empty());
  CHECK(slice_time(s, 30, 30).empty());
  const OhlcvSeries r = slice_rows(s, 1, 3);
  CHECK(r.ts_ms == std::vector<int64_t>{20, 30});
  CHECK(r.close == std::vector<double>{120, 130});
  CHECK(r.turnover.size() == 2);
  CHECK(slice_rows(s, 3, 99).size() == 1);
  CHECK(lower_bound_time(s, 25) == 2);
}

TEST_CASE("merge: union by time, newer wins on the same bar") {
  const OhlcvSeries old = make({1, 2, 3}, 100, true);
  const OhlcvSeries fresh = make({3, 4}, 500, true);
  const OhlcvSeries m = merge_series(old, fresh);
  CHECK(m.ts_ms == std::vector<int64_t>{1, 2, 3, 4});
  CHECK(m.close == std::vector<double>{101, 102, 503, 504});
  CHECK(m.has_turnover());
  CHECK(merge_series(OhlcvSeries{}, fresh).has_turnover());  // an empty side does not drop turnover
  CHECK_FALSE(merge_series(make({1}, 1, false), fresh).has_turnover());
  CHECK_NOTHROW(m.validate());
}
