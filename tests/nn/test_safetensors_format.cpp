// Tests for nn/safetensors: round trips of every dtype, byte-exact layout against the reference
// writer, files written by an independent Python implementation (tests/fixtures/
// make_safetensors_fixtures.py -> tests/data/safetensors/), one corrupt file per reader rule, and
// the atomicity of save_file.
#include "nn/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "kernels/error.h"

#ifndef ATTNLAB_TEST_DATA_DIR
#error "ATTNLAB_TEST_DATA_DIR must point at tests/data"
#endif

namespace st = attnlab::safetensors;
namespace fs = std::filesystem;
using st::Dtype;

namespace {

std::string fixture(const std::string& name) {
  return std::string(ATTNLAB_TEST_DATA_DIR) + "/safetensors/" + name;
}

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in.good());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// The message of the attnlab::Error thrown by f, or "" (and a failed CHECK) when none is thrown.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const attnlab::Error& e) {
    return e.what();
  }
  FAIL_CHECK("expected attnlab::Error");
  return "";
}

// A header string framed as a file: u64 length + header + buffer (no padding added).
std::vector<uint8_t> frame(const std::string& header, const std::vector<uint8_t>& data = {}) {
  const uint64_t n = header.size();
  std::vector<uint8_t> out(8 + header.size() + data.size());
  std::memcpy(out.data(), &n, 8);  // little-endian host (asserted in safetensors.h)
  std::memcpy(out.data() + 8, header.data(), header.size());
  if (!data.empty()) std::memcpy(out.data() + 8 + header.size(), data.data(), data.size());
  return out;
}

template <class T>
std::vector<T> values_of(const st::TensorView& v) {
  REQUIRE(v.nbytes % sizeof(T) == 0);
  std::vector<T> out(v.nbytes / sizeof(T));
  if (v.nbytes) std::memcpy(out.data(), v.data, v.nbytes);  // data may be unaligned
  return out;
}

std::vector<uint8_t> bytes_of(const st::TensorView& v) { return {v.data, v.data + v.nbytes}; }

uint64_t header_size(const std::vector<uint8_t>& file) {
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  return n;
}

std::string header_text(const std::vector<uint8_t>& file) {
  return {file.begin() + 8, file.begin() + 8 + static_cast<std::ptrdiff_t>(header_size(file))};
}

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("attnlab_safetensors_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

// One tensor of every dtype plus a scalar and an empty tensor, filled with a byte pattern that
// differs per tensor; names given out of order on purpose.
struct Sample {
  struct Spec {
    const char* name;
    Dtype dtype;
    std::vector<int64_t> shape;
  };
  std::vector<std::vector<uint8_t>> storage;
  st::NamedTensors tensors;

  Sample() {
    const std::vector<Spec> specs = {
        {"f64", Dtype::F64, {3}},   {"bf16", Dtype::BF16, {2, 2}}, {"u8", Dtype::U8, {3, 1, 2}},
        {"f32", Dtype::F32, {2, 3}}, {"i64", Dtype::I64, {2}},      {"f16", Dtype::F16, {5}},
        {"i32", Dtype::I32, {1, 4}}, {"i8", Dtype::I8, {7}},        {"scalar", Dtype::F32, {}},
        {"empty", Dtype::I32, {0, 5}}};
    // All storage first, then views, so no view points into a reallocated vector.
    for (const Spec& s : specs) {
      size_t n = st::itemsize(s.dtype);
      for (int64_t d : s.shape) n *= static_cast<size_t>(d);
      std::vector<uint8_t> bytes(n);
      for (size_t i = 0; i < n; ++i)
        bytes[i] = static_cast<uint8_t>(i * 37 + 11 + storage.size() * 101);
      storage.push_back(std::move(bytes));
    }
    for (size_t i = 0; i < specs.size(); ++i)
      tensors.push_back({specs[i].name, st::TensorView{specs[i].dtype, specs[i].shape,
                                                       storage[i].data(), storage[i].size()}});
  }
  const st::NamedTensors& views() const { return tensors; }
};

void check_same(const st::File& file, const st::NamedTensors& expected) {
  REQUIRE(file.size() == expected.size());
  for (const auto& [name, want] : expected) {
    CAPTURE(name);
    REQUIRE(file.contains(name));
    const st::TensorView got = file.get(name);
    CHECK(got.dtype == want.dtype);
    CHECK(got.shape == want.shape);
    REQUIRE(got.nbytes == want.nbytes);
    CHECK((want.nbytes == 0 || std::memcmp(got.data, want.data, want.nbytes) == 0));
  }
}

}  // namespace

