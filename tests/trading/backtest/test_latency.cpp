// Latency recorder and numpy-style percentiles against hand values.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "kernels/error.h"
#include "trading/backtest/latency.h"

using namespace attnlab::backtest;

TEST_CASE("percentile: linear interpolation as numpy's default") {
  // Unsorted 1..10: h = 9 q / 100.
  const std::vector<double> x = {7, 1, 10, 3, 5, 2, 9, 4, 8, 6};
  CHECK(percentile(x, 0) == 1.0);
  CHECK(percentile(x, 100) == 10.0);
  CHECK(percentile(x, 50) == doctest::Approx(5.5));   // h = 4.5 -> 5 + 0.5
  CHECK(percentile(x, 90) == doctest::Approx(9.1));   // h = 8.1 -> 9 + 0.1
  CHECK(percentile(x, 99) == doctest::Approx(9.91));  // h = 8.91 -> 9 + 0.91
  CHECK(percentile(x, 25) == doctest::Approx(3.25));  // h = 2.25 -> 3 + 0.25
  const std::vector<double> y = {0.5, 0.1, 0.3};
  CHECK(percentile(y, 90) == doctest::Approx(0.46));  // h = 1.8 -> 0.3 + 0.8 * 0.2
  CHECK(percentile(std::vector<double>{4.0}, 99) == 4.0);
  CHECK_THROWS_AS(percentile(std::vector<double>{}, 50), attnlab::Error);
  CHECK_THROWS_AS(percentile(y, 101), attnlab::Error);
}

TEST_CASE("latency recorder summary") {
  LatencyRecorder lat;
  lat.reserve(10);
  for (int i = 10; i >= 1; --i) lat.record_ns(static_cast<std::int64_t>(i) * 1'000'000);  // 10..1 ms
  CHECK(lat.count() == 10);
  CHECK(lat.samples_ms()[0] == 10.0);  // recording order kept
  const LatencySummary s = lat.summary();
  CHECK(s.count == 10);
  CHECK(s.mean_ms == doctest::Approx(5.5));
  CHECK(s.min_ms == 1.0);
  CHECK(s.max_ms == 10.0);
  CHECK(s.p50_ms == doctest::Approx(5.5));
  CHECK(s.p90_ms == doctest::Approx(9.1));
  CHECK(s.p99_ms == doctest::Approx(9.91));

  lat.record_ms(0.25);
  CHECK(lat.count() == 11);
  CHECK_THROWS_AS(lat.record_ns(-1), attnlab::Error);
  CHECK_THROWS_AS(lat.record_ms(NAN), attnlab::Error);
  CHECK(lat.count() == 11);

  const auto t0 = LatencyRecorder::now();
  lat.record_since(t0);
  CHECK(lat.samples_ms().back() >= 0.0);

  lat.clear();
  const LatencySummary e = lat.summary();
  CHECK(e.count == 0);
  CHECK(std::isnan(e.p99_ms));
}
