// The CUDA decode kernel (kernels/cuda/attention.h decode_attention) against the CPU decode kernel
// (kernels/cpu/decode_attention.h) on the same caches: dense f32 / bf16, a ring buffer, paged blocks
// (unused pool slots and table entries poisoned with NaN: outputs must stay finite and equal the
// contiguous path) and int8 / int4 / fp8-e4m3 quantized caches (per token and KIVI per-channel keys,
// with an f32 window). GQA groups of 1 to 16 heads, Tq 1 to 4, causal and sliding windows.
// Without a GPU the executable is skipped (tests/cuda_main.cpp).
#include <doctest/doctest.h>

#ifdef ATTNLAB_WITH_CUDA
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/decode_attention.h"
#include "kernels/cpu/kv_quant.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/runtime.h"

using namespace attnlab::kernels;
namespace cuda = attnlab::kernels::cuda;

namespace {

constexpr int kDev = 0;

// A device copy of a host vector (caching allocator), freed on destruction.
struct DeviceCopy {
  void* ptr = nullptr;
  size_t bytes = 0;
  template <class T>
  explicit DeviceCopy(const std::vector<T>& x) : bytes(x.size() * sizeof(T)) {
    ptr = cuda::device_alloc(std::max<size_t>(bytes, 16), kDev);
    if (bytes) cuda::copy_to_device(ptr, x.data(), bytes, kDev);
  }
  ~DeviceCopy() { cuda::device_free(ptr, std::max<size_t>(bytes, 16), kDev); }
  DeviceCopy(const DeviceCopy&) = delete;
  DeviceCopy& operator=(const DeviceCopy&) = delete;
  template <class T>
  const T* as() const { return static_cast<const T*>(ptr); }
};

std::vector<float> randvec(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> N(0.f, 1.f);
  std::vector<float> x(n);
  for (auto& v : x) v = N(rng);
  return x;
}

struct DecodeCase {
  int64_t B, Tq, H, Hkv, D;
  std::vector<int64_t> lengths;  // per batch row; every row's keys are at positions 0..length-1
  bool causal = true;
  int64_t window = 0;
};

DecodeParams<float> cpu_params(const DecodeCase& c, const std::vector<float>& q, std::vector<float>& o) {
  DecodeParams<float> p;
  p.B = c.B, p.Tq = c.Tq, p.H = c.H, p.Hkv = c.Hkv, p.D = c.D;
  p.q = q.data(), p.q_stride_b = c.Tq * c.H * c.D, p.q_stride_t = c.H * c.D, p.q_stride_h = c.D;
  o.assign(size_t(c.B * c.Tq * c.H * c.D), -1.f);
  p.o = o.data();
  p.scale = 1.f / std::sqrt(float(c.D));
  p.causal = c.causal, p.window = c.window;
  return p;
}

cuda::DecodeArgs gpu_args(const DecodeCase& c, const DeviceCopy& q, void* o) {
  cuda::DecodeArgs a;
  a.B = c.B, a.Tq = c.Tq, a.H = c.H, a.Hkv = c.Hkv, a.D = c.D;
  a.q = q.as<float>(), a.q_stride_b = c.Tq * c.H * c.D, a.q_stride_t = c.H * c.D, a.q_stride_h = c.D;
  a.o = static_cast<float*>(o);
  a.scale = 1.f / std::sqrt(float(c.D));
  a.causal = c.causal, a.window = c.window;
  return a;
}

// Runs decode on the GPU with `cache` and returns O.
template <class View>
std::vector<float> run_gpu(const DecodeCase& c, const DeviceCopy& q, const View& cache) {
  const size_t n = size_t(c.B * c.Tq * c.H * c.D);
  std::vector<float> o(n, -1.f);
  DeviceCopy out(o);
  cuda::decode_attention(gpu_args(c, q, out.ptr), cache, kDev);
  cuda::copy_to_host(o.data(), out.ptr, n * sizeof(float), kDev);
  return o;
}

void check_close(const std::vector<float>& got, const std::vector<float>& ref, double tol) {
  REQUIRE(got.size() == ref.size());
  double worst = 0, mag = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    REQUIRE(std::isfinite(got[i]));
    worst = std::max(worst, double(std::fabs(got[i] - ref[i])));
    mag = std::max(mag, double(std::fabs(ref[i])));
  }
  INFO("max abs error " << worst << ", max |ref| " << mag);
  CHECK(worst <= tol * std::max(1.0, mag));
}