TEST_CASE("dtype names, sizes and parsing") {
  const std::pair<Dtype, size_t> all[] = {{Dtype::F32, 4}, {Dtype::F64, 8}, {Dtype::BF16, 2},
                                          {Dtype::F16, 2}, {Dtype::I32, 4}, {Dtype::I64, 8},
                                          {Dtype::I8, 1},  {Dtype::U8, 1}};
  for (const auto& [dtype, size] : all) {
    CHECK(st::itemsize(dtype) == size);
    CHECK(st::dtype_from_string(st::to_string(dtype)) == dtype);
  }
  CHECK(st::to_string(Dtype::BF16) == "BF16");
  CHECK(error_of([] { st::dtype_from_string("f32"); }).find("unknown dtype 'f32'") !=
        std::string::npos);
  CHECK(error_of([] { st::dtype_from_string("U16"); }).find("not supported") != std::string::npos);
}

TEST_CASE("serialize/deserialize round trip of every dtype, bytes identical") {
  Sample s;
  const auto& tensors = s.views();
  const std::vector<uint8_t> bytes = st::serialize(tensors);
  const st::File file = st::deserialize(bytes, "mem");
  check_same(file, tensors);
  CHECK(file.metadata().empty());
  CHECK(file.names() == std::vector<std::string>{"bf16", "empty", "f16", "f32", "f64", "i32",
                                                  "i64", "i8", "scalar", "u8"});

  // Deterministic: input order does not matter.
  st::NamedTensors reversed(tensors.rbegin(), tensors.rend());
  CHECK(st::serialize(reversed) == bytes);
}

TEST_CASE("writer layout: name order, contiguous offsets, 8-aligned buffer, space padding") {
  Sample s;
  const std::vector<uint8_t> bytes = st::serialize(s.views());
  const uint64_t n = header_size(bytes);
  CHECK((8 + n) % 8 == 0);
  const std::string text = header_text(bytes);
  const size_t close = text.rfind('}');
  CHECK(text.find_first_not_of(' ', close + 1) == std::string::npos);  // only spaces after '}'
  CHECK(text.size() - close - 1 < 8);

  // Names appear in sorted order in the header text and own consecutive byte ranges.
  const auto header = nlohmann::json::parse(text);
  size_t last_pos = 0;
  uint64_t cursor = 0;
  for (const std::string& name : st::deserialize(bytes, "mem").names()) {
    CAPTURE(name);
    const size_t pos = text.find("\"" + name + "\":");
    REQUIRE(pos != std::string::npos);
    CHECK(pos > last_pos);
    last_pos = pos;
    const auto off = header.at(name).at("data_offsets");
    CHECK(off[0].get<uint64_t>() == cursor);
    cursor = off[1].get<uint64_t>();
  }
  CHECK(8 + n + cursor == bytes.size());
}

