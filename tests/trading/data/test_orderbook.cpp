// Order-book features on small hand-made books, and parsing Bybit's orderbook payload.
#include <doctest/doctest.h>

#include <string>

#include "kernels/error.h"
#include "testing_util.h"
#include "trading/data/bybit.h"
#include "trading/data/orderbook.h"

using namespace attnlab::data;

namespace {

OrderBookSnapshot small_book() {
  OrderBookSnapshot b;
  b.symbol = "TEST";
  b.bids = {{100.0, 2}, {99.5, 3}, {99.0, 5}};
  b.asks = {{100.5, 1}, {101.0, 4}};
  return b;
}

}  // namespace

TEST_CASE("features of a hand-made book") {
  const OrderBookFeatures f = orderbook_features(small_book(), 5);
  CHECK(f.best_bid == 100.0);
  CHECK(f.best_ask == 100.5);
  CHECK(f.mid == 100.25);
  CHECK(f.spread == 0.5);
  CHECK(f.spread_bps == doctest::Approx(0.5 / 100.25 * 1e4));  // 49.875...
  // Microprice weights each best price by the *other* side's size: (100 * 1 + 100.5 * 2) / 3.
  CHECK(f.microprice == doctest::Approx(301.0 / 3));
  CHECK(f.imbalance == doctest::Approx((10.0 - 5.0) / 15.0));  // all levels (fewer than 5 exist)
  CHECK(f.cum_bid_depth == std::vector<double>{2, 5, 10});
  CHECK(f.cum_ask_depth == std::vector<double>{1, 5});
  CHECK(f.bid_levels == 3);
  CHECK(f.ask_levels == 2);

  const OrderBookFeatures top1 = orderbook_features(small_book(), 1);
  CHECK(top1.imbalance == doctest::Approx((2.0 - 1.0) / 3.0));
  CHECK(top1.cum_bid_depth == std::vector<double>{2});
  CHECK(top1.bid_levels == 3);  // level counts describe the whole book
  const OrderBookFeatures top2 = orderbook_features(small_book(), 2);
  CHECK(top2.imbalance == 0.0);  // 2 + 3 bid vs 1 + 4 ask
}

TEST_CASE("bad books are errors") {
  OrderBookSnapshot b = small_book();
  b.asks.clear();
  CHECK_THROWS_WITH_AS(orderbook_features(b), doctest::Contains("empty side"), attnlab::Error);
  b = small_book();
  b.asks[0].price = 100.0;  // touches the best bid
  CHECK_THROWS_WITH_AS(orderbook_features(b), doctest::Contains("crossed"), attnlab::Error);
  b = small_book();
  std::swap(b.bids[1], b.bids[2]);  // 100, 99, 99.5: level 2 is better than level 1
  CHECK_THROWS_WITH_AS(orderbook_features(b), doctest::Contains("bids not sorted best-first at level 2"),
                       attnlab::Error);
  b = small_book();
  b.asks[1].size = 0;
  CHECK_THROWS_WITH_AS(orderbook_features(b), doctest::Contains("asks level 1"), attnlab::Error);
  CHECK_THROWS_AS(orderbook_features(small_book(), 0), attnlab::Error);
}

TEST_CASE("Bybit orderbook payload -> snapshot -> features") {
  const std::string body =
      attnlab::data::testing::read_text(std::string(ATTNLAB_TEST_DATA_DIR) + "/bybit/orderbook_btcusdt.json");
  const OrderBookSnapshot book = parse_orderbook_response(body);
  CHECK(book.symbol == "BTCUSDT");
  CHECK(book.ts_ms == 1704099601234);
  const OrderBookFeatures f = orderbook_features(book, 3);
  CHECK(f.mid == 42100.75);
  CHECK(f.spread == 0.5);
  CHECK(f.microprice == doctest::Approx((42100.5 * 0.5 + 42101.0 * 1.25) / 1.75));
  CHECK(f.imbalance == doctest::Approx((4.0 - 5.0) / 9.0));  // bids 1.25 + .75 + 2, asks .5 + 1.5 + 3
  CHECK(f.cum_bid_depth == std::vector<double>{1.25, 2.0, 4.0});
  CHECK(f.bid_levels == 4);
  CHECK(f.ask_levels == 3);

  CHECK_THROWS_WITH_AS(parse_orderbook_response(R"({"retCode":10001,"retMsg":"params error","result":{}})"),
                       doctest::Contains("retCode 10001 retMsg 'params error'"), attnlab::Error);
  CHECK_THROWS_WITH_AS(parse_orderbook_response(R"({"retCode":0,"retMsg":"OK","result":{"s":"X","b":[["1"]],"a":[]}})"),
                       doctest::Contains("level 0 is not [price, size]"), attnlab::Error);
  CHECK_THROWS_WITH_AS(
      parse_orderbook_response(R"({"retCode":0,"retMsg":"OK","result":{"s":"X","b":[["2","1"]],"a":[["1","1"]]}})"),
      doctest::Contains("crossed"), attnlab::Error);
}
