#include "trading/backtest/latency.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/error.h"

namespace attnlab::backtest {

void LatencyRecorder::record_ns(std::int64_t ns) {
  ATTNLAB_CHECK(ns >= 0, "LatencyRecorder: negative duration ", ns, " ns");
  samples_ms_.push_back(static_cast<double>(ns) * 1e-6);
}

void LatencyRecorder::record_ms(double ms) {
  ATTNLAB_CHECK(std::isfinite(ms) && ms >= 0, "LatencyRecorder: bad duration ", ms, " ms");
  samples_ms_.push_back(ms);
}

LatencySummary LatencyRecorder::summary() const { return summarize_latency(samples_ms_); }

double percentile_sorted(std::span<const double> x, double q) {
  ATTNLAB_CHECK(!x.empty(), "percentile: empty data");
  ATTNLAB_CHECK(q >= 0 && q <= 100, "percentile: q must be in [0, 100], got ", q);
  const double h = static_cast<double>(x.size() - 1) * q / 100.0;
  const std::size_t lo = static_cast<std::size_t>(std::floor(h));
  const std::size_t hi = std::min(lo + 1, x.size() - 1);
  return x[lo] + (h - static_cast<double>(lo)) * (x[hi] - x[lo]);
}

double percentile(std::span<const double> data, double q) {
  std::vector<double> s(data.begin(), data.end());
  std::sort(s.begin(), s.end());
  return percentile_sorted(s, q);
}

LatencySummary summarize_latency(std::span<const double> samples) {
  LatencySummary s;
  s.count = static_cast<std::int64_t>(samples.size());
  if (samples.empty()) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    s.mean_ms = s.min_ms = s.p50_ms = s.p90_ms = s.p99_ms = s.max_ms = nan;
    return s;
  }
  std::vector<double> x(samples.begin(), samples.end());
  std::sort(x.begin(), x.end());
  double sum = 0;
  for (double v : x) sum += v;
  s.mean_ms = sum / static_cast<double>(x.size());
  s.min_ms = x.front();
  s.max_ms = x.back();
  s.p50_ms = percentile_sorted(x, 50);
  s.p90_ms = percentile_sorted(x, 90);
  s.p99_ms = percentile_sorted(x, 99);
  return s;
}

}  // namespace attnlab::backtest
