#include "trading/data/bybit.h"

#include <curl/curl.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "kernels/error.h"
#include "trading/data/csv.h"
#include "trading/data/timeutil.h"

namespace attnlab::data {

using nlohmann::json;

namespace {

const char* const kIntervals[] = {"1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M"};

bool valid_category(const std::string& c) { return c == "spot" || c == "linear" || c == "inverse"; }

std::string snippet(const std::string& body) {
  return body.size() <= 200 ? body : body.substr(0, 200) + "...";
}

json parse_json(const std::string& body, const char* what) {
  try {
    return json::parse(body);
  } catch (const json::exception& e) {
    throw Error(cat(what, ": response is not JSON (", e.what(), "): ", snippet(body)));
  }
}

// Bybit sends every number as a string; accept real JSON numbers too.
double to_double(const json& v, const char* what, size_t row) {
  if (v.is_number()) return v.get<double>();
  ATTNLAB_CHECK(v.is_string(), what, ": row ", row, ": field is neither string nor number: ", v.dump());
  const std::string& s = v.get_ref<const std::string&>();
  double out = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  ATTNLAB_CHECK(ec == std::errc() && end == s.data() + s.size() && !s.empty(), what, ": row ", row,
                ": not a number: '", s, "'");
  return out;
}

int64_t to_int64(const json& v, const char* what, size_t row) {
  if (v.is_number_integer()) return v.get<int64_t>();
  ATTNLAB_CHECK(v.is_string(), what, ": row ", row, ": timestamp is neither string nor integer: ", v.dump());
  const std::string& s = v.get_ref<const std::string&>();
  int64_t out = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  ATTNLAB_CHECK(ec == std::errc() && end == s.data() + s.size() && !s.empty(), what, ": row ", row,
                ": bad timestamp '", s, "'");
  return out;
}

// Throws with retCode and retMsg unless the envelope says success.
void check_ret_code(const json& j, const char* what) {
  ATTNLAB_CHECK(j.is_object() && j.contains("retCode"), what, ": response has no retCode: ", snippet(j.dump()));
  const int64_t rc = j.at("retCode").get<int64_t>();
  if (rc != 0)
    throw Error(cat(what, ": Bybit retCode ", rc, " retMsg '", j.value("retMsg", std::string()), "'"));
}

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

struct HttpResult {
  bool transport_ok = false;
  long status = 0;
  std::string body;
  std::string error;  // curl's message when !transport_ok
};

size_t on_data(char* ptr, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(ptr, size * n);
  return size * n;
}

HttpResult http_get(const std::string& url, const BybitConfig& cfg) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  HttpResult r;
  CURL* h = curl_easy_init();
  ATTNLAB_CHECK(h != nullptr, "bybit: curl_easy_init failed");
  char err[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, cfg.connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, cfg.timeout_ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);           // timeouts without SIGALRM: safe in threads
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");    // any encoding curl can decode (gzip)
  curl_easy_setopt(h, CURLOPT_USERAGENT, "attnlab/0.1");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  if (!cfg.use_env_proxy) curl_easy_setopt(h, CURLOPT_PROXY, "");  // "" = no proxy, env vars ignored
  const CURLcode rc = curl_easy_perform(h);
  if (rc == CURLE_OK) {
    r.transport_ok = true;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  } else {
    r.error = err[0] ? err : curl_easy_strerror(rc);
  }
  curl_easy_cleanup(h);
  return r;
}

}  // namespace

void validate_kline_request(const KlineRequest& req) {
  ATTNLAB_CHECK(valid_category(req.category), "bybit kline: category '", req.category,
                "' is not one of spot, linear, inverse");
  ATTNLAB_CHECK(!req.symbol.empty(), "bybit kline: symbol is empty");
  ATTNLAB_CHECK(std::find(std::begin(kIntervals), std::end(kIntervals), req.interval) != std::end(kIntervals),
                "bybit kline: interval '", req.interval, "' is not one of 1,3,5,15,30,60,120,240,360,720,D,W,M");
  ATTNLAB_CHECK(req.limit >= 1 && req.limit <= 1000, "bybit kline: limit ", req.limit, " is not in 1..1000");
  if (req.start_ms && req.end_ms)
    ATTNLAB_CHECK(*req.start_ms <= *req.end_ms, "bybit kline: start ", *req.start_ms, " > end ", *req.end_ms);
}

