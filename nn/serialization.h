// Checkpoints: named attnlab Tensors <-> safetensors files (nn/safetensors.h does the bytes).
//
// Every file we write carries the metadata key "attnlab_format_version" = kFormatVersion. Readers
// accept files without the key (written by PyTorch or the safetensors package) and reject files whose
// version is newer than ours with a message naming the file and both versions.
//
// Module checkpoints (save_module) hold module.state_dict() under PyTorch's names plus the model's
// JSON config in the metadata key "config", so a file both rebuilds and reloads a model:
//
//   save_module("model.safetensors", model, {{"d_model", 64}, {"n_layers", 2}});
//   nlohmann::json cfg = read_module_config("model.safetensors");   // build a model from cfg, then
//   load_module("model.safetensors", model);
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/module.h"
#include "tensor/tensor.h"

namespace attnlab::nn {

inline constexpr int kFormatVersion = 1;
inline constexpr const char* kFormatVersionKey = "attnlab_format_version";

// Writes tensors (any strides and device; converted to contiguous CPU copies, a synchronisation point
// for GPU tensors) atomically via safetensors::save_file.
// dtype mapping f32 F32, f64 F64, bf16 BF16, f16 F16, i32 I32, i64 I64, i8 I8, u8 U8. The format
// version key is added to `metadata` (overriding a caller's value).
void save_tensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata = {});

struct LoadedTensors {
  std::vector<std::pair<std::string, Tensor>> tensors;  // sorted by name (the file keeps no order)
  std::map<std::string, std::string> metadata;
  std::string path;  // for error messages
  // The tensor called `name`; Error naming the file and the key when absent.
  Tensor get(const std::string& name) const;
  bool contains(const std::string& name) const;
};

// Reads every tensor into fresh contiguous CPU tensors (no requires_grad). Errors from the format
// layer already name the file.
LoadedTensors load_tensors(const std::string& path);

// save_tensors(path, m.state_dict(), {"config": config.dump(), "attnlab_module": m.type_name()}).
void save_module(const std::string& path, const Module& m, const nlohmann::json& config = {});
// Loads a save_module (or PyTorch state-dict) file into m via load_state_dict (the values are copied
// onto each parameter's own device, so a model moved to a GPU loads in place) and returns the config
// (null when the file has none). Errors name the file.
nlohmann::json load_module(const std::string& path, Module& m, bool strict = true);
// Only the config, for building the model before loading it.
nlohmann::json read_module_config(const std::string& path);

}  // namespace attnlab::nn