TEST_CASE("writer output is byte-identical to the reference writer's own test vectors") {
  // Vectors from the reference Rust implementation's serialization tests: one F32 tensor
  // (header 64 bytes, no padding needed) and an empty file with/without metadata.
  const float vals[] = {0, 1, 2, 3, 4, 5};
  const auto* p = reinterpret_cast<const uint8_t*>(vals);
  std::vector<uint8_t> data(p, p + sizeof(vals));
  const auto one = st::serialize({{"attn.0", {Dtype::F32, {1, 2, 3}, data.data(), 24}}});
  CHECK(one == frame(R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})", data));

  const auto padded = st::serialize({{"attn0", {Dtype::F32, {1, 1, 2, 3}, data.data(), 24}}});
  CHECK(padded ==
        frame(R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       )", data));

  CHECK(st::serialize({}) == frame("{}      "));
  CHECK(st::serialize({}, {{"framework", "pt"}}) ==
        frame(R"({"__metadata__":{"framework":"pt"}}     )"));
}

TEST_CASE("metadata round trip, omitted when empty") {
  const std::map<std::string, std::string> meta = {
      {"format", "pt"},
      {"attnlab.version", "1"},
      {"note", "quote \" backslash \\ newline \n unicode \xC3\xA9"},
  };
  const uint8_t one = 7;
  const st::NamedTensors t = {{"x", {Dtype::U8, {1}, &one, 1}}};
  const auto bytes = st::serialize(t, meta);
  CHECK(header_text(bytes).rfind("{\"__metadata__\":", 0) == 0);  // first, like the reference
  const st::File file = st::deserialize(bytes, "mem");
  CHECK(file.metadata() == meta);
  CHECK(file.names() == std::vector<std::string>{"x"});  // __metadata__ is not a tensor

  CHECK(header_text(st::serialize(t)).find("__metadata__") == std::string::npos);
}

TEST_CASE("save_file + File::load round trip; the file equals serialize()") {
  TempDir dir;
  Sample s;
  const std::map<std::string, std::string> meta = {{"format", "attnlab"}, {"step", "12"}};
  const std::string path = (dir.path / "model.safetensors").string();
  st::save_file(path, s.views(), meta);
  CHECK(read_bytes(path) == st::serialize(s.views(), meta));
  const st::File file = st::File::load(path);
  check_same(file, s.views());
  CHECK(file.metadata() == meta);
  CHECK(dir.listing() == std::vector<std::string>{"model.safetensors"});

  // Views point into the File's buffer and survive a move of the File.
  const st::TensorView before = file.get("f32");
  st::File copy = file;
  const st::File moved = std::move(copy);
  CHECK(moved.get("f32").nbytes == before.nbytes);
  CHECK(std::memcmp(moved.get("f32").data, before.data, before.nbytes) == 0);
}

TEST_CASE("foreign fixture (reference layout: dtype alignment then name) loads with right values") {
  const st::File file = st::File::load(fixture("foreign_f32_i64.safetensors"));
  CHECK(file.names() == std::vector<std::string>{"a.weight", "b.index"});
  CHECK(file.metadata() == std::map<std::string, std::string>{{"format", "pt"}});

  const st::TensorView w = file.get("a.weight");
  CHECK(w.dtype == Dtype::F32);
  CHECK(w.shape == std::vector<int64_t>{2, 3});
  CHECK(values_of<float>(w) == std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f});

  const st::TensorView idx = file.get("b.index");
  CHECK(idx.dtype == Dtype::I64);
  CHECK(idx.shape == std::vector<int64_t>{4});
  CHECK(values_of<int64_t>(idx) == std::vector<int64_t>{-2, 0, 1, int64_t{1} << 40});
  // The reference writer put the I64 tensor first although its name sorts last: we follow offsets.
  CHECK(idx.data + 32 == w.data);

  // Re-written by our writer (name order) it still holds the same tensors.
  const st::NamedTensors again = {{"a.weight", w}, {"b.index", idx}};
  check_same(st::deserialize(st::serialize(again, file.metadata()), "mem"), again);
}

TEST_CASE("foreign fixture with every dtype, a scalar and an empty tensor") {
  const st::File file = st::File::load(fixture("foreign_all_dtypes.safetensors"));
  CHECK(file.size() == 10);
  CHECK(values_of<double>(file.get("t.f64")) == std::vector<double>{3.25, -1e300});
  CHECK(values_of<float>(file.get("t.f32")) == std::vector<float>{1.0f, -2.5f, 3.0e38f});
  // 1.0, -2.0, 0.5, 3.140625 in bfloat16; 1.0, -0.5, 65504 in IEEE half.
  CHECK(values_of<uint16_t>(file.get("t.bf16")) ==
        std::vector<uint16_t>{0x3F80, 0xC000, 0x3F00, 0x4049});
  CHECK(file.get("t.bf16").shape == std::vector<int64_t>{2, 2});
  CHECK(values_of<uint16_t>(file.get("t.f16")) == std::vector<uint16_t>{0x3C00, 0xB800, 0x7BFF});
  CHECK(values_of<int32_t>(file.get("t.i32")) == std::vector<int32_t>{-7, 2147483647});
  CHECK(values_of<int64_t>(file.get("t.i64")) ==
        std::vector<int64_t>{INT64_MIN, INT64_MAX});
  CHECK(values_of<int8_t>(file.get("t.i8")) == std::vector<int8_t>{-128, 0, 127});
  CHECK(bytes_of(file.get("t.u8")) == std::vector<uint8_t>{0, 200, 255});
  CHECK(file.get("t.u8").shape == std::vector<int64_t>{1, 3});
  CHECK(file.get("t.scalar").shape.empty());
  CHECK(values_of<float>(file.get("t.scalar")) == std::vector<float>{42.0f});
  CHECK(file.get("t.empty").shape == std::vector<int64_t>{0, 4});
  CHECK(file.get("t.empty").nbytes == 0);
  CHECK(file.get("t.f16").dtype == Dtype::F16);
  CHECK(file.get("t.bf16").dtype == Dtype::BF16);
}

