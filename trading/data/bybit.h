// Bybit v5 public market-data client: klines (GET /v5/market/kline) and order-book snapshots
// (GET /v5/market/orderbook), over libcurl, with retries, paging and a CSV cache.
//
// Kline semantics (what Bybit does, and what we do about it):
//   - every field of a row is a string: [startTime, open, high, low, close, volume, turnover];
//   - rows come newest first; we return them ascending;
//   - `start` and `end` are inclusive bounds on candle *start* times, in ms; `limit` is 1..1000;
//   - the newest row may be the still-forming candle. A candle [t, t + len) is kept only if it is
//     complete by now (t + len <= now) and lies inside the requested range (t + len - 1 <= end);
//     "now" comes from BybitConfig::now_ms so tests can fix it;
//   - longer ranges are fetched page by page backwards: request [start, end], then end = oldest
//     start - 1, until the oldest row reaches start or a page is empty.
// Retries with exponential backoff (base * 2^(attempt-1), capped) on transport errors, HTTP 429,
// 403 (Bybit's IP rate limit), 5xx and retCode 10006 (rate limit). Any other non-zero retCode throws
// at once with retCode and retMsg; an HTTP error left after the last attempt throws naming the status.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "trading/data/ohlcv.h"
#include "trading/data/orderbook.h"

namespace attnlab::data {

struct BybitConfig {
  std::string base_url = "https://api.bybit.com";
  int max_attempts = 5;                                // total tries per request (>= 1)
  std::chrono::milliseconds backoff_base{500};         // first retry waits this long
  std::chrono::milliseconds backoff_max{20000};        // no single wait is longer
  long connect_timeout_ms = 5000;
  long timeout_ms = 20000;                             // whole request
  std::function<int64_t()> now_ms;                     // empty -> system clock (UTC ms)
  bool use_env_proxy = true;                           // false: ignore http(s)_proxy (loopback tests)
};

struct KlineRequest {
  std::string category = "linear";  // spot | linear | inverse
  std::string symbol;               // e.g. BTCUSDT
  std::string interval = "60";      // 1 3 5 15 30 60 120 240 360 720 D W M
  std::optional<int64_t> start_ms;  // inclusive, candle start times
  std::optional<int64_t> end_ms;    // inclusive
  int limit = 200;                  // 1..1000 rows per page
};

// Throws attnlab::Error unless category/interval/limit are among Bybit's values and symbol is set.
void validate_kline_request(const KlineRequest& req);

// Length of the candle of `interval` that starts at start_ms: fixed for minutes, D and W; the
// calendar month for M (so start_ms must be a month start in UTC for M).
int64_t interval_length_ms(const std::string& interval, int64_t start_ms);

// Parses a kline response body. Closed candles inside the request's range (see above), ascending.
// `raw_rows` (optional) receives the row count before filtering and `oldest_ms` the oldest start
// seen, which drive paging. Throws attnlab::Error on bad JSON, on retCode != 0 (with retCode and
// retMsg) and on malformed rows.
OhlcvSeries parse_kline_response(const std::string& body, const KlineRequest& req, int64_t now_ms,
                                 size_t* raw_rows = nullptr, int64_t* oldest_ms = nullptr);

// Parses an order-book response body ({"result":{"s":..,"b":[[price,size],..],"a":..,"ts":..,"u":..}}).
OrderBookSnapshot parse_orderbook_response(const std::string& body);

class BybitClient {
 public:
  explicit BybitClient(BybitConfig config = {});

  // One page: closed candles of one request, ascending.
  OhlcvSeries get_klines(const KlineRequest& req);

  // All closed candles lying wholly inside [start_ms, end_ms] (t >= start_ms and t + len - 1 <= end_ms;
  // end defaults to now), paging backwards with `page_limit` rows per request. For every hourly candle
  // of a day: start = 00:00, end = 24:00 - 1 ms.
  OhlcvSeries fetch_klines(const std::string& category, const std::string& symbol, const std::string& interval,
                           int64_t start_ms, std::optional<int64_t> end_ms = std::nullopt, int page_limit = 1000);

  // Same range rule, served from the CSV file `cache_path` (one file per category/symbol/interval; created if
  // missing). Only the parts of [start_ms, end_ms] before the first or after the last cached bar are
  // requested; holes inside the cached span are not re-fetched. The merged cache is written back.
  OhlcvSeries fetch_klines_cached(const std::string& category, const std::string& symbol,
                                  const std::string& interval, int64_t start_ms, std::optional<int64_t> end_ms,
                                  const std::string& cache_path, int page_limit = 1000);

  // Order-book snapshot; limit is the number of levels per side (spot 1..200, derivatives 1..500).
  OrderBookSnapshot get_orderbook(const std::string& category, const std::string& symbol, int limit = 50);

  // GET base_url + path + "?" + query with the retry policy; returns the body of the first response
  // whose retCode is 0. Public so callers can reach other public endpoints.
  std::string get(const std::string& path, const std::vector<std::pair<std::string, std::string>>& query);

  int64_t now_ms() const;
  size_t requests_sent() const { return requests_sent_; }  // HTTP requests, retries included

 private:
  BybitConfig config_;
  size_t requests_sent_ = 0;
};

}  // namespace attnlab::data
