// Running the built attnlab binary from a test: found in the build tree (<build>/tools/attnlab, beside the
// test's <build>/tests) or beside the test itself (the GPU pack of ../shared/gpu/pack.sh puts both in
// bin/); a test calls have_binary() first and is skipped with a message without it.
#pragma once
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "trading/data/csv.h"
#include "trading/data/synth.h"

namespace attnlab::testing::cli {

inline std::filesystem::path attnlab_binary() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);  // <build>/tests/<test>
  if (ec) return {};
  const std::filesystem::path in_build = exe.parent_path().parent_path() / "tools" / "attnlab";
  const std::filesystem::path beside = exe.parent_path() / "attnlab";
  return !std::filesystem::exists(in_build) && std::filesystem::exists(beside) ? beside : in_build;
}

inline bool have_binary() {
  if (std::filesystem::exists(attnlab_binary())) return true;
  MESSAGE("skipped: " << attnlab_binary() << " is not built");
  return false;
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Run {
  int rc = -1;
  std::string out;  // stdout and stderr
};

// Runs `attnlab --threads 1 <args>` in `dir`, capturing both streams (stdout only with stdout_only).
inline Run run(const std::filesystem::path& dir, const std::string& args, bool stdout_only = false) {
  const std::filesystem::path log = dir / "last_run.txt";
  const std::string cmd = "cd '" + dir.string() + "' && '" + attnlab_binary().string() + "' --threads 1 " + args +
                          " > '" + log.string() + "'" + (stdout_only ? " 2>/dev/null" : " 2>&1");
  const int st = std::system(cmd.c_str());
  Run r;
  r.rc = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(log);
  return r;
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Each (arguments, message): `attnlab <arguments>` in `dir` exits non-zero and its output contains message.
inline void check_failures(const std::filesystem::path& dir,
                           const std::vector<std::pair<std::string, std::string>>& cases) {
  for (const auto& [args, message] : cases) {
    const Run r = run(dir, args);
    INFO("attnlab " << args << " ->\n" << r.out);
    CHECK(r.rc != 0);
    CHECK(contains(r.out, message));
  }
}

// A daily series with a planted own-momentum signal, written as CSV.
inline void write_planted_csv(const std::filesystem::path& path, size_t bars, uint64_t seed) {
  data::SynthConfig sc;
  sc.n_symbols = 1;
  sc.n_bars = bars;
  sc.bar_ms = data::kMsPerDay;
  sc.signal = data::SignalKind::OwnMomentum;
  sc.beta = 0.5;
  sc.seed = seed;
  data::write_ohlcv_csv(path.string(), data::generate_synthetic(sc).series[0]);
}

}  // namespace attnlab::testing::cli
