// OHLCV CSV files: a tolerant-by-name, strict-by-value reader and an exact writer.
//
// Reader. Columns are found by header name, case-, space- and underscore-insensitive:
//   time      date | time | timestamp | datetime | open_time  (parse_time_ms forms: ISO date/datetime,
//             epoch seconds or milliseconds told apart by magnitude)
//             timestamp_ms | ts_ms  -> always integer milliseconds (what the writer emits)
//   prices    open, high, low, close;  adjclose | adj close  (optional)
//   volume    volume;  turnover (optional);  any other column is ignored.
// So Yahoo downloads (Date,Open,High,Low,Close,Adj Close,Volume, with or without Adj Close), Bybit
// exports and our own cache files all load. Fields may be wrapped in double quotes; quoted commas are
// not supported (no OHLCV source emits them).
//
// Every row is checked; a bad row throws attnlab::Error "<file>:<line>: <problem>" (line numbers are
// 1-based file lines, the header is line 1), or with CsvOptions::skip_bad_rows is dropped and counted
// per problem in CsvReport. Problems: missing field, null value ("null", "NaN", empty), not a number,
// bad timestamp, non-positive price, high < low, open/close outside [low, high], negative volume,
// unsorted timestamp, duplicate timestamp. In skip mode a row is compared with the last row kept.
#pragma once
#include <cstddef>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "trading/data/ohlcv.h"

namespace attnlab::data {

struct CsvOptions {
  bool skip_bad_rows = false;      // false: throw on the first bad row; true: drop and count it
  bool check_envelope = true;      // reject rows whose open/close lie outside [low, high]
  bool use_adj_close = false;      // scale open/high/low/close by adjclose/close (split/dividend
                                   // adjusted prices); error if the file has no adjclose column
  std::string symbol;              // OhlcvSeries::symbol; empty -> file name without extension
};

struct CsvReport {
  size_t rows_read = 0;                          // data rows seen (blank lines not counted)
  size_t rows_kept = 0;
  std::map<std::string, size_t> skipped;         // problem -> rows dropped for it
  std::vector<std::string> first_messages;       // "<file>:<line>: <problem>", the first 20
  bool has_adj_close = false;
  size_t total_skipped() const;
};

// Reads a file. Throws attnlab::Error if the file cannot be opened, has no header, lacks a required
// column, or (unless skip_bad_rows) has a bad row.
OhlcvSeries read_ohlcv_csv(const std::string& path, const CsvOptions& opt = {}, CsvReport* report = nullptr);

// Same from a stream; `name` is what messages call the source.
OhlcvSeries parse_ohlcv_csv(std::istream& in, const std::string& name, const CsvOptions& opt = {},
                            CsvReport* report = nullptr);

// Writes "timestamp_ms,open,high,low,close,volume[,turnover]" with the shortest decimal form that
// reads back to the identical double, so write -> read round-trips bit for bit. Written to a
// temporary file then renamed, so a crash never leaves a half-written cache. Validates first.
void write_ohlcv_csv(const std::string& path, const OhlcvSeries& s);

}  // namespace attnlab::data
