#include "tools/bench/timing.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "kernels/cuda/runtime.h"
#include "kernels/error.h"

namespace attnlab::bench {

Timing time_it(const std::function<void()>& fn, double min_total_s, int min_runs) {
  using clock = std::chrono::steady_clock;
  fn();  // warm-up (first-touch allocation, BLAS thread start)
  std::vector<double> t;
  double total = 0;
  while (total < min_total_s || int(t.size()) < min_runs) {
    const auto a = clock::now();
    fn();
    const double s = std::chrono::duration<double>(clock::now() - a).count();
    t.push_back(s);
    total += s;
    if (t.size() > 10000) break;
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], t.front(), int(t.size())};
}

void Table::add(const std::vector<std::string>& cells, nlohmann::json row) {
  cells_.push_back(cells);
  rows_.push_back(std::move(row));
}

void Table::print(const std::string& title) const {
  std::vector<size_t> w(columns_.size());
  for (size_t i = 0; i < columns_.size(); ++i) w[i] = columns_[i].size();
  for (const auto& r : cells_)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  std::cout << "\n" << title << "\n";
  auto line = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < w.size(); ++i) {
      const std::string c = i < r.size() ? r[i] : "";
      std::cout << (i ? "  " : "") << std::string(w[i] - c.size(), ' ') << c;
    }
    std::cout << "\n";
  };
  line(columns_);
  size_t total = 0;
  for (size_t x : w) total += x + 2;
  std::cout << std::string(total - 2, '-') << "\n";
  for (const auto& r : cells_) line(r);
}

std::string fmt(double v, int precision) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", precision, v);
  return buf;
}

int bench_cuda_device(const std::string& device, const std::string& name, nlohmann::json* skipped_row) {
  namespace cuda = kernels::cuda;
  const bool plain = device == "cuda";
  const bool indexed = device.rfind("cuda:", 0) == 0 && device.size() > 5 && device.size() < 10 &&
                       device.find_first_not_of("0123456789", 5) == std::string::npos;
  ATTNLAB_CHECK(plain || indexed, "bench ", name, " --device: expected cpu, cuda or cuda:N, got '", device, "'");
  const int index = plain ? 0 : std::stoi(device.substr(5));
  const int have = cuda::device_count();
  if (index < have) return index;
  const std::string why = have == 0 ? "no usable GPU (" + cuda::unavailable_reason() + ")"
                                    : "only " + std::to_string(have) + " GPU(s)";
  std::cerr << "bench " << name << " --device " << device << ": skipped: " << why << "\n";  // stdout: JSON
  *skipped_row = {{"name", name}, {"device", device}, {"skipped", why}};
  return -1;
}

}  // namespace attnlab::bench
