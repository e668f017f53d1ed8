#include "nn/serialization.h"

#include <cstring>

#include "nn/safetensors.h"
#include "tensor/ops.h"

namespace attnlab::nn {
namespace {

safetensors::Dtype to_file_dtype(DType t) {
  switch (t) {
    case DType::f32: return safetensors::Dtype::F32;
    case DType::f64: return safetensors::Dtype::F64;
    case DType::bf16: return safetensors::Dtype::BF16;
    case DType::f16: return safetensors::Dtype::F16;
    case DType::i32: return safetensors::Dtype::I32;
    case DType::i64: return safetensors::Dtype::I64;
    case DType::i8: return safetensors::Dtype::I8;
    case DType::u8: return safetensors::Dtype::U8;
  }
  throw Error(cat("save_tensors: unsupported dtype ", dtype_name(t)));
}

DType from_file_dtype(safetensors::Dtype t) {
  switch (t) {
    case safetensors::Dtype::F32: return DType::f32;
    case safetensors::Dtype::F64: return DType::f64;
    case safetensors::Dtype::BF16: return DType::bf16;
    case safetensors::Dtype::F16: return DType::f16;
    case safetensors::Dtype::I32: return DType::i32;
    case safetensors::Dtype::I64: return DType::i64;
    case safetensors::Dtype::I8: return DType::i8;
    case safetensors::Dtype::U8: return DType::u8;
  }
  throw Error("load_tensors: unsupported dtype");
}

void check_version(const std::string& path, const std::map<std::string, std::string>& metadata) {
  auto it = metadata.find(kFormatVersionKey);
  if (it == metadata.end()) return;  // a foreign file (PyTorch, safetensors package)
  int version = 0;
  try {
    size_t used = 0;
    version = std::stoi(it->second, &used);
    ATTNLAB_CHECK(used == it->second.size(), "");
  } catch (const std::exception&) {
    throw Error(cat(path, ": metadata ", kFormatVersionKey, " = '", it->second, "' is not an integer"));
  }
  ATTNLAB_CHECK(version <= kFormatVersion, path, ": written with attnlab checkpoint format version ",
                version, ", newer than this build's version ", kFormatVersion, "; upgrade attnlab");
}

}  // namespace

void save_tensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  // Keep the contiguous copies alive while the views point into them.
  std::vector<Tensor> keep;
  keep.reserve(tensors.size());
  safetensors::NamedTensors views;
  for (const auto& [name, t] : tensors) {
    ATTNLAB_CHECK(t.defined(), "save_tensors: ", path, ": tensor '", name, "' is undefined");
    // A GPU tensor is copied to the host (a synchronisation point); the file holds bytes, no device.
    keep.push_back(ops::contiguous(ops::to_device(t.detach(), kCPU)));
    const Tensor& c = keep.back();
    views.emplace_back(name, safetensors::TensorView{to_file_dtype(c.dtype()), c.shape(),
                                                     static_cast<const uint8_t*>(c.raw_data()),
                                                     c.nbytes()});
  }
  auto meta = metadata;
  meta[kFormatVersionKey] = std::to_string(kFormatVersion);
  safetensors::save_file(path, views, meta);
}

Tensor LoadedTensors::get(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  throw Error(cat(path, ": no tensor named '", name, "' (", tensors.size(), " tensors in the file)"));
}

bool LoadedTensors::contains(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return true;
  return false;
}

LoadedTensors load_tensors(const std::string& path) {
  const safetensors::File file = safetensors::File::load(path);
  LoadedTensors out;
  out.path = path;
  out.metadata = file.metadata();
  check_version(path, out.metadata);
  for (const auto& name : file.names()) {
    const safetensors::TensorView v = file.get(name);
    Tensor t = Tensor::empty(v.shape, from_file_dtype(v.dtype));
    ATTNLAB_CHECK(t.nbytes() == v.nbytes, path, ": tensor '", name, "' size mismatch");
    // The file's data may be unaligned for the dtype: copy bytes, never reinterpret in place.
    if (v.nbytes) std::memcpy(t.raw_data(), v.data, v.nbytes);
    out.tensors.emplace_back(name, t);
  }
  return out;
}

void save_module(const std::string& path, const Module& m, const nlohmann::json& config) {
  save_tensors(path, m.state_dict(), {{"config", config.dump()}, {"attnlab_module", m.type_name()}});
}

nlohmann::json read_module_config(const std::string& path) {
  const safetensors::File file = safetensors::File::load(path);
  check_version(path, file.metadata());
  auto it = file.metadata().find("config");
  if (it == file.metadata().end()) return nullptr;
  try {
    return nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(path, ": metadata 'config' is not valid JSON: ", e.what()));
  }
}

nlohmann::json load_module(const std::string& path, Module& m, bool strict) {
  const LoadedTensors loaded = load_tensors(path);
  try {
    m.load_state_dict(loaded.tensors, strict);
  } catch (const Error& e) {
    throw Error(cat(path, ": ", e.what()));
  }
  auto it = loaded.metadata.find("config");
  if (it == loaded.metadata.end()) return nullptr;
  try {
    return nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat(path, ": metadata 'config' is not valid JSON: ", e.what()));
  }
}

}  // namespace attnlab::nn