int64_t interval_length_ms(const std::string& interval, int64_t start_ms) {
  if (interval == "D") return kMsPerDay;
  if (interval == "W") return 7 * kMsPerDay;
  if (interval == "M") {  // calendar month starting at start_ms's month
    const int64_t days = start_ms >= 0 ? start_ms / kMsPerDay : -((-start_ms + kMsPerDay - 1) / kMsPerDay);
    const CivilDate c = civil_from_days(days);
    const int64_t next = c.month == 12 ? days_from_civil(c.year + 1, 1, 1) : days_from_civil(c.year, c.month + 1, 1);
    return next * kMsPerDay - start_ms;
  }
  int minutes = 0;
  auto [end, ec] = std::from_chars(interval.data(), interval.data() + interval.size(), minutes);
  ATTNLAB_CHECK(ec == std::errc() && end == interval.data() + interval.size() && minutes > 0,
                "bybit: unknown interval '", interval, "'");
  return minutes * kMsPerMinute;
}

OhlcvSeries parse_kline_response(const std::string& body, const KlineRequest& req, int64_t now_ms, size_t* raw_rows,
                                 int64_t* oldest_ms) {
  const char* what = "bybit kline";
  const json j = parse_json(body, what);
  check_ret_code(j, what);
  ATTNLAB_CHECK(j.contains("result") && j["result"].contains("list") && j["result"]["list"].is_array(), what,
                ": response has no result.list: ", snippet(body));
  const json& list = j["result"]["list"];
  if (raw_rows) *raw_rows = list.size();
  if (oldest_ms) *oldest_ms = INT64_MAX;

  bool with_turnover = true;
  for (const auto& row : list) with_turnover = with_turnover && row.is_array() && row.size() >= 7;
  std::vector<OhlcvBar> bars;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& row = list[i];
    ATTNLAB_CHECK(row.is_array() && row.size() >= 6, what, ": row ", i, " is not [startTime, open, high, low, close,"
                  " volume, turnover]: ", row.dump());
    OhlcvBar b;
    b.ts_ms = to_int64(row[0], what, i);
    b.open = to_double(row[1], what, i);
    b.high = to_double(row[2], what, i);
    b.low = to_double(row[3], what, i);
    b.close = to_double(row[4], what, i);
    b.volume = to_double(row[5], what, i);
    if (with_turnover) b.turnover = to_double(row[6], what, i);
    if (oldest_ms) *oldest_ms = std::min(*oldest_ms, b.ts_ms);
    const int64_t stop = b.ts_ms + interval_length_ms(req.interval, b.ts_ms);  // candle covers [ts, stop)
    const bool closed = stop <= now_ms;
    const bool in_range = (!req.start_ms || b.ts_ms >= *req.start_ms) && (!req.end_ms || stop - 1 <= *req.end_ms);
    if (closed && in_range) bars.push_back(b);
  }
  std::sort(bars.begin(), bars.end(), [](const OhlcvBar& a, const OhlcvBar& b) { return a.ts_ms < b.ts_ms; });
  OhlcvSeries s;
  s.symbol = j["result"].value("symbol", req.symbol);
  s.reserve(bars.size());
  for (const auto& b : bars) s.push_back(b, with_turnover);
  s.validate();  // duplicates, bad prices, high < low: the exchange sent something we must not use
  return s;
}

