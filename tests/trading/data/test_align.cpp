// Multi-symbol alignment: inner join on timestamps, per-symbol loss report, joined feature sets.
#include <doctest/doctest.h>

#include <cmath>

#include "kernels/error.h"
#include "trading/data/align.h"

using namespace attnlab::data;

namespace {

constexpr int64_t kH = 3600000;

// Bars at the given hours; close = 10 * hour + tag so every value says where it came from.
OhlcvSeries bars(const std::string& sym, std::initializer_list<int> hours, double tag) {
  OhlcvSeries s;
  s.symbol = sym;
  for (int h : hours) {
    const double c = 10.0 * h + tag;
    s.push_back({h * kH, c, c + 1, c - 1, c, 100.0 + h, 0}, false);
  }
  return s;
}

}  // namespace

TEST_CASE("inner join keeps exactly the common times and reports the loss") {
  // A starts at 1, B has a gap at 4 and runs on to 7, C starts at 0.
  const std::vector<OhlcvSeries> in = {bars("A", {1, 2, 3, 4, 5, 6}, 0.1), bars("B", {2, 3, 5, 6, 7}, 0.2),
                                       bars("C", {0, 1, 2, 3, 4, 5, 6}, 0.3)};
  AlignReport rep;
  const auto out = align_inner(in, &rep);
  REQUIRE(out.size() == 3);
  const std::vector<int64_t> common = {2 * kH, 3 * kH, 5 * kH, 6 * kH};
  for (size_t k = 0; k < 3; ++k) {
    CAPTURE(k);
    CHECK(out[k].symbol == in[k].symbol);
    CHECK(out[k].ts_ms == common);
    // Row i of every symbol is the bar of the same hour.
    for (size_t i = 0; i < common.size(); ++i)
      CHECK(out[k].close[i] == doctest::Approx(10.0 * (common[i] / kH) + 0.1 * (k + 1)));
  }
  CHECK(rep.symbols == std::vector<std::string>{"A", "B", "C"});
  CHECK(rep.rows_in == std::vector<size_t>{6, 5, 7});
  CHECK(rep.rows_dropped == std::vector<size_t>{2, 1, 3});
  CHECK(rep.rows_out == 4);

  // What the seeds' "keep the last min_len rows" would have done: rows no longer share a time.
  const size_t min_len = 5;
  bool mismatched = false;  // A's last 5 rows are hours 2..6, B's are 2, 3, 5, 6, 7
  for (size_t i = 0; i < min_len; ++i)
    mismatched = mismatched || in[0].ts_ms[in[0].size() - min_len + i] != in[1].ts_ms[in[1].size() - min_len + i];
  CHECK(mismatched);
}

TEST_CASE("alignment edge cases") {
  CHECK_THROWS_AS(align_inner({}), attnlab::Error);
  OhlcvSeries bad = bars("X", {1, 2, 3}, 0);
  std::swap(bad.ts_ms[0], bad.ts_ms[1]);
  CHECK_THROWS_WITH_AS(align_inner({bad}), doctest::Contains("'X' timestamps are not strictly ascending"),
                       attnlab::Error);
  const auto disjoint = align_inner({bars("A", {1, 2}, 0), bars("B", {3, 4}, 0)});
  CHECK(disjoint[0].empty());
  CHECK(disjoint[1].empty());
  const auto single = align_inner({bars("A", {1, 2}, 0)});
  CHECK(single[0].ts_ms == std::vector<int64_t>{kH, 2 * kH});
}

TEST_CASE("feature sets join on time with prefixed names") {
  const double nan = std::nan("");
  const FeatureSet a = make_feature_set({"r", "v"}, {1, 2, 3, 4}, {{nan, 0.1, 0.2, 0.3}, {1, 2, 3, 4}});
  const FeatureSet b = make_feature_set({"r"}, {2, 3, 4, 5}, {{nan, nan, -0.4, -0.5}});
  CHECK(a.first_valid == 1);
  CHECK(b.first_valid == 2);
  AlignReport rep;
  const FeatureSet j = align_features({a, b}, {"BTC", "ETH"}, &rep);
  CHECK(j.names == std::vector<std::string>{"BTC_r", "BTC_v", "ETH_r"});
  CHECK(j.ts_ms == std::vector<int64_t>{2, 3, 4});
  CHECK(j.at(0, 0) == 0.1);
  CHECK(j.at(2, 1) == 4);
  CHECK(std::isnan(j.at(1, 2)));
  CHECK(j.at(2, 2) == -0.4);
  CHECK(j.first_valid == 2);  // ETH warms up later than BTC
  CHECK(rep.rows_dropped == std::vector<size_t>{1, 1});
  CHECK(rep.rows_out == 3);
  CHECK_THROWS_AS(align_features({a, b}, {"BTC"}), attnlab::Error);
}
