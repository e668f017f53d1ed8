// safetensors reader/writer. The rules enforced here and their order are documented in
// safetensors.h; comments below explain the choices that are not obvious from the spec.
#include "nn/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "kernels/error.h"

namespace attnlab::safetensors {
namespace {

using json = nlohmann::json;

struct DtypeInfo {
  Dtype dtype;
  const char* name;
  size_t itemsize;
};

constexpr DtypeInfo kDtypes[] = {
    {Dtype::F32, "F32", 4}, {Dtype::F64, "F64", 8}, {Dtype::BF16, "BF16", 2},
    {Dtype::F16, "F16", 2}, {Dtype::I32, "I32", 4}, {Dtype::I64, "I64", 8},
    {Dtype::I8, "I8", 1},   {Dtype::U8, "U8", 1},
};

// Dtypes the format defines that we do not (yet) support: named separately so the error says
// "valid but unsupported" instead of "unknown", which points at the right fix.
constexpr const char* kSpecOnlyDtypes[] = {"BOOL", "U16", "U32", "U64", "I16",
                                           "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3",
                                           "F6_E3M2", "C64"};

const DtypeInfo& info(Dtype dtype) {
  for (const auto& d : kDtypes)
    if (d.dtype == dtype) return d;
  throw Error(cat("safetensors: invalid Dtype value ", static_cast<int>(dtype)));
}

template <class Int>
std::string shape_str(const std::vector<Int>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string range_str(uint64_t b, uint64_t e) { return cat("[", b, ", ", e, ")"); }

// product(shape) * itemsize, or false on u64 overflow (a corrupt header can claim anything).
bool checked_nbytes(const std::vector<uint64_t>& shape, size_t item, uint64_t& out) {
  uint64_t n = item;
  for (uint64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n)) return false;
  out = n;
  return true;
}

// JSON string literal for `s`; nlohmann rejects invalid UTF-8, which the spec forbids anyway.
std::string quote(const std::string& s, const std::string& ctx, const char* what) {
  try {
    return json(s).dump();
  } catch (const json::exception&) {
    throw Error(cat(ctx, ": ", what, " is not valid UTF-8"));
  }
}

const char* json_type(const json& j) {
  if (j.is_number_unsigned()) return "non-negative integer";
  if (j.is_number_integer()) return "negative integer";
  if (j.is_number_float()) return "float";
  return j.type_name();
}

// ---- writer -----------------------------------------------------------------------------------

struct Prepared {
  std::string header;                                            // padded JSON
  std::vector<const std::pair<std::string, TensorView>*> order;  // buffer layout order
  uint64_t buffer_size = 0;
};

// Validates the inputs and builds the header; touches no file, so save_file can fail before
// creating anything.
Prepared prepare(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata,
                 const std::string& ctx) {
  Prepared p;
  for (const auto& t : tensors) p.order.push_back(&t);
  std::sort(p.order.begin(), p.order.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });

  std::string h = "{";
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      h += (first ? "" : ",") + quote(k, ctx, "metadata key") + ":" +
           quote(v, cat(ctx, ": metadata '", k, "'"), "value");
      first = false;
    }
    h += "}";
  }
  for (size_t i = 0; i < p.order.size(); ++i) {
    const auto& [name, view] = *p.order[i];
    const std::string tctx = cat(ctx, ": tensor '", name, "'");
    ATTNLAB_CHECK(!name.empty(), ctx, ": empty tensor name");
    ATTNLAB_CHECK(name != "__metadata__", tctx, ": name is reserved for the metadata object");
    ATTNLAB_CHECK(i == 0 || p.order[i - 1]->first != name, tctx, ": duplicate name");
    std::vector<uint64_t> dims;
    for (int64_t d : view.shape) {
      ATTNLAB_CHECK(d >= 0, tctx, ": negative dimension in shape ", shape_str(view.shape));
      dims.push_back(static_cast<uint64_t>(d));
    }
    uint64_t need = 0;
    ATTNLAB_CHECK(checked_nbytes(dims, itemsize(view.dtype), need), tctx, ": shape ",
                  shape_str(view.shape), " overflows 64-bit byte count");
    ATTNLAB_CHECK(view.nbytes == need, tctx, ": nbytes ", view.nbytes, " but shape ",
                  shape_str(view.shape), " of ", to_string(view.dtype), " needs ", need, " bytes");
    ATTNLAB_CHECK(view.data != nullptr || need == 0, tctx, ": data is null");

    // Same field order as the reference writer, so single-dtype files come out byte-identical.
    h += (metadata.empty() && i == 0 ? "" : ",") + quote(name, tctx, "name") + ":{\"dtype\":\"" +
         to_string(view.dtype) + "\",\"shape\":" + json(dims).dump() + ",\"data_offsets\":[" +
         std::to_string(p.buffer_size) + "," + std::to_string(p.buffer_size + need) + "]}";
    p.buffer_size += need;
  }
  h += "}";
  // Pad with spaces (allowed by the spec) so the buffer starts 8-aligned: 8 + N is a multiple of 8.
  h.append((8 - h.size() % 8) % 8, ' ');
  ATTNLAB_CHECK(h.size() <= kMaxHeaderSize, ctx, ": header of ", h.size(),
                " bytes exceeds the limit of ", kMaxHeaderSize, " bytes");
  p.header = std::move(h);
  return p;
}