TEST_CASE("every corrupt fixture is rejected with its specific message") {
  struct Case {
    const char* file;
    std::vector<std::string> words;
  };
  const std::vector<Case> cases = {
      {"corrupt_too_short", {"truncated", "5 bytes", "8-byte"}},
      {"corrupt_header_too_large", {"header size 1099511627776", "exceeds the limit"}},
      {"corrupt_header_beyond_file",
       {"truncated", "header size says 200 bytes", "only 54 bytes", "file is 62 bytes"}},
      {"corrupt_not_object", {"does not start with '{'"}},
      {"corrupt_invalid_json", {"not valid JSON"}},
      {"corrupt_invalid_utf8", {"not valid JSON", "UTF-8"}},
      {"corrupt_offsets_outside",
       {"tensor 'b'", "[64, 72)", "outside the data buffer of 16 bytes"}},
      {"corrupt_overlap", {"tensors 'a' [0, 16) and 'b' [8, 16) overlap"}},
      {"corrupt_hole", {"hole", "bytes [8, 12)", "tensor 'b'"}},
      {"corrupt_trailing_bytes", {"hole", "trailing bytes [8, 12)"}},
      {"corrupt_size_mismatch",
       {"tensor 'layers.0.q_proj.weight': data_offsets [0, 96) but shape [4, 8] of F32 needs "
        "128 bytes"}},
      {"corrupt_unknown_dtype", {"tensor 'a'", "unknown dtype 'F31'"}},
      {"corrupt_unsupported_dtype", {"tensor 'mask'", "'BOOL'", "not supported"}},
      {"corrupt_truncated_buffer",
       {"truncated", "tensor 'a.weight' ends at byte 56", "only 52 bytes", "file is 220 bytes"}},
      {"corrupt_duplicate_name", {"duplicate tensor name 'a'"}},
      {"corrupt_metadata_not_string", {"__metadata__", "'epoch'", "must be a string"}},
      {"corrupt_extra_field", {"tensor 'a'", "unexpected field 'offset'"}},
      {"corrupt_missing_field", {"tensor 'a'", "missing field 'shape'"}},
      {"corrupt_negative_shape", {"tensor 'a'", "non-negative integers"}},
  };
  for (const Case& c : cases) {
    const std::string path = fixture(std::string(c.file) + ".safetensors");
    CAPTURE(path);
    const std::string msg = error_of([&] { st::File::load(path); });
    CAPTURE(msg);
    CHECK(msg.rfind(path + ": ", 0) == 0);  // every message starts with the file name
    for (const std::string& w : c.words) {
      CAPTURE(w);
      CHECK(msg.find(w) != std::string::npos);
    }
  }
  // Every corrupt file the script writes is covered above.
  size_t on_disk = 0;
  for (const auto& e : fs::directory_iterator(fixture("")))
    on_disk += e.path().filename().string().rfind("corrupt_", 0) == 0;
  CHECK(on_disk == cases.size());
}

