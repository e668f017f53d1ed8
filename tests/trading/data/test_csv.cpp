// CSV reader/writer and timestamp parsing: every layout we accept, every bad-row error (with file and
// line), skip-and-count mode, exact round trips, and the embedded S&P 500 file.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>

#include "kernels/error.h"
#include "testing_util.h"
#include "trading/data/csv.h"
#include "trading/data/timeutil.h"

using namespace attnlab::data;
using attnlab::data::testing::TempDir;

namespace {

const std::string kData = ATTNLAB_TEST_DATA_DIR;
constexpr int64_t kJan1_2020 = 1577836800000;  // 2020-01-01T00:00:00Z
constexpr int64_t kDay = 86400000;

// Reads `text` as file `name` and returns the error message (empty if it loaded).
std::string error_of(const TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir.write(name, text);
  try {
    read_ohlcv_csv(path);
  } catch (const attnlab::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("timestamps: ISO forms, epoch seconds and milliseconds") {
  CHECK(parse_time_ms("2020-01-01") == kJan1_2020);
  CHECK(parse_time_ms("2020-01-01T01:02:03") == kJan1_2020 + 3723000);
  CHECK(parse_time_ms("2020-01-01T01:02:03Z") == kJan1_2020 + 3723000);
  CHECK(parse_time_ms("2020-01-01 01:02:03") == kJan1_2020 + 3723000);
  CHECK(parse_time_ms("2020-01-01T01:02") == kJan1_2020 + 3720000);
  CHECK(parse_time_ms("2020-01-01T01:02:03.250Z") == kJan1_2020 + 3723250);
  CHECK(parse_time_ms("2020-01-01T03:00:00+02:00") == kJan1_2020 + 3600000);  // 01:00 UTC
  CHECK(parse_time_ms("2019-12-31T23:00:00-01:00") == kJan1_2020);
  CHECK(parse_time_ms("2020-02-29") == kJan1_2020 + 59 * kDay);  // leap day
  CHECK(parse_time_ms("1577836800") == kJan1_2020);               // seconds
  CHECK(parse_time_ms("1577836800000") == kJan1_2020);            // milliseconds
  CHECK(parse_time_ms("1577836800.5") == kJan1_2020 + 500);
  CHECK(parse_time_ms("0") == 0);
  CHECK(parse_time_ms("1970-01-01") == 0);
  CHECK(parse_time_ms("1969-12-31") == -kDay);
  CHECK_THROWS_WITH_AS(parse_time_ms("2019-02-29"), doctest::Contains("day out of range"), attnlab::Error);
  CHECK_THROWS_WITH_AS(parse_time_ms("2020-13-01"), doctest::Contains("month out of range"), attnlab::Error);
  CHECK_THROWS_AS(parse_time_ms("01/02/2020"), attnlab::Error);
  CHECK_THROWS_AS(parse_time_ms("2020-01-01T25:00:00"), attnlab::Error);
  CHECK_THROWS_AS(parse_time_ms("2020-01-01Tfoo"), attnlab::Error);
  CHECK_THROWS_AS(parse_time_ms(""), attnlab::Error);

  CHECK(format_time_iso(kJan1_2020) == "2020-01-01T00:00:00Z");
  CHECK(format_time_iso(kJan1_2020 + 59 * kDay + 3723250) == "2020-02-29T01:02:03.250Z");
  CHECK(format_time_iso(-1) == "1969-12-31T23:59:59.999Z");
}

TEST_CASE("Yahoo layout with Adj Close") {
  CsvReport rep;
  const OhlcvSeries s = read_ohlcv_csv(kData + "/csv/yahoo_adj.csv", {}, &rep);
  REQUIRE(s.size() == 3);
  CHECK(s.symbol == "yahoo_adj");
  CHECK(rep.has_adj_close);
  CHECK(rep.rows_read == 3);
  CHECK(rep.rows_kept == 3);
  CHECK(s.ts_ms[0] == kJan1_2020 + kDay);
  CHECK(s.ts_ms[2] == kJan1_2020 + 5 * kDay);
  CHECK(s.open[0] == 74.059998);
  CHECK(s.high[1] == 75.144997);
  CHECK(s.low[2] == 73.1875);
  CHECK(s.close[0] == 75.087502);  // raw close unless asked to adjust
  CHECK(s.volume[2] == 118387200.0);
  CHECK_FALSE(s.has_turnover());

  CsvOptions adj;
  adj.use_adj_close = true;
  adj.symbol = "AAPL";
  const OhlcvSeries a = read_ohlcv_csv(kData + "/csv/yahoo_adj.csv", adj);
  const double k = 73.449394 / 75.087502;
  CHECK(a.symbol == "AAPL");
  CHECK(a.close[0] == 73.449394);
  CHECK(a.open[0] == doctest::Approx(74.059998 * k).epsilon(1e-14));
  CHECK(a.high[0] == doctest::Approx(75.150002 * k).epsilon(1e-14));
  CHECK(a.low[0] == doctest::Approx(73.797501 * k).epsilon(1e-14));
  CHECK(a.volume[0] == 135480400.0);  // volume is not price-adjusted
}

TEST_CASE("Yahoo layout without Adj Close, CRLF line ends") {
  CsvReport rep;
  const OhlcvSeries s = read_ohlcv_csv(kData + "/csv/yahoo_noadj.csv", {}, &rep);
  REQUIRE(s.size() == 2);
  CHECK_FALSE(rep.has_adj_close);
  CHECK(s.ts_ms[1] == kJan1_2020 + 2 * kDay);
  CHECK(s.close[1] == 3234.850098);
  CHECK(s.volume[1] == 3461290000.0);
  CsvOptions adj;
  adj.use_adj_close = true;
  CHECK_THROWS_WITH_AS(read_ohlcv_csv(kData + "/csv/yahoo_noadj.csv", adj), doctest::Contains("no adj close"),
                       attnlab::Error);
}

TEST_CASE("epoch seconds, epoch milliseconds, ISO datetimes, other header spellings") {
  TempDir dir("csv");
  const OhlcvSeries s = read_ohlcv_csv(dir.write("s.csv",
                                                 "timestamp,open,high,low,close,volume\n"
                                                 "1577836800,10,11,9,10.5,100\n"
                                                 "1577840400,10.5,12,10,11,200\n"));
  CHECK(s.ts_ms == std::vector<int64_t>{kJan1_2020, kJan1_2020 + 3600000});
  const OhlcvSeries ms = read_ohlcv_csv(dir.write("ms.csv",
                                                  "Open_Time,OPEN,High,low,Close,Volume,Turnover\n"
                                                  "1577836800000,10,11,9,10.5,100,1050\n"
                                                  "1577840400000,10.5,12,10,11,200,2200\n"));
  CHECK(ms.ts_ms == s.ts_ms);
  CHECK(ms.turnover == std::vector<double>{1050, 2200});
  const OhlcvSeries iso = read_ohlcv_csv(dir.write("iso.csv",
                                                   "\"datetime\",\"open\",\"high\",\"low\",\"close\",\"volume\",\"note\"\n"
                                                   "\"2020-01-01T00:00:00Z\",10,11,9,10.5,100,x\n"
                                                   "2020-01-01 01:00:00,10.5,12,10,11,200,y\n"
                                                   "2020-01-01T03:00:00+01:00,11,12,10,11,200,z\n"));
  CHECK(iso.ts_ms == std::vector<int64_t>{kJan1_2020, kJan1_2020 + 3600000, kJan1_2020 + 7200000});
  // Column order does not matter; names decide.
  const OhlcvSeries shuffled = read_ohlcv_csv(dir.write("order.csv",
                                                        "volume,close,low,high,open,date\n"
                                                        "100,10.5,9,11,10,2020-01-01\n"));
  CHECK(shuffled.open[0] == 10);
  CHECK(shuffled.close[0] == 10.5);
  CHECK(shuffled.volume[0] == 100);
}

TEST_CASE("every bad row names the file, the line and the problem") {
  TempDir dir("csvbad");
  const std::string head = "date,open,high,low,close,volume\n";
  const std::string ok1 = "2020-01-01,10,11,9,10.5,100\n";
  const std::string ok2 = "2020-01-02,10.5,12,10,11,200\n";
  struct Case {
    const char* name;
    std::string row;
    const char* problem;
  };
  const Case cases[] = {
      {"missing.csv", "2020-01-03,11,12,10\n", "missing field 'close'"},
      {"null.csv", "2020-01-03,null,12,10,11,100\n", "null value in column 'open'"},
      {"empty_field.csv", "2020-01-03,11,12,10,,100\n", "null value in column 'close'"},
      {"nonnumeric.csv", "2020-01-03,11,12abc,10,11,100\n", "not a number in column 'high': '12abc'"},
      {"badtime.csv", "2020-02-30,11,12,10,11,100\n", "bad timestamp '2020-02-30'"},
      {"highlow.csv", "2020-01-03,11,10,12,11,100\n", "high 10 < low 12"},
      {"zero.csv", "2020-01-03,11,12,0,11,100\n", "non-positive price in column 'low': 0"},
      {"negative.csv", "2020-01-03,-11,12,10,11,100\n", "non-positive price in column 'open': -11"},
      {"envelope.csv", "2020-01-03,13,12,10,11,100\n", "outside [low 10, high 12]"},
      {"volume.csv", "2020-01-03,11,12,10,11,-5\n", "negative volume -5"},
      {"duplicate.csv", "2020-01-02,11,12,10,11,100\n", "duplicate timestamp 2020-01-02T00:00:00Z"},
      {"unsorted.csv", "2020-01-01,11,12,10,11,100\n", "before the previous row's 2020-01-02T00:00:00Z"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    // Header on line 1, two good rows, a blank line (still counted as a file line), the bad row on 5.
    const std::string msg = error_of(dir, c.name, head + ok1 + ok2 + "\n" + c.row);
    CHECK(msg.find(dir.file(c.name) + ":5: ") != std::string::npos);
    CHECK(msg.find(c.problem) != std::string::npos);
    CAPTURE(msg);
  }
  CHECK(error_of(dir, "nohead.csv", "date,open,high,low,close\n" + ok1).find(":1: missing column 'volume'") !=
        std::string::npos);
  CHECK(error_of(dir, "empty.csv", "").find("empty file") != std::string::npos);
  CHECK_THROWS_WITH_AS(read_ohlcv_csv(dir.file("does_not_exist.csv")), doctest::Contains("cannot open"),
                       attnlab::Error);
}

TEST_CASE("skip_bad_rows drops and counts bad rows per problem") {
  TempDir dir("csvskip");
  const std::string path = dir.write("mixed.csv",
                                     "Date,Open,High,Low,Close,Adj Close,Volume\n"  // 1
                                     "2020-01-01,10,11,9,10.5,10.5,100\n"          // 2 ok
                                     "2020-01-02,null,null,null,null,null,null\n"  // 3 null (Yahoo holiday row)
                                     "2020-01-02,10.5,12,10,11,11,200\n"           // 4 ok
                                     "2020-01-02,10.5,12,10,11,11,200\n"           // 5 duplicate
                                     "2020-01-01,10.5,12,10,11,11,200\n"           // 6 unsorted
                                     "2020-01-03,11,10,12,11,11,300\n"             // 7 high < low
                                     "2020-01-03,11,12\n"                          // 8 missing field
                                     "2020-01-04,11,12,10,11.5,11.5,300\n"         // 9 ok
                                     "2020-01-05,x,12,10,11.5,11.5,300\n");        // 10 not a number
  CsvOptions opt;
  opt.skip_bad_rows = true;
  CsvReport rep;
  const OhlcvSeries s = read_ohlcv_csv(path, opt, &rep);
  CHECK(s.size() == 3);
  CHECK(s.ts_ms == std::vector<int64_t>{kJan1_2020, kJan1_2020 + kDay, kJan1_2020 + 3 * kDay});
  CHECK(rep.rows_read == 9);
  CHECK(rep.rows_kept == 3);
  CHECK(rep.total_skipped() == 6);
  CHECK(rep.skipped.at("null value") == 1);
  CHECK(rep.skipped.at("duplicate timestamp") == 1);
  CHECK(rep.skipped.at("unsorted timestamp") == 1);
  CHECK(rep.skipped.at("high < low") == 1);
  CHECK(rep.skipped.at("missing field") == 1);
  CHECK(rep.skipped.at("not a number") == 1);
  REQUIRE(rep.first_messages.size() == 6);
  CHECK(rep.first_messages[0].find("mixed.csv:3: null value") != std::string::npos);
  CHECK(rep.first_messages[5].find("mixed.csv:10: not a number") != std::string::npos);
  // The same file without the option stops at line 3.
  CHECK_THROWS_WITH_AS(read_ohlcv_csv(path), doctest::Contains("mixed.csv:3: null value"), attnlab::Error);
}

TEST_CASE("writer round-trips exactly, with and without turnover") {
  TempDir dir("csvrt");
  OhlcvSeries s;
  s.symbol = "RT";
  const double awkward[] = {0.1 + 0.2, 1e-7, 123456.789012345678, 1.0 / 3.0, 5e-324 + 1.0, 98765.4321};
  for (int i = 0; i < 6; ++i) {
    const double p = awkward[i] + 10.0;
    s.push_back({1700000000000 + i * 60000, p, p * (1 + 1e-9), p / 1.0000003, p, awkward[i] * 1e6, p * 3.3}, true);
  }
  const std::string path = dir.file("sub/dir/cache.csv");  // parent folders are created
  write_ohlcv_csv(path, s);
  CHECK(attnlab::data::testing::read_text(path).rfind("timestamp_ms,open,high,low,close,volume,turnover\n", 0) == 0);
  CsvOptions opt;
  opt.symbol = "RT";
  const OhlcvSeries back = read_ohlcv_csv(path, opt);
  CHECK(back.symbol == "RT");
  CHECK(back.ts_ms == s.ts_ms);
  CHECK(back.open == s.open);  // exact: vector<double> == compares bit for bit (no NaN here)
  CHECK(back.high == s.high);
  CHECK(back.low == s.low);
  CHECK(back.close == s.close);
  CHECK(back.volume == s.volume);
  CHECK(back.turnover == s.turnover);

  s.turnover.clear();
  write_ohlcv_csv(path, s);  // overwrite
  const OhlcvSeries back2 = read_ohlcv_csv(path);
  CHECK_FALSE(back2.has_turnover());
  CHECK(back2.close == s.close);

  // Early timestamps in a timestamp_ms column stay milliseconds (no magnitude guess).
  OhlcvSeries early;
  early.push_back({5, 1, 1, 1, 1, 0, 0}, false);
  early.push_back({6, 1, 1, 1, 1, 0, 0}, false);
  write_ohlcv_csv(path, early);
  CHECK(read_ohlcv_csv(path).ts_ms == std::vector<int64_t>{5, 6});
}

TEST_CASE("embedded S&P 500 daily file loads") {
  CsvReport rep;
  const OhlcvSeries s = read_ohlcv_csv(std::string(ATTNLAB_SOURCE_DIR) + "/data/sp500_daily_2000_2020.csv", {}, &rep);
  // 5105 data rows after the header (data/README.md: 2000-01-03 .. 2020-04-17, 5,105 trading days).
  CHECK(s.size() == 5105);
  CHECK(rep.total_skipped() == 0);
  CHECK(rep.has_adj_close);
  CHECK(s.symbol == "sp500_daily_2000_2020");
  CHECK(format_time_iso(s.ts_ms.front()) == "2000-01-03T00:00:00Z");
  CHECK(format_time_iso(s.ts_ms.back()) == "2020-04-17T00:00:00Z");
  CHECK(s.open.front() == 1469.25);
  CHECK(s.close.front() == 1455.219971);
  CHECK(s.close.back() == 2874.560059);
  CHECK(s.volume.back() == 5792140000.0);
  CHECK_NOTHROW(s.validate());
}
