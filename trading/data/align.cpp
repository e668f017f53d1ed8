#include "trading/data/align.h"

#include <algorithm>

#include "kernels/error.h"

namespace attnlab::data {

namespace {

void check_ascending(const std::vector<int64_t>& ts, const std::string& who) {
  for (size_t i = 1; i < ts.size(); ++i)
    ATTNLAB_CHECK(ts[i] > ts[i - 1], "align: '", who, "' timestamps are not strictly ascending at row ", i);
}

// Row index in `ts` of each time in `common` (all present by construction).
std::vector<size_t> rows_of(const std::vector<int64_t>& ts, const std::vector<int64_t>& common) {
  std::vector<size_t> out;
  out.reserve(common.size());
  size_t j = 0;
  for (int64_t t : common) {
    while (ts[j] < t) ++j;
    out.push_back(j);
  }
  return out;
}

}  // namespace

std::vector<int64_t> common_timestamps(const std::vector<const std::vector<int64_t>*>& lists) {
  if (lists.empty()) return {};
  std::vector<int64_t> common = *lists[0];
  for (size_t k = 1; k < lists.size(); ++k) {
    std::vector<int64_t> next;
    std::set_intersection(common.begin(), common.end(), lists[k]->begin(), lists[k]->end(), std::back_inserter(next));
    common.swap(next);
  }
  return common;
}

std::vector<OhlcvSeries> align_inner(const std::vector<OhlcvSeries>& series, AlignReport* report) {
  ATTNLAB_CHECK(!series.empty(), "align_inner: no series");
  std::vector<const std::vector<int64_t>*> lists;
  for (const auto& s : series) {
    check_ascending(s.ts_ms, s.symbol);
    lists.push_back(&s.ts_ms);
  }
  const std::vector<int64_t> common = common_timestamps(lists);
  std::vector<OhlcvSeries> out;
  for (const auto& s : series) {
    OhlcvSeries a;
    a.symbol = s.symbol;
    a.reserve(common.size());
    for (size_t r : rows_of(s.ts_ms, common)) a.push_back(s.bar(r), s.has_turnover());
    out.push_back(std::move(a));
  }
  if (report) {
    *report = AlignReport{};
    for (const auto& s : series) {
      report->symbols.push_back(s.symbol);
      report->rows_in.push_back(s.size());
      report->rows_dropped.push_back(s.size() - common.size());
    }
    report->rows_out = common.size();
  }
  return out;
}

FeatureSet align_features(const std::vector<FeatureSet>& sets, const std::vector<std::string>& prefixes,
                          AlignReport* report) {
  ATTNLAB_CHECK(!sets.empty(), "align_features: no feature sets");
  ATTNLAB_CHECK(prefixes.size() == sets.size(), "align_features: ", prefixes.size(), " prefixes for ", sets.size(),
                " feature sets");
  std::vector<const std::vector<int64_t>*> lists;
  for (size_t k = 0; k < sets.size(); ++k) {
    check_ascending(sets[k].ts_ms, prefixes[k]);
    ATTNLAB_CHECK(sets[k].values.size() == sets[k].rows() * sets[k].cols(), "align_features: set '", prefixes[k],
                  "' has ", sets[k].values.size(), " values for [", sets[k].rows(), ", ", sets[k].cols(), "]");
    lists.push_back(&sets[k].ts_ms);
  }
  FeatureSet out;
  out.ts_ms = common_timestamps(lists);
  for (size_t k = 0; k < sets.size(); ++k)
    for (const auto& n : sets[k].names) out.names.push_back(prefixes[k] + "_" + n);
  const size_t T = out.ts_ms.size(), F = out.names.size();
  out.values.resize(T * F);
  size_t offset = 0;
  for (size_t k = 0; k < sets.size(); ++k) {
    const std::vector<size_t> rows = rows_of(sets[k].ts_ms, out.ts_ms);
    const size_t Fk = sets[k].cols();
    for (size_t t = 0; t < T; ++t)
      std::copy_n(sets[k].row(rows[t]), Fk, out.values.data() + t * F + offset);
    offset += Fk;
  }
  out.update_first_valid();
  if (report) {
    *report = AlignReport{};
    for (size_t k = 0; k < sets.size(); ++k) {
      report->symbols.push_back(prefixes[k]);
      report->rows_in.push_back(sets[k].rows());
      report->rows_dropped.push_back(sets[k].rows() - T);
    }
    report->rows_out = T;
  }
  return out;
}

}  // namespace attnlab::data