std::vector<DecodeCase> dense_cases() {
  return {
      {2, 1, 8, 2, 64, {37, 100}},
      {1, 3, 4, 1, 128, {200}},
      {3, 2, 6, 3, 100, {5, 64, 2}, true, 9},  // sliding window, odd D
      {1, 4, 32, 2, 64, {77}},                 // G * Tq = 64 rows: 8 blocks per KV head
      {2, 2, 4, 4, 256, {19, 40}, false},      // not causal, largest D
      {1, 1, 2, 1, 7, {1}},
  };
}

}  // namespace

TEST_CASE("cuda decode: dense, ring and paged caches match the CPU decode kernel; paged never reads unused slots") {
  for (const DecodeCase& c : dense_cases()) {
    INFO("B " << c.B << " Tq " << c.Tq << " H " << c.H << " Hkv " << c.Hkv << " D " << c.D << " window " << c.window);
    const int64_t S = *std::max_element(c.lengths.begin(), c.lengths.end()) + 3, row = c.Hkv * c.D;
    const size_t kv_n = size_t(c.B * S * row);
    const auto q = randvec(size_t(c.B * c.Tq * c.H * c.D), 1);
    std::vector<float> k = randvec(kv_n, 2), v = randvec(kv_n, 3);
    for (int64_t b = 0; b < c.B; ++b)  // slots past a row's length hold NaN
      for (int64_t s = c.lengths[size_t(b)]; s < S; ++s)
        for (int64_t e = 0; e < row; ++e) k[size_t((b * S + s) * row + e)] = v[size_t((b * S + s) * row + e)] = NAN;
    const std::vector<int64_t>& lengths = c.lengths;

    // CPU dense reference
    DenseKVReader<float> dense;
    dense.k = k.data(), dense.v = v.data(), dense.stride_b = S * row, dense.stride_s = row, dense.stride_h = c.D;
    dense.D = c.D, dense.capacity = S, dense.lengths = lengths.data(), dense.positions_b = lengths.data();
    dense.Hkv = c.Hkv;
    std::vector<float> o_ref;
    decode_attention(cpu_params(c, q, o_ref), dense);

    const DeviceCopy dq(q), dk(k), dv(v), dlen(lengths);
    cuda::DenseCacheView dview;
    dview.k = dk.ptr, dview.v = dv.ptr, dview.stride_b = S * row, dview.stride_s = row, dview.stride_h = c.D;
    dview.capacity = S, dview.lengths = dlen.as<int64_t>(), dview.positions = dlen.as<int64_t>();
    const auto o_dense = run_gpu(c, dq, dview);
    check_close(o_dense, o_ref, 1e-5);

    // ring: row b's keys rotated by `shift` slots inside its S slots
    const int64_t shift = S / 3;
    std::vector<float> kr(kv_n, NAN), vr(kv_n, NAN);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t j = 0; j < c.lengths[size_t(b)]; ++j) {
        const int64_t src = (b * S + j) * row, dst = (b * S + (j + shift) % S) * row;
        std::copy_n(k.begin() + src, row, kr.begin() + dst);
        std::copy_n(v.begin() + src, row, vr.begin() + dst);
      }
    const DeviceCopy dkr(kr), dvr(vr);
    cuda::DenseCacheView rview = dview;
    rview.k = dkr.ptr, rview.v = dvr.ptr, rview.ring_start = shift;
    check_close(run_gpu(c, dq, rview), o_ref, 1e-5);

    // bf16 storage
    std::vector<bf16_bits> kb(kv_n), vb(kv_n);
    for (size_t i = 0; i < kv_n; ++i) kb[i].bits = f32_to_bf16(k[i]), vb[i].bits = f32_to_bf16(v[i]);
    DenseKVReader<float, bf16_bits> dense_bf16;
    dense_bf16.k = kb.data(), dense_bf16.v = vb.data(), dense_bf16.stride_b = S * row, dense_bf16.stride_s = row;
    dense_bf16.stride_h = c.D, dense_bf16.D = c.D, dense_bf16.capacity = S, dense_bf16.lengths = lengths.data();
    dense_bf16.positions_b = lengths.data(), dense_bf16.Hkv = c.Hkv;
    std::vector<float> o_ref_bf16;
    decode_attention(cpu_params(c, q, o_ref_bf16), dense_bf16);
    const DeviceCopy dkb(kb), dvb(vb);
    cuda::DenseCacheView bview = dview;
    bview.type = cuda::ElemType::bf16, bview.k = dkb.ptr, bview.v = dvb.ptr;
    check_close(run_gpu(c, dq, bview), o_ref_bf16, 1e-5);

    // paged: blocks of 16 in a scrambled pool [blocks, Hkv, 16, D]; unused slots and a poison block
    // (the target of every unused table entry) are NaN
    const int64_t bs = 16, max_blocks = (S + bs - 1) / bs;
    const int64_t used = c.B * max_blocks, poison = used;  // block `used` is the poison block
    std::vector<int32_t> perm(static_cast<size_t>(used));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937_64(4));
    std::vector<int32_t> tables(static_cast<size_t>(used), static_cast<int32_t>(poison));
    std::vector<float> kp(size_t((used + 1) * c.Hkv * bs * c.D), NAN), vp(kp.size(), NAN);
    for (int64_t b = 0; b < c.B; ++b) {
      const int64_t len = c.lengths[size_t(b)];
      for (int64_t t = 0; t < (len + bs - 1) / bs; ++t) tables[size_t(b * max_blocks + t)] = perm[size_t(b * max_blocks + t)];
      for (int64_t j = 0; j < len; ++j)
        for (int64_t g = 0; g < c.Hkv; ++g) {
          const int64_t blk = tables[size_t(b * max_blocks + j / bs)];
          const int64_t dst = ((blk * c.Hkv + g) * bs + j % bs) * c.D, src = (b * S + j) * row + g * c.D;
          std::copy_n(k.begin() + src, c.D, kp.begin() + dst);
          std::copy_n(v.begin() + src, c.D, vp.begin() + dst);
        }
    }
    std::vector<const int32_t*> table_rows;
    for (int64_t b = 0; b < c.B; ++b) table_rows.push_back(tables.data() + b * max_blocks);
    PagedKVReader<float> paged;
    paged.k_pool = kp.data(), paged.v_pool = vp.data(), paged.Hkv = c.Hkv, paged.D = c.D, paged.block_shift = 4;
    paged.block_tables = table_rows.data(), paged.lengths = lengths.data();
    std::vector<float> o_ref_paged;
    decode_attention(cpu_params(c, q, o_ref_paged), paged);
    check_close(o_ref_paged, o_ref, 1e-6);  // the CPU paths agree

    const DeviceCopy dkp(kp), dvp(vp), dtab(tables);
    cuda::PagedCacheView pview;
    pview.k_pool = dkp.ptr, pview.v_pool = dvp.ptr, pview.block_size = bs, pview.block_tables = dtab.as<int32_t>();
    pview.max_blocks = max_blocks, pview.lengths = dlen.as<int64_t>();
    const auto o_paged = run_gpu(c, dq, pview);  // check_close requires finite outputs
    check_close(o_paged, o_ref_paged, 1e-5);
    check_close(o_paged, o_dense, 1e-6);  // same keys in the same order: the contiguous result
  }
}