void put_u64_le(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

// ---- reader -----------------------------------------------------------------------------------

// Parses the header, rejecting duplicate keys at any depth: nlohmann would silently keep the last
// one, and two entries with the same tensor name are ambiguous (the spec says names are unique).
json parse_header(const char* begin, const char* end, const std::string& ctx) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool duplicate_is_tensor = false;
  auto on_event = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (ev == json::parse_event_t::key && duplicate.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) {
        duplicate = key;
        duplicate_is_tensor = open_objects.size() == 1;
      }
    }
    return true;
  };
  json j;
  try {
    j = json::parse(begin, end, on_event);
  } catch (const json::parse_error& e) {
    throw Error(cat(ctx, ": header is not valid JSON: ", e.what()));
  }
  ATTNLAB_CHECK(duplicate.empty(), ctx, ": header has duplicate ",
                duplicate_is_tensor ? "tensor name '" : "key '", duplicate, "'");
  ATTNLAB_CHECK(j.is_object(), ctx, ": header must be a JSON object, got ", j.type_name());
  return j;
}

struct Parsed {
  Dtype dtype;
  std::vector<uint64_t> shape;
  uint64_t begin, end;
};

Parsed parse_entry(const json& e, const std::string& tctx) {
  ATTNLAB_CHECK(e.is_object(), tctx, ": entry must be an object with dtype, shape and data_offsets, got ",
                e.type_name());
  for (const char* field : {"dtype", "shape", "data_offsets"})
    ATTNLAB_CHECK(e.contains(field), tctx, ": missing field '", field, "'");
  for (const auto& [k, v] : e.items())
    ATTNLAB_CHECK(k == "dtype" || k == "shape" || k == "data_offsets", tctx, ": unexpected field '",
                  k, "' (allowed: dtype, shape, data_offsets)");

  Parsed p{};
  const json& dt = e["dtype"];
  ATTNLAB_CHECK(dt.is_string(), tctx, ": dtype must be a string, got ", json_type(dt));
  try {
    p.dtype = dtype_from_string(dt.get<std::string>());
  } catch (const Error& err) {
    throw Error(cat(tctx, ": ", err.what()));
  }

  const json& sh = e["shape"];
  ATTNLAB_CHECK(sh.is_array(), tctx, ": shape must be an array, got ", json_type(sh));
  for (const json& d : sh) {
    ATTNLAB_CHECK(d.is_number_unsigned(), tctx, ": shape ", sh.dump(),
                  " must hold non-negative integers, got ", json_type(d));
    const auto v = d.get<uint64_t>();
    // TensorView stores int64 dims; anything larger cannot be a real tensor anyway.
    ATTNLAB_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), tctx,
                  ": shape dimension ", v, " is too large");
    p.shape.push_back(v);
  }

  const json& off = e["data_offsets"];
  ATTNLAB_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                    off[1].is_number_unsigned(),
                tctx, ": data_offsets must be [begin, end] with non-negative integers, got ",
                off.dump());
  p.begin = off[0].get<uint64_t>();
  p.end = off[1].get<uint64_t>();
  ATTNLAB_CHECK(p.begin <= p.end, tctx, ": data_offsets [", p.begin, ", ", p.end,
                "] has begin > end");

  uint64_t need = 0;
  ATTNLAB_CHECK(checked_nbytes(p.shape, itemsize(p.dtype), need), tctx, ": shape ",
                shape_str(p.shape), " of ", to_string(p.dtype), " overflows 64-bit byte count");
  ATTNLAB_CHECK(p.end - p.begin == need, tctx, ": data_offsets ", range_str(p.begin, p.end),
                " but shape ", shape_str(p.shape), " of ", to_string(p.dtype), " needs ", need,
                " bytes");
  return p;
}

}  // namespace

// ---- dtypes -------------------------------------------------------------------------------------

size_t itemsize(Dtype dtype) { return info(dtype).itemsize; }

std::string to_string(Dtype dtype) { return info(dtype).name; }

