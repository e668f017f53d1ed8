// Benchmark helpers: a median-of-runs timer and a small table/JSON printer, shared by every
// `attnlab bench ...` command. Ratios are always against a baseline measured in the same run.
#pragma once
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace attnlab::bench {

struct Timing {
  double median_s = 0, min_s = 0;
  int runs = 0;
};

// Runs fn once to warm up, then repeatedly until `min_total_s` has elapsed and at least `min_runs`
// runs are done; returns the median and minimum of the per-run times.
Timing time_it(const std::function<void()>& fn, double min_total_s = 0.3, int min_runs = 5);

// The GPU a bench's --device names ("cuda" = cuda:0, "cuda:N"; an Error for anything else), or -1
// when it is not usable: then "bench <name> --device <device>: skipped: <why>" goes to stderr and
// *skipped_row gets {"name", "device", "skipped": why} to return.
int bench_cuda_device(const std::string& device, const std::string& name, nlohmann::json* skipped_row);

// A result table printed as aligned text, or collected as JSON rows.
class Table {
 public:
  explicit Table(std::vector<std::string> columns) : columns_(std::move(columns)) {}
  void add(const std::vector<std::string>& cells, nlohmann::json row);
  void print(const std::string& title) const;
  const nlohmann::json& json() const { return rows_; }

 private:
  std::vector<std::string> columns_;
  std::vector<std::vector<std::string>> cells_;
  nlohmann::json rows_ = nlohmann::json::array();
};

std::string fmt(double v, int precision = 2);

}  // namespace attnlab::bench