TEST_CASE("cuda decode: int8 / int4 / fp8 caches (per token and KIVI keys, f32 window) match the CPU decode") {
  struct QCase {
    QuantFormat format;
    int64_t group, key_block;
  };
  const DecodeCase c{2, 2, 8, 2, 64, {}};
  for (const QCase& qc : {QCase{QuantFormat::int8, 64, 0}, QCase{QuantFormat::fp8_e4m3, 64, 0},
                          QCase{QuantFormat::int4, 32, 0}, QCase{QuantFormat::int8, 64, 32},
                          QCase{QuantFormat::fp8_e4m3, 64, 32}}) {
    INFO("format " << quant_format_name(qc.format) << " group " << qc.group << " key_block " << qc.key_block);
    const int64_t D = c.D, Hkv = c.Hkv, BG = c.B * Hkv;
    const int64_t capacity = 96, n_quant = 64, n_total = 75, window_cap = 16;
    const int64_t code_row = quant_code_bytes(qc.format, D), groups = (D + qc.group - 1) / qc.group;
    const auto kx = randvec(size_t(BG * n_total * D), 5), vx = randvec(size_t(BG * n_total * D), 6);
    std::vector<uint8_t> k_codes(size_t(BG * capacity * code_row)), v_codes(k_codes.size());
    const int64_t k_scale_n = qc.key_block ? BG * (capacity / qc.key_block) * D : BG * capacity * groups;
    std::vector<uint16_t> k_scales(static_cast<size_t>(k_scale_n)), v_scales(static_cast<size_t>(BG * capacity * groups));
    std::vector<float> k_window(size_t(BG * window_cap * D), NAN), v_window(k_window.size(), NAN);
    for (int64_t bg = 0; bg < BG; ++bg) {
      const float* kr = kx.data() + bg * n_total * D;
      const float* vr = vx.data() + bg * n_total * D;
      for (int64_t j = 0; j < n_quant; ++j) {
        uint16_t* vs = v_scales.data() + (bg * capacity + j) * groups;
        quant_scales(qc.format, vr + j * D, D, qc.group, vs);
        quantize(qc.format, vr + j * D, D, qc.group, vs, v_codes.data() + (bg * capacity + j) * code_row);
        if (qc.key_block > 0) {
          uint16_t* ks = k_scales.data() + (bg * (capacity / qc.key_block) + j / qc.key_block) * D;
          if (j % qc.key_block == 0) channel_scales(qc.format, kr + j * D, qc.key_block, D, D, ks);
          quantize(qc.format, kr + j * D, D, 1, ks, k_codes.data() + (bg * capacity + j) * code_row);
        } else {
          uint16_t* ks = k_scales.data() + (bg * capacity + j) * groups;
          quant_scales(qc.format, kr + j * D, D, qc.group, ks);
          quantize(qc.format, kr + j * D, D, qc.group, ks, k_codes.data() + (bg * capacity + j) * code_row);
        }
      }
      for (int64_t j = n_quant; j < n_total; ++j) {
        std::copy_n(kr + j * D, D, k_window.begin() + (bg * window_cap + j % window_cap) * D);
        std::copy_n(vr + j * D, D, v_window.begin() + (bg * window_cap + j % window_cap) * D);
      }
    }
    QuantKVReader r;
    r.format = qc.format, r.Hkv = Hkv, r.D = D, r.capacity = capacity, r.code_row = code_row;
    r.group = qc.group, r.groups = groups, r.key_block = qc.key_block;
    r.k_codes = k_codes.data(), r.v_codes = v_codes.data(), r.k_scales = k_scales.data();
    r.v_scales = v_scales.data(), r.k_window = k_window.data(), r.v_window = v_window.data();
    r.window_cap = window_cap, r.n_quant = n_quant, r.n_total = n_total;
    const auto q = randvec(size_t(c.B * c.Tq * c.H * D), 7);
    std::vector<float> o_ref;
    decode_attention(cpu_params(c, q, o_ref), r);

    const DeviceCopy dq(q), dkc(k_codes), dvc(v_codes), dks(k_scales), dvs(v_scales), dkw(k_window), dvw(v_window);
    cuda::QuantCacheView view;
    view.format = qc.format, view.capacity = capacity, view.code_row = code_row, view.group = qc.group;
    view.groups = groups, view.key_block = qc.key_block;
    view.k_codes = dkc.as<uint8_t>(), view.v_codes = dvc.as<uint8_t>(), view.k_scales = dks.as<uint16_t>();
    view.v_scales = dvs.as<uint16_t>(), view.k_window = dkw.as<float>(), view.v_window = dvw.as<float>();
    view.window_cap = window_cap, view.n_quant = n_quant, view.n_total = n_total;
    check_close(run_gpu(c, dq, view), o_ref, 1e-5);
  }
}
#endif  // ATTNLAB_WITH_CUDA
