// A one-line progress bar for long loops (tqdm's role), redrawn in place with '\r' on a stream
// (stderr by default), at most every `min_interval_s` seconds:
//
//   epoch 2/5 [##########----------]  55/110  loss 0.000231  1840 samples/s  ETA 3s
//
//   ProgressBar bar("epoch 2/5", n_batches);
//   for (...) { ...; bar.update(i + 1, batch_size, "loss " + fmt(loss)); }
//   bar.finish();   // final redraw and newline
//
// Disabled bars print nothing (for tests and --quiet).
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>

namespace attnlab::trading {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, bool enabled = true, std::ostream& os = std::cerr,
              double min_interval_s = 0.1)
      : label_(std::move(label)), total_(total), enabled_(enabled), os_(os), min_interval_s_(min_interval_s),
        start_(Clock::now()), last_draw_(start_) {}

  // `done` steps of `total` finished; `samples` more samples processed since the last call; `info`
  // shown after the counts (e.g. the running loss).
  void update(int64_t done, int64_t samples, const std::string& info = "") {
    done_ = done;
    samples_ += samples;
    info_ = info;
    const auto now = Clock::now();
    if (done_ < total_ && seconds(last_draw_, now) < min_interval_s_) return;
    last_draw_ = now;
    draw();
  }
  void finish() {
    if (!enabled_ || finished_) return;
    draw();
    os_ << "\n" << std::flush;
    finished_ = true;
  }
  double elapsed_s() const { return seconds(start_, Clock::now()); }
  double samples_per_s() const {
    const double e = elapsed_s();
    return e > 0 ? double(samples_) / e : 0.0;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }
  void draw() {
    if (!enabled_) return;
    constexpr int kWidth = 20;
    const double frac = total_ > 0 ? double(done_) / double(total_) : 1.0;
    const int filled = int(frac * kWidth + 0.5);
    const double e = elapsed_s();
    const double eta = done_ > 0 ? e / double(done_) * double(total_ - done_) : 0.0;
    char buf[160];
    std::snprintf(buf, sizeof buf, " %4lld/%-4lld %s  %.0f samples/s  %s %.0fs", (long long)done_,
                  (long long)total_, info_.c_str(), samples_per_s(), done_ >= total_ ? "took" : "ETA",
                  done_ >= total_ ? e : eta);
    os_ << "\r" << label_ << " [" << std::string(size_t(filled), '#') << std::string(size_t(kWidth - filled), '-')
        << "]" << buf << "   " << std::flush;
  }

  std::string label_;
  int64_t total_, done_ = 0, samples_ = 0;
  bool enabled_, finished_ = false;
  std::ostream& os_;
  double min_interval_s_;
  std::string info_;
  Clock::time_point start_, last_draw_;
};

}  // namespace attnlab::trading