OrderBookSnapshot parse_orderbook_response(const std::string& body) {
  const char* what = "bybit orderbook";
  const json j = parse_json(body, what);
  check_ret_code(j, what);
  ATTNLAB_CHECK(j.contains("result") && j["result"].is_object(), what, ": response has no result: ", snippet(body));
  const json& r = j["result"];
  ATTNLAB_CHECK(r.contains("b") && r["b"].is_array() && r.contains("a") && r["a"].is_array(), what,
                ": result has no b/a arrays: ", snippet(body));
  OrderBookSnapshot book;
  book.symbol = r.value("s", std::string());
  if (r.contains("ts")) book.ts_ms = to_int64(r["ts"], what, 0);
  if (r.contains("u")) book.update_id = to_int64(r["u"], what, 0);
  auto side = [&](const json& arr, std::vector<BookLevel>& out) {
    for (size_t i = 0; i < arr.size(); ++i) {
      ATTNLAB_CHECK(arr[i].is_array() && arr[i].size() >= 2, what, ": level ", i, " is not [price, size]: ",
                    arr[i].dump());
      out.push_back({to_double(arr[i][0], what, i), to_double(arr[i][1], what, i)});
    }
  };
  side(r["b"], book.bids);
  side(r["a"], book.asks);
  book.validate();
  return book;
}

BybitClient::BybitClient(BybitConfig config) : config_(std::move(config)) {
  ATTNLAB_CHECK(config_.max_attempts >= 1, "BybitClient: max_attempts must be >= 1, got ", config_.max_attempts);
  while (!config_.base_url.empty() && config_.base_url.back() == '/') config_.base_url.pop_back();
}

