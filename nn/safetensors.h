// safetensors — byte-level reader/writer for the huggingface safetensors checkpoint format.
//
// File layout (https://github.com/huggingface/safetensors, "Format"):
//   [8 bytes]  N, little-endian u64: size of the JSON header
//   [N bytes]  UTF-8 JSON object: name -> {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}
//              plus an optional "__metadata__": {string: string}; may end with padding spaces
//   [rest]     the byte buffer; data_offsets are relative to its start, e is exclusive
// Tensors are row-major ('C' order), little-endian, and must tile the buffer exactly.
//
// This layer knows nothing about attnlab::Tensor on purpose: it moves (dtype, shape, bytes)
// triples in and out of files, and the tensor layer converts. Everything throws attnlab::Error
// with a message naming the file, the tensor and the rule broken, e.g.
//   "model.safetensors: tensor 'layers.0.q_proj.weight': data_offsets [0, 96) but shape [4, 8]
//    of F32 needs 128 bytes"
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

// Bytes are stored little-endian and handed out as-is; a big-endian host would need byte swaps.
static_assert(std::endian::native == std::endian::little,
              "attnlab safetensors assumes a little-endian host (x86_64, aarch64)");

namespace attnlab::safetensors {

// Element types we read and write. The format also defines BOOL, U16/U32/U64, I16 and F8 variants;
// files using them are rejected with a message saying the dtype is valid but unsupported here.
enum class Dtype { F32, F64, BF16, F16, I32, I64, I8, U8 };

size_t itemsize(Dtype dtype);                        // bytes per element: F32 -> 4, BF16 -> 2, ...
std::string to_string(Dtype dtype);                  // the spelling used in the header: "F32", "BF16"
Dtype dtype_from_string(const std::string& name);    // inverse of to_string; Error for other names

// A non-owning view of one tensor's bytes. nbytes == product(shape) * itemsize(dtype); shape {} is a
// scalar (1 element). `data` may be unaligned for the dtype (see save_file), so read it with memcpy.
struct TensorView {
  Dtype dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;
  size_t nbytes;
};

// Named tensors to write, in any order (the writer sorts them).
using NamedTensors = std::vector<std::pair<std::string, TensorView>>;

// Largest header the reader accepts (same limit as the reference implementation).
inline constexpr uint64_t kMaxHeaderSize = 100'000'000;

// Builds the whole file in memory. Layout choices:
//  - tensors are laid out and listed in the header sorted by name. (The reference Rust writer
//    sorts by dtype alignment descending, then name, so each tensor is aligned to its itemsize;
//    we prefer name order for a stable, diffable layout. Any order is valid to every reader.)
//  - "__metadata__" comes first in the header, only when `metadata` is non-empty.
//  - the header is compact JSON padded with spaces so the buffer starts at an 8-aligned offset.
// Errors: duplicate or empty names, the reserved name "__metadata__", a view whose nbytes does not
// match its shape and dtype, a negative dim, null data with nbytes > 0, non-UTF-8 strings.
std::vector<uint8_t> serialize(const NamedTensors& tensors,
                               const std::map<std::string, std::string>& metadata = {});

// Writes serialize()'s bytes to `path` atomically: everything is validated first, then written to
// "<path>.tmp.<pid>" in the same directory, fflush + fsync'ed and renamed over `path`. On any error
// the temp file is removed and an existing `path` is left byte-identical. Tensor data is streamed
// from the views (no second in-memory copy of the checkpoint).
void save_file(const std::string& path, const NamedTensors& tensors,
               const std::map<std::string, std::string>& metadata = {});

// A fully validated safetensors file held in memory. Views returned by get() point into this
// object's buffer: they stay valid while the File lives (moving a File keeps them valid too).
class File {
 public:
  // Reads the whole file and validates it; errors are prefixed with `path`.
  static File load(const std::string& path);

  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::vector<std::string> names() const;  // sorted by name
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  size_t size() const { return entries_.size(); }  // number of tensors
  TensorView get(const std::string& name) const;   // Error naming the missing key

  // Validates `bytes` as a complete safetensors file; `name_for_errors` prefixes every message.
  friend File deserialize(std::vector<uint8_t> bytes, const std::string& name_for_errors);

 private:
  File() = default;  // only deserialize() builds one, always fully validated

  struct Entry {
    Dtype dtype;
    std::vector<int64_t> shape;
    uint64_t begin;  // absolute offset in bytes_ (8 + N + data_offsets[0])
    uint64_t nbytes;
  };

  std::string name_;  // file name used in error messages
  std::vector<uint8_t> bytes_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, Entry> entries_;
};

File deserialize(std::vector<uint8_t> bytes, const std::string& name_for_errors);

}  // namespace attnlab::safetensors
