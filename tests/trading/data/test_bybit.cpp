// Bybit v5 client against a scripted loopback server serving recorded responses in Bybit's format
// (tests/data/bybit/): paging, ordering, the unclosed candle, retries, errors, query strings, cache.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "kernels/error.h"
#include "loopback_http.h"
#include "testing_util.h"
#include "trading/data/bybit.h"
#include "trading/data/csv.h"

using namespace attnlab::data;
using attnlab::data::testing::LoopbackServer;
using attnlab::data::testing::read_text;
using attnlab::data::testing::ScriptedResponse;
using attnlab::data::testing::TempDir;

namespace {

constexpr int64_t kBase = 1704067200000;  // 2024-01-01T00:00:00Z: the 00:00 candle of the fixtures
constexpr int64_t kHour = 3600000;

std::string fixture(const std::string& name) { return read_text(std::string(ATTNLAB_TEST_DATA_DIR) + "/bybit/" + name); }
ScriptedResponse ok(const std::string& name) { return {200, fixture(name)}; }

BybitConfig config_for(const std::string& base_url, int64_t now, int attempts = 4) {
  BybitConfig c;
  c.base_url = base_url;
  c.max_attempts = attempts;
  c.backoff_base = std::chrono::milliseconds(1);
  c.backoff_max = std::chrono::milliseconds(4);
  c.connect_timeout_ms = 2000;
  c.timeout_ms = 3000;
  c.now_ms = [now] { return now; };
  c.use_env_proxy = false;  // a proxy from the environment must not see loopback requests
  return c;
}

std::string kline_target(int64_t start, int64_t end, int limit) {
  return "/v5/market/kline?category=linear&symbol=BTCUSDT&interval=60&start=" + std::to_string(start) +
         "&end=" + std::to_string(end) + "&limit=" + std::to_string(limit);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const attnlab::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("fetch_klines pages backwards over 3 pages, returns ascending closed candles") {
  LoopbackServer server({ok("kline_page1.json"), ok("kline_page2.json"), ok("kline_page3.json")});
  const int64_t now = kBase + 9 * kHour + 30 * 60000;  // 09:30: the 09:00 candle is still forming
  BybitClient client(config_for(server.base_url(), now));
  const OhlcvSeries s = client.fetch_klines("linear", "BTCUSDT", "60", kBase, kBase + 9 * kHour, 4);

  REQUIRE(s.size() == 9);  // 00:00 .. 08:00; 09:00 dropped
  CHECK(s.symbol == "BTCUSDT");
  for (size_t i = 0; i < s.size(); ++i) CHECK(s.ts_ms[i] == kBase + static_cast<int64_t>(i) * kHour);
  // Values from the fixtures (rows arrive newest first; these are the oldest and newest kept).
  CHECK(s.open[0] == 42388.9);
  CHECK(s.high[0] == 42562.6);
  CHECK(s.low[0] == 42334.4);
  CHECK(s.close[0] == 42521.9);
  CHECK(s.volume[0] == 1049.05);
  CHECK(s.turnover[0] == 44537964.7362);
  CHECK(s.close[8] == 42360.5);
  CHECK(s.turnover[8] == 49285546.2994);
  CHECK(client.requests_sent() == 3);
  // Each page asks for [start, oldest start seen - 1].
  const auto t = server.targets();
  REQUIRE(t.size() == 3);
  CHECK(t[0] == kline_target(kBase, kBase + 9 * kHour, 4));
  CHECK(t[1] == kline_target(kBase, kBase + 6 * kHour - 1, 4));
  CHECK(t[2] == kline_target(kBase, kBase + 2 * kHour - 1, 4));
}

TEST_CASE("get_klines: one page, newest-first rows sorted, unclosed candle decided by the injected clock") {
  for (int64_t now : {kBase + 9 * kHour + 30 * 60000, kBase + 10 * kHour}) {
    CAPTURE(now);
    LoopbackServer server({ok("kline_page1.json")});
    BybitClient client(config_for(server.base_url(), now));
    KlineRequest req;
    req.symbol = "BTCUSDT";
    req.limit = 4;
    const OhlcvSeries s = client.get_klines(req);
    const bool nine_closed = now >= kBase + 10 * kHour;  // [09:00, 10:00) is complete at 10:00
    REQUIRE(s.size() == (nine_closed ? 4u : 3u));
    CHECK(s.ts_ms.front() == kBase + 6 * kHour);
    CHECK(s.ts_ms.back() == kBase + (nine_closed ? 9 : 8) * kHour);
    const auto t = server.targets();
    REQUIRE(t.size() == 1);
    CHECK(t[0] == "/v5/market/kline?category=linear&symbol=BTCUSDT&interval=60&limit=4");
  }
}

TEST_CASE("retries after HTTP 429, retCode 10006 and HTTP 403, then succeeds") {
  LoopbackServer server({{429, "Too Many Requests", "text/plain"},
                         {200, fixture("retcode_10006.json")},
                         {403, "access too frequent", "text/plain"},
                         ok("kline_page3.json")});
  BybitClient client(config_for(server.base_url(), kBase + 12 * kHour, 5));
  KlineRequest req;
  req.symbol = "BTCUSDT";
  req.start_ms = kBase;
  req.end_ms = kBase + 2 * kHour - 1;
  req.limit = 4;
  const OhlcvSeries s = client.get_klines(req);
  REQUIRE(s.size() == 2);
  CHECK(s.close[1] == 42512.6);
  CHECK(client.requests_sent() == 4);
  const auto t = server.targets();
  REQUIRE(t.size() == 4);
  for (const auto& target : t) CHECK(target == kline_target(kBase, kBase + 2 * kHour - 1, 4));
}

TEST_CASE("5xx on every attempt: error names the status after max_attempts") {
  LoopbackServer server({{500, "oops", "text/plain"}, {502, "bad gateway", "text/plain"}, {503, "busy", "text/plain"}});
  BybitClient client(config_for(server.base_url(), kBase, 3));
  KlineRequest req;
  req.symbol = "BTCUSDT";
  const std::string msg = error_of([&] { client.get_klines(req); });
  CHECK(msg.find("HTTP status 503") != std::string::npos);
  CHECK(msg.find("after 3 attempts") != std::string::npos);
  CHECK(server.targets().size() == 3);
}

TEST_CASE("rate limit (10006) on every attempt: error names retCode and retMsg") {
  LoopbackServer server({{200, fixture("retcode_10006.json")}, {200, fixture("retcode_10006.json")}});
  BybitClient client(config_for(server.base_url(), kBase, 2));
  KlineRequest req;
  req.symbol = "BTCUSDT";
  const std::string msg = error_of([&] { client.get_klines(req); });
  CHECK(msg.find("retCode 10006") != std::string::npos);
  CHECK(msg.find("Too many visits!") != std::string::npos);
}

TEST_CASE("retCode 10001 fails at once with retCode and retMsg; other HTTP errors are not retried") {
  {
    LoopbackServer server({{200, fixture("retcode_10001.json")}, ok("kline_page1.json")});
    BybitClient client(config_for(server.base_url(), kBase, 5));
    KlineRequest req;
    req.symbol = "BTCUSDX";
    const std::string msg = error_of([&] { client.get_klines(req); });
    CHECK(msg.find("retCode 10001") != std::string::npos);
    CHECK(msg.find("params error: symbol invalid") != std::string::npos);
    CHECK(client.requests_sent() == 1);
    CHECK(server.targets().size() == 1);
  }
  {
    LoopbackServer server({{404, "not found", "text/plain"}, ok("kline_page1.json")});
    BybitClient client(config_for(server.base_url(), kBase, 5));
    KlineRequest req;
    req.symbol = "BTCUSDT";
    CHECK(error_of([&] { client.get_klines(req); }).find("HTTP status 404") != std::string::npos);
    CHECK(client.requests_sent() == 1);
  }
  {
    LoopbackServer server({{200, "<html>maintenance</html>", "text/html"}});
    BybitClient client(config_for(server.base_url(), kBase, 1));
    KlineRequest req;
    req.symbol = "BTCUSDT";
    CHECK(error_of([&] { client.get_klines(req); }).find("not JSON") != std::string::npos);
  }
}

TEST_CASE("transport errors are retried, then reported") {
  BybitClient client(config_for("http://127.0.0.1:" + std::to_string(LoopbackServer::refused_port()), kBase, 2));
  KlineRequest req;
  req.symbol = "BTCUSDT";
  const std::string msg = error_of([&] { client.get_klines(req); });
  CHECK(msg.find("transport error") != std::string::npos);
  CHECK(msg.find("after 2 attempts") != std::string::npos);
  CHECK(client.requests_sent() == 2);
}

TEST_CASE("requests are validated before anything is sent") {
  BybitClient client(config_for("http://127.0.0.1:1", kBase, 1));
  KlineRequest req;
  req.symbol = "BTCUSDT";
  req.category = "option";
  CHECK(error_of([&] { client.get_klines(req); }).find("category 'option'") != std::string::npos);
  req.category = "spot";
  req.interval = "2";
  CHECK(error_of([&] { client.get_klines(req); }).find("interval '2'") != std::string::npos);
  req.interval = "D";
  req.limit = 1001;
  CHECK(error_of([&] { client.get_klines(req); }).find("limit 1001") != std::string::npos);
  req.limit = 0;
  CHECK_THROWS_AS(client.get_klines(req), attnlab::Error);
  req.limit = 10;
  req.symbol = "";
  CHECK_THROWS_AS(client.get_klines(req), attnlab::Error);
  CHECK_THROWS_AS(client.get_orderbook("linear", "BTCUSDT", 501), attnlab::Error);
  CHECK_THROWS_AS(client.get_orderbook("spot", "BTCUSDT", 201), attnlab::Error);
  CHECK(client.requests_sent() == 0);
  for (const char* iv : {"1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M"}) {
    req.symbol = "X";
    req.interval = iv;
    CHECK_NOTHROW(validate_kline_request(req));
  }
}

TEST_CASE("interval lengths, including calendar months") {
  CHECK(interval_length_ms("1", kBase) == 60000);
  CHECK(interval_length_ms("720", kBase) == 12 * kHour);
  CHECK(interval_length_ms("D", kBase) == 24 * kHour);
  CHECK(interval_length_ms("W", kBase) == 7 * 24 * kHour);
  CHECK(interval_length_ms("M", kBase) == 31 * 24 * kHour);                    // January 2024
  CHECK(interval_length_ms("M", kBase + 31 * 24 * kHour) == 29 * 24 * kHour);  // February 2024 (leap)
  CHECK(interval_length_ms("M", 1733011200000) == 31 * 24 * kHour);            // December 2024 -> January
}

TEST_CASE("malformed kline payloads are errors") {
  KlineRequest req;
  req.symbol = "BTCUSDT";
  const std::string head = R"({"retCode":0,"retMsg":"OK","result":{"category":"linear","symbol":"BTCUSDT","list":)";
  CHECK(error_of([&] { parse_kline_response(head + R"([["1704067200000","1","2","0.5","abc","1","1"]]}})", req, kBase + kHour); })
            .find("not a number: 'abc'") != std::string::npos);
  CHECK(error_of([&] { parse_kline_response(head + R"([["1704067200000","1","2"]]}})", req, kBase + kHour); })
            .find("row 0") != std::string::npos);
  CHECK(error_of([&] { parse_kline_response(head + R"([["1704067200000","1","0.5","2","1","1","1"]]}})", req, kBase + kHour); })
            .find("high 0.5 < low 2") != std::string::npos);
  CHECK(error_of([&] { parse_kline_response(R"({"retCode":0,"retMsg":"OK","result":{}})", req, kBase); })
            .find("no result.list") != std::string::npos);
  size_t raw = 99;
  CHECK(parse_kline_response(fixture("kline_empty.json"), req, kBase, &raw).empty());
  CHECK(raw == 0);
}

TEST_CASE("fetch_klines_cached: fetches only what the cache lacks") {
  TempDir dir("bybit_cache");
  const std::string cache = dir.file("linear_BTCUSDT_60.csv");
  const int64_t end = kBase + 9 * kHour;
  {  // cold cache: three pages, written to disk
    LoopbackServer server({ok("kline_page1.json"), ok("kline_page2.json"), ok("kline_page3.json")});
    BybitClient client(config_for(server.base_url(), kBase + 9 * kHour + 30 * 60000));
    const OhlcvSeries s = client.fetch_klines_cached("linear", "BTCUSDT", "60", kBase, end, cache, 4);
    CHECK(s.size() == 9);
    CHECK(client.requests_sent() == 3);
    REQUIRE(std::filesystem::exists(cache));
    CHECK(read_ohlcv_csv(cache).size() == 9);
  }
  {  // warm cache, same range: no request at all (the server is unreachable and would fail)
    BybitClient client(config_for("http://127.0.0.1:" + std::to_string(LoopbackServer::refused_port()),
                                  kBase + 9 * kHour + 30 * 60000, 1));
    const OhlcvSeries s = client.fetch_klines_cached("linear", "BTCUSDT", "60", kBase + 2 * kHour, end, cache, 4);
    CHECK(client.requests_sent() == 0);
    REQUIRE(s.size() == 7);  // a sub-range is served from the cache
    CHECK(s.ts_ms.front() == kBase + 2 * kHour);
    CHECK(s.close.front() == 42366.5);
    // An end inside the 08:00 candle excludes it: only candles wholly inside the range are returned.
    CHECK(client.fetch_klines_cached("linear", "BTCUSDT", "60", kBase, kBase + 8 * kHour + 1, cache, 4).size() == 8);
  }
  {  // wider range later: only the head before and the tail after the cached span are requested
    LoopbackServer server({ok("kline_head.json"), ok("kline_tail.json")});
    BybitClient client(config_for(server.base_url(), kBase + 12 * kHour + 1));
    const OhlcvSeries s =
        client.fetch_klines_cached("linear", "BTCUSDT", "60", kBase - 2 * kHour, kBase + 12 * kHour - 1, cache, 4);
    REQUIRE(s.size() == 14);  // -02:00 .. 11:00
    for (size_t i = 0; i < s.size(); ++i) CHECK(s.ts_ms[i] == kBase + (static_cast<int64_t>(i) - 2) * kHour);
    CHECK(s.close[11] == 42254.2);  // the 09:00 candle, now closed, with its final close
    const auto t = server.targets();
    REQUIRE(t.size() == 2);
    CHECK(t[0] == kline_target(kBase - 2 * kHour, kBase - 1, 4));
    CHECK(t[1] == kline_target(kBase + 9 * kHour, kBase + 12 * kHour - 1, 4));
    const OhlcvSeries disk = read_ohlcv_csv(cache);
    CHECK(disk.size() == 14);
    CHECK(disk.close == s.close);
    CHECK(disk.turnover == s.turnover);
  }
}

TEST_CASE("get_orderbook: query string and parsed snapshot") {
  LoopbackServer server({ok("orderbook_btcusdt.json")});
  BybitClient client(config_for(server.base_url(), kBase));
  const OrderBookSnapshot book = client.get_orderbook("linear", "BTCUSDT", 50);
  const auto t = server.targets();
  REQUIRE(t.size() == 1);
  CHECK(t[0] == "/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=50");
  CHECK(book.symbol == "BTCUSDT");
  CHECK(book.ts_ms == 1704099601234);
  CHECK(book.update_id == 18521288);
  REQUIRE(book.bids.size() == 4);
  REQUIRE(book.asks.size() == 3);
  CHECK(book.bids[0].price == 42100.5);
  CHECK(book.bids[0].size == 1.25);
  CHECK(book.asks[2].price == 42103.0);
  CHECK(book.asks[2].size == 3.0);
}