Dtype dtype_from_string(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return d.dtype;
  for (const char* s : kSpecOnlyDtypes)
    ATTNLAB_CHECK(name != s, "dtype '", name,
                  "' is valid safetensors but not supported by attnlab (supported: F32, F64, BF16, "
                  "F16, I32, I64, I8, U8)");
  throw Error(cat("unknown dtype '", name, "' (supported: F32, F64, BF16, F16, I32, I64, I8, U8)"));
}

// ---- writer -------------------------------------------------------------------------------------

std::vector<uint8_t> serialize(const NamedTensors& tensors,
                               const std::map<std::string, std::string>& metadata) {
  const Prepared p = prepare(tensors, metadata, "safetensors serialize");
  std::vector<uint8_t> out(8 + p.header.size() + p.buffer_size);
  put_u64_le(out.data(), p.header.size());
  std::memcpy(out.data() + 8, p.header.data(), p.header.size());
  uint8_t* dst = out.data() + 8 + p.header.size();
  for (const auto* t : p.order) {
    if (t->second.nbytes) std::memcpy(dst, t->second.data, t->second.nbytes);
    dst += t->second.nbytes;
  }
  return out;
}

void save_file(const std::string& path, const NamedTensors& tensors,
               const std::map<std::string, std::string>& metadata) {
  const Prepared p = prepare(tensors, metadata, path);

  // Same directory as the target so rename() is atomic (it cannot cross filesystems); the pid keeps
  // concurrent writers from different processes off each other's temp files.
  const std::string tmp = cat(path, ".tmp.", ::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  ATTNLAB_CHECK(f != nullptr, path, ": cannot create temporary file '", tmp,
                "': ", std::strerror(errno));
  try {
    auto write = [&](const void* data, size_t n) {
      ATTNLAB_CHECK(n == 0 || std::fwrite(data, 1, n, f) == n, path, ": write to '", tmp,
                    "' failed: ", std::strerror(errno));
    };
    uint8_t len[8];
    put_u64_le(len, p.header.size());
    write(len, 8);
    write(p.header.data(), p.header.size());
    for (const auto* t : p.order) write(t->second.data, t->second.nbytes);
    // fsync before rename: otherwise a crash can leave the new name pointing at unwritten blocks.
    ATTNLAB_CHECK(std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0, path, ": flushing '", tmp,
                  "' failed: ", std::strerror(errno));
    FILE* closing = f;
    f = nullptr;
    ATTNLAB_CHECK(std::fclose(closing) == 0, path, ": closing '", tmp,
                  "' failed: ", std::strerror(errno));
    ATTNLAB_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, path, ": renaming '", tmp,
                  "' over the target failed: ", std::strerror(errno));
  } catch (...) {
    if (f) std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  // Persist the rename itself. Best effort: the file is complete either way.
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

// ---- reader -------------------------------------------------------------------------------------

File File::load(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ATTNLAB_CHECK(fd >= 0, path, ": cannot open: ", std::strerror(errno));
  std::vector<uint8_t> bytes;
  try {
    struct stat st {};
    ATTNLAB_CHECK(::fstat(fd, &st) == 0, path, ": cannot stat: ", std::strerror(errno));
    ATTNLAB_CHECK(S_ISREG(st.st_mode), path, ": not a regular file");
    bytes.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < bytes.size()) {
      const ssize_t r = ::read(fd, bytes.data() + got, bytes.size() - got);
      if (r < 0 && errno == EINTR) continue;
      ATTNLAB_CHECK(r >= 0, path, ": read failed: ", std::strerror(errno));
      ATTNLAB_CHECK(r > 0, path, ": file shrank while reading (", got, " of ", bytes.size(),
                    " bytes)");
      got += static_cast<size_t>(r);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return deserialize(std::move(bytes), path);
}

File deserialize(std::vector<uint8_t> bytes, const std::string& name_for_errors) {
  const std::string& ctx = name_for_errors;
  const uint64_t total = bytes.size();

  // 1. The 8-byte length prefix and the header bytes.
  ATTNLAB_CHECK(total >= 8, ctx, ": file truncated: ", total,
                " bytes, shorter than the 8-byte header-size prefix");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  ATTNLAB_CHECK(n <= kMaxHeaderSize, ctx, ": header size ", n, " exceeds the limit of ",
                kMaxHeaderSize, " bytes (corrupt or not a safetensors file)");
  ATTNLAB_CHECK(8 + n <= total, ctx, ": file truncated: header size says ", n,
                " bytes but only ", total - 8, " bytes follow the 8-byte prefix (file is ", total,
                " bytes)");
  ATTNLAB_CHECK(n > 0 && bytes[8] == '{', ctx, ": header does not start with '{'",
                n == 0 ? " (header size is 0)" : "");
  const char* hbegin = reinterpret_cast<const char*>(bytes.data() + 8);
  // parse() accepts trailing whitespace, which covers the spec's space padding.
  const json header = parse_header(hbegin, hbegin + n, ctx);

  // 2. Every entry on its own: fields, types, dtype, offsets vs shape.
  File file;
  file.name_ = name_for_errors;
  std::vector<std::pair<const std::string*, Parsed>> spans;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      ATTNLAB_CHECK(value.is_object(), ctx, ": __metadata__ must be an object of strings, got ",
                    value.type_name());
      for (const auto& [mk, mv] : value.items()) {
        ATTNLAB_CHECK(mv.is_string(), ctx, ": __metadata__ value for key '", mk, "' is a ",
                      json_type(mv), ", must be a string");
        file.metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    const Parsed p = parse_entry(value, cat(ctx, ": tensor '", key, "'"));
    auto [it, inserted] = file.entries_.emplace(
        key, File::Entry{p.dtype, std::vector<int64_t>(p.shape.begin(), p.shape.end()), p.begin,
                         p.end - p.begin});
    (void)inserted;  // names are unique: parse_header rejected duplicates
    spans.emplace_back(&it->first, p);
  }

  // 3. The entries together must tile the buffer [0, buffer_size) exactly. Sorting by offsets makes
  // overlaps and holes adjacent pairs; (begin, end) order puts an empty tensor before a non-empty
  // one at the same offset, so empty tensors only overlap when they sit strictly inside another.
  const uint64_t buffer_size = total - 8 - n;
  std::sort(spans.begin(), spans.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second.begin, a.second.end) < std::pair(b.second.begin, b.second.end);
  });
  std::string hole;
  uint64_t cursor = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    const auto& [name, s] = spans[i];
    if (i > 0) {
      const auto& [pname, ps] = spans[i - 1];
      ATTNLAB_CHECK(s.begin >= ps.end, ctx, ": tensors '", *pname, "' ",
                    range_str(ps.begin, ps.end), " and '", *name, "' ", range_str(s.begin, s.end),
                    " overlap");
    }
    if (s.begin > cursor && hole.empty())
      hole = cat(ctx, ": hole in the data buffer: bytes ", range_str(cursor, s.begin),
                 " before tensor '", *name, "' are not covered by any tensor");
    cursor = s.end;
  }
  const uint64_t data_end = cursor;  // end of the last tensor (tensors are sorted, non-overlapping)

  if (data_end > buffer_size) {
    // A header that tiles [0, data_end) without holes is self-consistent: the file was cut short.
    // (The expected total is only printed when it fits in 64 bits: a corrupt header can claim more.)
    const bool fits = data_end <= std::numeric_limits<uint64_t>::max() - 8 - n;
    ATTNLAB_CHECK(!hole.empty(), ctx, ": file truncated: tensor '", *spans.back().first,
                  "' ends at byte ", data_end, " of the data buffer but only ", buffer_size,
                  " bytes follow the header (file is ", total, " bytes, expected 8 + ", n, " + ",
                  data_end, fits ? cat(" = ", 8 + n + data_end) : std::string(), ")");
    for (const auto& [name, s] : spans)
      ATTNLAB_CHECK(s.end <= buffer_size, ctx, ": tensor '", *name, "': data_offsets ",
                    range_str(s.begin, s.end), " lie outside the data buffer of ", buffer_size,
                    " bytes");
  }
  ATTNLAB_CHECK(hole.empty(), hole);
  ATTNLAB_CHECK(data_end == buffer_size, ctx, ": hole in the data buffer: trailing bytes ",
                range_str(data_end, buffer_size), " are not covered by any tensor");

  // Entries held offsets relative to the buffer; make them absolute into bytes_.
  for (auto& [name, e] : file.entries_) e.begin += 8 + n;
  file.bytes_ = std::move(bytes);
  return file;
}

std::vector<std::string> File::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

TensorView File::get(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) {
    std::string available;
    size_t shown = 0;
    for (const auto& [k, e] : entries_) {
      if (shown++ == 5) {
        available += ", ...";
        break;
      }
      available += (shown > 1 ? ", '" : "'") + k + "'";
    }
    throw Error(cat(name_, ": no tensor named '", name, "' (", entries_.size(), " tensors",
                    entries_.empty() ? "" : ": ", available, ")"));
  }
  const Entry& e = it->second;
  return TensorView{e.dtype, e.shape, bytes_.data() + e.begin, static_cast<size_t>(e.nbytes)};
}

}  // namespace attnlab::safetensors
