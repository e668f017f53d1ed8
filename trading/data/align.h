// Multi-symbol alignment by an inner join on timestamps.
//
// The seeds align symbols by keeping the last min_len rows of each frame. That is only right when
// every series has the same bars: if one symbol starts later, has a gap (exchange outage, a holiday
// on one venue, a delisting pause) or is missing a bar, row i of one symbol no longer has the time of
// row i of another, and a model silently learns from mismatched dates. An inner join keeps exactly
// the times that every symbol has, so row i is the same time everywhere; the report says what each
// symbol lost, so a large loss is visible instead of silent.
//
// Compute per-symbol features before joining (align_features), so returns and rolling windows run
// over each symbol's own consecutive bars; join raw bars (align_inner) when you need prices in step.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "trading/data/features.h"
#include "trading/data/ohlcv.h"

namespace attnlab::data {

struct AlignReport {
  std::vector<std::string> symbols;
  std::vector<size_t> rows_in;       // per symbol, rows before the join
  std::vector<size_t> rows_dropped;  // per symbol, rows whose time some other symbol lacks
  size_t rows_out = 0;               // rows every symbol keeps
};

// Times present in every list (each list ascending and unique), ascending.
std::vector<int64_t> common_timestamps(const std::vector<const std::vector<int64_t>*>& lists);

// Each series restricted to the common times. Throws attnlab::Error on an empty input or a series that
// is not strictly ascending.
std::vector<OhlcvSeries> align_inner(const std::vector<OhlcvSeries>& series, AlignReport* report = nullptr);

// Feature sets joined on time into one [T, sum F] set; column names become "<prefix>_<name>"
// (prefixes[i] for set i, usually the symbol). first_valid is recomputed.
FeatureSet align_features(const std::vector<FeatureSet>& sets, const std::vector<std::string>& prefixes,
                          AlignReport* report = nullptr);

}  // namespace attnlab::data
