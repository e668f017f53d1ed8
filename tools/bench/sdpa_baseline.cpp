#include "tools/bench/sdpa_baseline.h"

#include <fstream>
#include <sstream>

#include "kernels/error.h"

namespace attnlab::bench {

void SdpaBaseline::add_file(const std::string& path) {
  std::ifstream in(path);
  ATTNLAB_CHECK(in.good(), "--baseline ", path, ": cannot open the file");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json rows;
  try {
    rows = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("--baseline ", path, ": not JSON (expected the output of tools/bench/sdpa_pytorch.py --json): ",
                    e.what()));
  }
  add_rows(rows, path);
}

void SdpaBaseline::add_rows(const nlohmann::json& rows, const std::string& source) {
  ATTNLAB_CHECK(rows.is_array(), "--baseline ", source, ": expected a JSON array of rows");
  for (size_t r = 0; r < rows.size(); ++r) {
    const nlohmann::json& row = rows[r];
    for (const char* key : {"impl", "dtype", "causal", "headdim", "seqlen", "fwd_tflops", "bwd_tflops"})
      ATTNLAB_CHECK(row.is_object() && row.contains(key), "--baseline ", source, ": row ", r, " has no \"", key, "\"");
    if (row.at("dtype") != "bf16") continue;
    SdpaFigures& f = best_[{row.at("causal").get<bool>(), row.at("headdim").get<int64_t>(),
                            row.at("seqlen").get<int64_t>()}];
    const std::string impl = row.at("impl").get<std::string>();
    if (row.contains("device")) f.device = row.at("device").get<std::string>();
    if (const double x = row.at("fwd_tflops").get<double>(); x > f.fwd_tflops) f.fwd_tflops = x, f.fwd_impl = impl;
    if (const double x = row.at("bwd_tflops").get<double>(); x > f.bwd_tflops) f.bwd_tflops = x, f.bwd_impl = impl;
  }
}

const SdpaFigures* SdpaBaseline::find(bool causal, int64_t headdim, int64_t seqlen) const {
  const auto it = best_.find({causal, headdim, seqlen});
  return it == best_.end() ? nullptr : &it->second;
}

}  // namespace attnlab::bench
