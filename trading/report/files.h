// Small file helpers for report writers: atomic writes and number formatting for CSV/JSON/HTML.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

namespace attnlab::report {

// Writes `content` to `path` atomically: a sibling temporary file is written, flushed and renamed over
// `path`, so a reader never sees half a file (a crash leaves the old file or none, not a truncated one).
// Creates the parent directory. Throws attnlab::Error naming the path on failure.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

// Shortest text that reads back to the same double ("0.1", "1e-07"); "NaN", "inf", "-inf" otherwise.
// These are the spellings numpy, pandas and gnuplot all read.
void append_number(std::string& out, double v);
std::string number_text(double v);

// Renames src over dst (atomic on one filesystem); throws attnlab::Error on failure.
void replace_file(const std::filesystem::path& src, const std::filesystem::path& dst);

}  // namespace attnlab::report
