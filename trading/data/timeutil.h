// UTC time helpers for market data: every timestamp in trading/data is int64 milliseconds since the
// Unix epoch, UTC. No time zones beyond explicit "+HH:MM" offsets: market data files and exchange APIs
// are either UTC or carry the offset, and guessing a local zone is how off-by-hours bugs are made.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace attnlab::data {

inline constexpr int64_t kMsPerSecond = 1000;
inline constexpr int64_t kMsPerMinute = 60 * kMsPerSecond;
inline constexpr int64_t kMsPerHour = 60 * kMsPerMinute;
inline constexpr int64_t kMsPerDay = 24 * kMsPerHour;

// Days since 1970-01-01 of a proleptic Gregorian date (month 1..12, day 1..31; not range-checked).
int64_t days_from_civil(int64_t year, int month, int day);

struct CivilDate {
  int64_t year = 1970;
  int month = 1, day = 1;
};
// Inverse of days_from_civil.
CivilDate civil_from_days(int64_t days);

// Parses one timestamp to epoch milliseconds. Accepted forms:
//   "2020-01-31"                          midnight UTC
//   "2020-01-31T13:45:00" / "... 13:45:00" optional ".fff" fraction, optional "Z" or "+HH:MM"/"-HH:MM"
//   "1580478300" / "1580478300000"        epoch seconds or milliseconds, told apart by magnitude:
//                                         |v| < 1e11 is seconds (1e11 s is the year 5138),
//                                         |v| >= 1e11 is milliseconds (1e11 ms is 1973-03-03).
// Throws attnlab::Error saying what is wrong with the text (callers add file and line).
int64_t parse_time_ms(std::string_view text);

// Same, but the text is known to be an integer count of milliseconds (no magnitude guess).
int64_t parse_epoch_ms(std::string_view text);

// "2020-01-31T13:45:00Z", with ".123" when the milliseconds are not zero.
std::string format_time_iso(int64_t ms);

}  // namespace attnlab::data
