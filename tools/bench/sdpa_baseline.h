// PyTorch's SDPA figures (`tools/bench/sdpa_pytorch.py --json`) as the baseline of `attnlab bench
// attention --device cuda --baseline FILE`: per (causal, head dim, seq) the best bf16 forward and
// backward TFLOP/s over every row of every file given — one file per SDPA backend (auto, cudnn,
// flash) gives "PyTorch's best SDPA backend", the reference of the targets.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

namespace attnlab::bench {

struct SdpaFigures {
  double fwd_tflops = 0, bwd_tflops = 0;
  std::string fwd_impl, bwd_impl;  // the rows' "impl" (torch-sdpa-<backend>) that gave the best
  std::string device;              // the GPU PyTorch ran on
};

class SdpaBaseline {
 public:
  // Reads one JSON file of rows; throws attnlab::Error naming the file (and the row) on a missing
  // file, text that is not a JSON array of rows, or a row without the keys. Rows of another dtype
  // than bf16 are ignored.
  void add_file(const std::string& path);
  void add_rows(const nlohmann::json& rows, const std::string& source);
  const SdpaFigures* find(bool causal, int64_t headdim, int64_t seqlen) const;
  size_t size() const { return best_.size(); }

 private:
  std::map<std::tuple<bool, int64_t, int64_t>, SdpaFigures> best_;
};

}  // namespace attnlab::bench