int64_t BybitClient::now_ms() const {
  if (config_.now_ms) return config_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string BybitClient::get(const std::string& path, const std::vector<std::pair<std::string, std::string>>& query) {
  std::string url = config_.base_url + path;
  for (size_t i = 0; i < query.size(); ++i)
    url += (i == 0 ? "?" : "&") + url_encode(query[i].first) + "=" + url_encode(query[i].second);

  std::string last;  // why the previous attempt failed
  for (int attempt = 1; attempt <= config_.max_attempts; ++attempt) {
    if (attempt > 1) {
      // base * 2^(attempt-2) before try `attempt`: base, 2 base, 4 base, ... capped.
      const auto wait = std::min(config_.backoff_max, config_.backoff_base * (int64_t{1} << std::min(attempt - 2, 30)));
      std::this_thread::sleep_for(wait);
    }
    const HttpResult r = http_get(url, config_);
    ++requests_sent_;
    if (!r.transport_ok) {
      last = cat("transport error: ", r.error);
      continue;
    }
    if (r.status == 429 || r.status == 403 || r.status >= 500) {
      last = cat("HTTP status ", r.status, ": ", snippet(r.body));
      continue;
    }
    if (r.status != 200)
      throw Error(cat("bybit GET ", url, ": HTTP status ", r.status, ": ", snippet(r.body)));
    const json j = parse_json(r.body, "bybit");
    ATTNLAB_CHECK(j.is_object() && j.contains("retCode"), "bybit GET ", url, ": response has no retCode: ",
                  snippet(r.body));
    const int64_t rc = j["retCode"].get<int64_t>();
    const std::string msg = j.value("retMsg", std::string());
    if (rc == 0) return r.body;
    if (rc == 10006) {  // "Too many visits": Bybit's API rate limit, transient by definition
      last = cat("retCode 10006 retMsg '", msg, "'");
      continue;
    }
    throw Error(cat("bybit GET ", url, ": retCode ", rc, " retMsg '", msg, "'"));
  }
  throw Error(cat("bybit GET ", url, ": failed after ", config_.max_attempts, " attempts; last: ", last));
}

OhlcvSeries BybitClient::get_klines(const KlineRequest& req) {
  validate_kline_request(req);
  std::vector<std::pair<std::string, std::string>> q = {
      {"category", req.category}, {"symbol", req.symbol}, {"interval", req.interval}};
  if (req.start_ms) q.emplace_back("start", std::to_string(*req.start_ms));
  if (req.end_ms) q.emplace_back("end", std::to_string(*req.end_ms));
  q.emplace_back("limit", std::to_string(req.limit));
  return parse_kline_response(get("/v5/market/kline", q), req, now_ms());
}

OhlcvSeries BybitClient::fetch_klines(const std::string& category, const std::string& symbol,
                                      const std::string& interval, int64_t start_ms, std::optional<int64_t> end_ms,
                                      int page_limit) {
  const int64_t now = now_ms();
  KlineRequest req{category, symbol, interval, start_ms, end_ms.value_or(now), page_limit};
  validate_kline_request(req);
  OhlcvSeries all;
  all.symbol = symbol;
  int64_t previous_oldest = INT64_MAX;
  while (true) {
    std::vector<std::pair<std::string, std::string>> q = {
        {"category", category}, {"symbol", symbol}, {"interval", interval}, {"start", std::to_string(start_ms)},
        {"end", std::to_string(*req.end_ms)}, {"limit", std::to_string(page_limit)}};
    size_t raw = 0;
    int64_t oldest = INT64_MAX;
    const OhlcvSeries page = parse_kline_response(get("/v5/market/kline", q), req, now, &raw, &oldest);
    if (raw == 0) break;
    all = merge_series(page, all);
    // Stop at the range start, or if the server ignored `end` and we would ask for the same page again.
    if (oldest <= start_ms || oldest >= previous_oldest) break;
    previous_oldest = oldest;
    req.end_ms = oldest - 1;
  }
  all.symbol = symbol;
  return all;
}

OhlcvSeries BybitClient::fetch_klines_cached(const std::string& category, const std::string& symbol,
                                             const std::string& interval, int64_t start_ms,
                                             std::optional<int64_t> end_ms, const std::string& cache_path,
                                             int page_limit) {
  const int64_t now = now_ms();
  const int64_t end = end_ms.value_or(now);
  validate_kline_request({category, symbol, interval, start_ms, end, page_limit});
  OhlcvSeries cache;
  cache.symbol = symbol;
  if (std::filesystem::exists(cache_path)) {
    CsvOptions opt;
    opt.symbol = symbol;
    cache = read_ohlcv_csv(cache_path, opt);
  }
  OhlcvSeries merged = cache;
  if (cache.empty()) {
    merged = fetch_klines(category, symbol, interval, start_ms, end, page_limit);
  } else {
    if (start_ms < cache.ts_ms.front())
      merged = merge_series(merged, fetch_klines(category, symbol, interval, start_ms, cache.ts_ms.front() - 1,
                                                 page_limit));
    const int64_t last = cache.ts_ms.back();
    const int64_t next = last + interval_length_ms(interval, last);
    // Ask for the tail only when at least one more closed candle can exist inside the range.
    if (next + interval_length_ms(interval, next) <= std::min(now, end + 1))
      merged = merge_series(merged, fetch_klines(category, symbol, interval, next, end, page_limit));
  }
  merged.symbol = symbol;
  if (merged.size() != cache.size() || !std::filesystem::exists(cache_path)) write_ohlcv_csv(cache_path, merged);
  // Same range rule as fetch_klines: drop cached candles that end after `end`.
  OhlcvSeries out = slice_time(merged, start_ms, end + 1);
  size_t keep = out.size();
  while (keep > 0 && out.ts_ms[keep - 1] + interval_length_ms(interval, out.ts_ms[keep - 1]) - 1 > end) --keep;
  return slice_rows(out, 0, keep);
}

OrderBookSnapshot BybitClient::get_orderbook(const std::string& category, const std::string& symbol, int limit) {
  ATTNLAB_CHECK(valid_category(category), "bybit orderbook: category '", category,
                "' is not one of spot, linear, inverse");
  ATTNLAB_CHECK(!symbol.empty(), "bybit orderbook: symbol is empty");
  const int max_limit = category == "spot" ? 200 : 500;
  ATTNLAB_CHECK(limit >= 1 && limit <= max_limit, "bybit orderbook: limit ", limit, " is not in 1..", max_limit,
                " for ", category);
  return parse_orderbook_response(
      get("/v5/market/orderbook", {{"category", category}, {"symbol", symbol}, {"limit", std::to_string(limit)}}));
}

}  // namespace attnlab::data
