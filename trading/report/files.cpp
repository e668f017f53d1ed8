#include "trading/report/files.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <system_error>
#include <unistd.h>

#include "kernels/error.h"

namespace attnlab::report {

namespace fs = std::filesystem;

void write_file_atomic(const fs::path& path, std::string_view content) {
  if (path.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    ATTNLAB_CHECK(!ec, "write_file_atomic: cannot create directory ", path.parent_path().string(), ": ",
                  ec.message());
  }
  // The pid keeps two processes writing the same report from clobbering each other's temporary.
  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  ATTNLAB_CHECK(f != nullptr, "write_file_atomic: cannot open ", tmp.string(), " for writing");
  const bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size() &&
                  std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    std::remove(tmp.c_str());
    throw Error(cat("write_file_atomic: write to ", tmp.string(), " failed"));
  }
  replace_file(tmp, path);
}

void replace_file(const fs::path& src, const fs::path& dst) {
  std::error_code ec;
  fs::rename(src, dst, ec);
  if (ec) {
    fs::remove(src, ec);
    throw Error(cat("replace_file: cannot rename ", src.string(), " to ", dst.string()));
  }
}

void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "inf" : "-inf";
  } else {
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, res.ptr);
  }
}

std::string number_text(double v) {
  std::string s;
  append_number(s, v);
  return s;
}

}  // namespace attnlab::report
