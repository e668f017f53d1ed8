// Latency recorder: collect one duration per loop iteration, then summarise.
//
//   LatencyRecorder lat;
//   for (...) { auto t0 = LatencyRecorder::now(); step(); lat.record_since(t0); }
//   LatencySummary s = lat.summary();   // count, mean, p50, p90, p99, max (milliseconds)
//
// Samples are stored as milliseconds (double). Percentiles use linear interpolation between the two
// nearest order statistics, numpy.percentile's default ("linear"): for sorted x[0..n) and q in [0, 100],
// h = (n - 1) * q / 100, result = x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]).
#pragma once
#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

namespace attnlab::backtest {

struct LatencySummary {
  std::int64_t count = 0;
  double mean_ms = 0, min_ms = 0, p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;  // NaN when count == 0
};

class LatencyRecorder {
 public:
  using Clock = std::chrono::steady_clock;
  static Clock::time_point now() { return Clock::now(); }

  void reserve(std::size_t n) { samples_ms_.reserve(n); }
  void record_ns(std::int64_t ns);  // throws attnlab::Error for a negative duration
  void record_ms(double ms);        // throws for a negative or non-finite duration
  void record_since(Clock::time_point start) {
    record_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
  }
  void clear() { samples_ms_.clear(); }

  std::size_t count() const { return samples_ms_.size(); }
  const std::vector<double>& samples_ms() const { return samples_ms_; }  // in recording order
  LatencySummary summary() const;

 private:
  std::vector<double> samples_ms_;
};

// Summary of raw samples (milliseconds).
LatencySummary summarize_latency(std::span<const double> samples_ms);

// numpy-style percentile (linear interpolation) of unsorted data; q in [0, 100]; throws on empty data.
double percentile(std::span<const double> data, double q);
// Same on data already sorted ascending (no copy).
double percentile_sorted(std::span<const double> sorted, double q);

}  // namespace attnlab::backtest