TEST_CASE("in-memory headers: remaining reader rules") {
  const std::vector<uint8_t> four(4), eight(8);
  auto err = [](const std::vector<uint8_t>& bytes) {
    return error_of([&] { st::deserialize(bytes, "x.safetensors"); });
  };
  auto has = [](const std::string& msg, const std::string& w) {
    CAPTURE(msg);
    return msg.find(w) != std::string::npos;
  };
  CHECK(has(err(frame("")), "header size is 0"));
  CHECK(has(err(frame(" {}")), "does not start with '{'"));
  CHECK(has(err(frame(R"({"a":[1]})")), "tensor 'a': entry must be an object"));
  CHECK(has(err(frame(R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", four)),
            "non-negative integers, got float"));
  CHECK(has(err(frame(R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", four)),
            "dtype must be a string"));
  CHECK(has(err(frame(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", four)),
            "begin > end"));
  CHECK(has(err(frame(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", four)),
            "data_offsets must be [begin, end]"));
  CHECK(has(err(frame(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],)"
                      R"("data_offsets":[0,4]}})", four)),
            "overflows"));
  CHECK(has(err(frame(R"({"__metadata__":"pt"})")), "__metadata__ must be an object"));
  CHECK(has(err(frame(R"({"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                      four)),
            "duplicate key 'dtype'"));
  // An empty tensor strictly inside another one overlaps it (the reference reader agrees).
  CHECK(has(err(frame(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})", eight)),
            "overlap"));
  // Empty tensors at the buffer's edges are fine, and so is extra space padding.
  const st::File ok = st::deserialize(
      frame(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
            R"("z":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}})"
            "                ",
            eight),
      "x");
  CHECK(ok.names() == std::vector<std::string>{"a", "z"});
  CHECK(st::deserialize(frame("{}"), "x").size() == 0);
}

TEST_CASE("writer rejects invalid input") {
  const float vals[6] = {};
  const auto* p = reinterpret_cast<const uint8_t*>(vals);
  auto msg_of = [](const st::NamedTensors& t, const std::map<std::string, std::string>& m = {}) {
    return error_of([&] { st::serialize(t, m); });
  };
  CHECK(msg_of({{"w", {Dtype::F32, {2, 3}, p, 20}}})
            .find("tensor 'w': nbytes 20 but shape [2, 3] of F32 needs 24 bytes") !=
        std::string::npos);
  CHECK(msg_of({{"w", {Dtype::F32, {1}, p, 4}}, {"w", {Dtype::F32, {1}, p, 4}}})
            .find("tensor 'w': duplicate name") != std::string::npos);
  CHECK(msg_of({{"__metadata__", {Dtype::F32, {1}, p, 4}}}).find("reserved") != std::string::npos);
  CHECK(msg_of({{"", {Dtype::F32, {1}, p, 4}}}).find("empty tensor name") != std::string::npos);
  CHECK(msg_of({{"w", {Dtype::F32, {-1, 2}, p, 4}}}).find("negative dimension") !=
        std::string::npos);
  CHECK(msg_of({{"w", {Dtype::F32, {1}, nullptr, 4}}}).find("data is null") != std::string::npos);
  CHECK(msg_of({}, {{"k", "\xFF"}}).find("not valid UTF-8") != std::string::npos);
}

TEST_CASE("File::get and File::load name what is missing") {
  const st::File file = st::File::load(fixture("foreign_f32_i64.safetensors"));
  const std::string msg = error_of([&] { file.get("c.bias"); });
  CHECK(msg.find("foreign_f32_i64.safetensors: no tensor named 'c.bias'") != std::string::npos);
  CHECK(msg.find("'a.weight', 'b.index'") != std::string::npos);

  TempDir dir;
  const std::string missing = (dir.path / "nope.safetensors").string();
  CHECK(error_of([&] { st::File::load(missing); }).find(missing + ": cannot open") !=
        std::string::npos);
  CHECK(error_of([&] { st::File::load(dir.path.string()); }).find("not a regular file") !=
        std::string::npos);
}

TEST_CASE("save_file is atomic") {
  TempDir dir;
  const uint8_t a[4] = {1, 2, 3, 4};
  const uint8_t b[8] = {9, 9, 9, 9, 9, 9, 9, 9};
  const st::NamedTensors good = {{"t", {Dtype::I32, {1}, a, 4}}};
  const st::NamedTensors other = {{"t", {Dtype::I64, {1}, b, 8}}};
  const st::NamedTensors bad = {{"t", {Dtype::I32, {2}, a, 4}}};  // nbytes too small
  const fs::path target = dir.path / "ckpt.safetensors";

  SUBCASE("a missing directory fails cleanly") {
    const fs::path nowhere = dir.path / "no_such_dir" / "ckpt.safetensors";
    const std::string msg = error_of([&] { st::save_file(nowhere.string(), good); });
    CHECK(msg.find(nowhere.string() + ": cannot create temporary file") != std::string::npos);
    CHECK(!fs::exists(dir.path / "no_such_dir"));
    CHECK(dir.listing().empty());
  }
  SUBCASE("an invalid tensor leaves the existing file byte-identical") {
    st::save_file(target.string(), good);
    const auto before = read_bytes(target);
    const std::string msg = error_of([&] { st::save_file(target.string(), bad); });
    CHECK(msg.find(target.string() + ": tensor 't': nbytes 4") != std::string::npos);
    CHECK(read_bytes(target) == before);
    CHECK(dir.listing() == std::vector<std::string>{"ckpt.safetensors"});
  }
  SUBCASE("a failing rename removes the temp file") {
    // The temp file is fully written, then rename() onto a directory fails: cleanup path.
    fs::create_directory(target);
    const std::string msg = error_of([&] { st::save_file(target.string(), good); });
    CHECK(msg.find("renaming") != std::string::npos);
    CHECK(fs::is_directory(target));
    CHECK(dir.listing() == std::vector<std::string>{"ckpt.safetensors"});
  }
  SUBCASE("a successful save replaces the file and leaves no temp file") {
    write_bytes(target, {1, 2, 3});
    st::save_file(target.string(), other);
    CHECK(read_bytes(target) == st::serialize(other));
    CHECK(dir.listing() == std::vector<std::string>{"ckpt.safetensors"});
    CHECK(values_of<int64_t>(st::File::load(target.string()).get("t")) ==
          std::vector<int64_t>{0x0909090909090909});
  }
}
