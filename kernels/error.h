// attnlab::Error — the one exception type of the project (lowest layer, so every layer can throw it).
// Messages name the op and the shapes/dtypes/devices/files involved, e.g.
//   "matmul: shapes [2, 3] and [4, 5] are not compatible (inner dims 3 != 4)".
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace attnlab {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Builds a message from any streamable pieces: throw Error(cat("op: bad dim ", d)).
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace attnlab

// ATTNLAB_CHECK(cond, pieces...): throw attnlab::Error(cat(pieces...)) when cond is false.
#define ATTNLAB_CHECK(cond, ...)                                   \
  do {                                                             \
    if (!(cond)) throw ::attnlab::Error(::attnlab::cat(__VA_ARGS__)); \
  } while (0)
