// Decode attention on the GPU (attention.h decode_attention): a few new queries against a KV cache,
// the counterpart of kernels/cpu/decode_attention.h and of vLLM's paged-attention kernel.
//
// Grid (Hkv * chunks, B), 128 threads = 4 warps. A block takes batch row b, KV head g and up to 8 of
// the G * Tq query rows that read g (row r: query t = r / G, head g * G + r % G), so every K/V row
// it loads serves all of them. Warp w walks keys w, w + 4, ...; lane l holds dims l, l + 32, ... of
// the key (and then value) row in registers — decoded there from f32/bf16/f16 or int8/int4/fp8 codes
// with their f16 scale, exactly as kernels/cpu/kv_quant.h dequantize — so one key costs one
// coalesced row read and a warp-sum per query row. Each warp keeps an online softmax (m, l, O) per
// row; the 4 warps' partial results are merged through shared memory at the end:
//   M = max_w m_w,   O = sum_w e^(m_w - M) O_w / sum_w e^(m_w - M) l_w.
// Readers (DenseRows, PagedRows, QuantRows) follow the CPU readers; the paged reader touches table
// entries and pool rows of keys < length(b) only.
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/flash_attention_common.cuh"
#include "kernels/cuda/runtime.h"
#include "kernels/error.h"

namespace attnlab::kernels::cuda {

namespace detail {

namespace {

constexpr int kThreads = 128, kWarps = kThreads / 32, kMaxRows = 8, kMaxD = 256, kDimsPerLane = kMaxD / 32;

using Lane = float[kDimsPerLane];

struct Decode {
  int B, Tq, H, Hkv, D, G;
  const float* q;
  int64_t q_sb, q_st, q_sh;
  float* o;
  float scale;
  bool causal;
  int64_t window;
};

template <class S>
__device__ __forceinline__ void load_lane(const S* row, int D, Lane& x) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int u = 0; u < kDimsPerLane; ++u) {
    const int d = lane + 32 * u;
    x[u] = d < D ? to_f32(row[d]) : 0.f;
  }
}

template <class S>
struct DenseRows {
  const S *k, *v;
  int64_t sb, ss, sh, capacity, ring_start;
  const int64_t *lengths, *positions;
  int D;
  __device__ int64_t length(int b) const { return lengths[b]; }
  __device__ int64_t position(int b) const { return positions[b]; }
  __device__ int64_t key_position(int b, int64_t j) const { return positions[b] - lengths[b] + j; }
  __device__ const S* row(const S* base, int b, int g, int64_t j) const {
    int64_t s = ring_start + j;
    if (s >= capacity) s -= capacity;
    return base + b * sb + s * ss + g * sh;
  }
  __device__ void key(int b, int g, int64_t j, Lane& x) const { load_lane(row(k, b, g, j), D, x); }
  __device__ void value(int b, int g, int64_t j, Lane& x) const { load_lane(row(v, b, g, j), D, x); }
};

template <class S>
struct PagedRows {
  const S *k_pool, *v_pool;
  int Hkv, D, shift;
  const int32_t* tables;
  int64_t max_blocks;
  const int64_t* lengths;
  __device__ int64_t length(int b) const { return lengths[b]; }
  __device__ int64_t position(int b) const { return lengths[b]; }
  __device__ int64_t key_position(int, int64_t j) const { return j; }
  __device__ const S* row(const S* pool, int b, int g, int64_t j) const {
    const int64_t block = tables[b * max_blocks + (j >> shift)];
    const int64_t mask = (int64_t(1) << shift) - 1;
    return pool + (((block * Hkv + g) << shift) + (j & mask)) * D;
  }
  __device__ void key(int b, int g, int64_t j, Lane& x) const { load_lane(row(k_pool, b, g, j), D, x); }
  __device__ void value(int b, int g, int64_t j, Lane& x) const { load_lane(row(v_pool, b, g, j), D, x); }
};

// OCP FP8 E4M3FN -> f32, exact: S.EEEE.MMM, bias 7, subnormals m * 2^-9, S.1111.111 NaN.
__device__ __forceinline__ float fp8_e4m3_to_f32(uint8_t b) {
  const int field = (b >> 3) & 0xF, m = b & 7;
  float v;
  if (field == 15 && m == 7) v = __int_as_float(0x7fc00000);
  else if (field == 0) v = ldexpf(float(m), -9);
  else v = ldexpf(1.f + float(m) / 8.f, field - 7);
  return (b & 0x80) ? -v : v;
}
__device__ __forceinline__ float f16_bits_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }

struct QuantRows {
  QuantFormat format;
  int Hkv, D;
  int64_t capacity, code_row, group, groups, key_block;
  const uint8_t *k_codes, *v_codes;
  const uint16_t *k_scales, *v_scales;
  const float *k_window, *v_window;
  int64_t window_cap, n_quant, n_total;
  __device__ int64_t length(int) const { return n_total; }
  __device__ int64_t position(int) const { return n_total; }
  __device__ int64_t key_position(int, int64_t j) const { return j; }
  // out[d] = decode(code d) * scales[d / grp], as kv_quant.h dequantize.
  __device__ void dequantize(const uint8_t* codes, const uint16_t* scales, int64_t grp, Lane& x) const {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int u = 0; u < kDimsPerLane; ++u) {
      const int d = lane + 32 * u;
      float val = 0.f;
      if (d < D) {
        const float s = f16_bits_to_f32(scales[d / grp]);
        if (format == QuantFormat::int8) {
          val = float(int8_t(codes[d])) * s;
        } else if (format == QuantFormat::int4) {
          const int nib = (d & 1) ? codes[d / 2] >> 4 : codes[d / 2] & 0x0F;
          val = float(nib - 8) * s;
        } else {
          val = fp8_e4m3_to_f32(codes[d]) * s;
        }
      }
      x[u] = val;
    }
  }
  __device__ void key(int b, int g, int64_t j, Lane& x) const {
    const int64_t bg = int64_t(b) * Hkv + g;
    if (j >= n_quant) return load_lane(k_window + (bg * window_cap + j % window_cap) * D, D, x);
    const uint8_t* codes = k_codes + (bg * capacity + j) * code_row;
    if (key_block > 0)
      dequantize(codes, k_scales + (bg * (capacity / key_block) + j / key_block) * D, 1, x);
    else
      dequantize(codes, k_scales + (bg * capacity + j) * groups, group, x);
  }
  __device__ void value(int b, int g, int64_t j, Lane& x) const {
    const int64_t bg = int64_t(b) * Hkv + g;
    if (j >= n_quant) return load_lane(v_window + (bg * window_cap + j % window_cap) * D, D, x);
    dequantize(v_codes + (bg * capacity + j) * code_row, v_scales + (bg * capacity + j) * groups, group, x);
  }
};

// Shared memory: Q rows [8][D] (pre-scaled), per-warp partial O [4][8][D], m and l [4][8].
size_t decode_smem(int D) { return (size_t(kMaxRows) * D * (1 + kWarps) + 2 * kWarps * kMaxRows) * sizeof(float); }

template <class Reader>
__global__ void __launch_bounds__(kThreads) decode_kernel(Decode a, Reader rd) {
  extern __shared__ float sm[];
  const int D = a.D;
  float* Qs = sm;
  float* Os = Qs + kMaxRows * D;
  float* Ms = Os + kWarps * kMaxRows * D;
  float* Ls = Ms + kWarps * kMaxRows;
  const int R = a.G * a.Tq, chunks = (R + kMaxRows - 1) / kMaxRows;
  const int g = blockIdx.x / chunks, r0 = (blockIdx.x % chunks) * kMaxRows, b = blockIdx.y;
  const int nrows = min(kMaxRows, R - r0);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  auto head = [&](int r) { return g * a.G + (r0 + r) % a.G; };
  auto query = [&](int r) { return (r0 + r) / a.G; };

  for (int e = tid; e < nrows * D; e += kThreads) {
    const int r = e / D, d = e % D;
    Qs[e] = a.scale * a.q[b * a.q_sb + query(r) * a.q_st + head(r) * a.q_sh + d];
  }
  __syncthreads();

  const int64_t L = rd.length(b), qpos0 = rd.position(b) - a.Tq;  // query t sits at qpos0 + t
  float m[kMaxRows], l[kMaxRows], acc[kMaxRows][kDimsPerLane];
  reset_softmax_rows(m, l, acc);

  for (int64_t j = warp; j < L; j += kWarps) {
    const int64_t kp = rd.key_position(b, j);
    bool vis[kMaxRows], any = false;
#pragma unroll
    for (int r = 0; r < kMaxRows; ++r) {
      const int64_t p = qpos0 + query(r);
      vis[r] = r < nrows && (!a.causal || kp <= p) && (a.window == 0 || kp > p - a.window);
      any |= vis[r];
    }
    if (!any) continue;  // uniform across the warp
    Lane kx, vx;
    rd.key(b, g, j, kx);
    rd.value(b, g, j, vx);
#pragma unroll
    for (int r = 0; r < kMaxRows; ++r) {
      if (!vis[r]) continue;
      float part = 0.f;
#pragma unroll
      for (int u = 0; u < kDimsPerLane; ++u) {
        const int d = lane + 32 * u;
        if (d < D) part += Qs[r * D + d] * kx[u];
      }
      const float s = warp_sum(part);
      const float m_new = fmaxf(m[r], s);
      const float alpha = expf(m[r] - m_new), p = expf(s - m_new);  // m[r] = -inf -> alpha = 0
      l[r] = l[r] * alpha + p;
#pragma unroll
      for (int u = 0; u < kDimsPerLane; ++u) acc[r][u] = acc[r][u] * alpha + p * vx[u];
      m[r] = m_new;
    }
  }

  // Merge the warps' partial softmaxes.
#pragma unroll
  for (int r = 0; r < kMaxRows; ++r) {
    if (r >= nrows) continue;
    if (lane == 0) Ms[warp * kMaxRows + r] = m[r], Ls[warp * kMaxRows + r] = l[r];
#pragma unroll
    for (int u = 0; u < kDimsPerLane; ++u) {
      const int d = lane + 32 * u;
      if (d < D) Os[(warp * kMaxRows + r) * D + d] = acc[r][u];
    }
  }
  __syncthreads();
  for (int e = tid; e < nrows * D; e += kThreads) {
    const int r = e / D, d = e % D;
    float M = kNegInf;
    for (int w = 0; w < kWarps; ++w) M = fmaxf(M, Ms[w * kMaxRows + r]);
    float num = 0.f, den = 0.f;
    if (M != kNegInf)
      for (int w = 0; w < kWarps; ++w) {
        const float mw = Ms[w * kMaxRows + r];
        if (mw == kNegInf) continue;
        const float f = expf(mw - M);
        num += f * Os[(w * kMaxRows + r) * D + d];
        den += f * Ls[w * kMaxRows + r];
      }
    a.o[((int64_t(b) * a.Tq + query(r)) * a.H + head(r)) * D + d] = den > 0.f ? num / den : 0.f;
  }
}

Decode make_decode(const DecodeArgs& a) {
  if (a.B < 1 || a.Tq < 1 || a.H < 1 || a.Hkv < 1 || a.D < 1 || a.H % a.Hkv != 0)
    throw Error(cat("decode_attention: bad shape B=", a.B, " Tq=", a.Tq, " H=", a.H, " Hkv=", a.Hkv, " D=", a.D));
  if (a.D > kMaxD) throw Error(cat("decode_attention: head dim ", a.D, " > ", kMaxD, " is not supported on CUDA"));
  if (a.B > 65535) throw Error("decode_attention: B > 65535");
  if (!a.q || !a.o) throw Error("decode_attention: null q or o");
  if (a.window < 0) throw Error("decode_attention: negative window");
  Decode d;
  d.B = int(a.B), d.Tq = int(a.Tq), d.H = int(a.H), d.Hkv = int(a.Hkv), d.D = int(a.D), d.G = int(a.H / a.Hkv);
  d.q = a.q, d.q_sb = a.q_stride_b, d.q_st = a.q_stride_t, d.q_sh = a.q_stride_h;
  d.o = a.o, d.scale = a.scale, d.causal = a.causal, d.window = a.window;
  return d;
}

template <class Reader>
void launch(const DecodeArgs& args, const Reader& rd, int device) {
  const Decode a = make_decode(args);
  set_device(device);
  const unsigned chunks = ceil_div(int64_t(a.G) * a.Tq, kMaxRows);
  decode_kernel<Reader><<<dim3(unsigned(a.Hkv) * chunks, a.B), kThreads, decode_smem(a.D), current_stream(device)>>>(a, rd);
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace

}  // namespace detail

void decode_attention(const DecodeArgs& a, const DenseCacheView& c, int device) {
  if (!c.k || !c.v || !c.lengths || !c.positions) throw Error("decode_attention: dense cache with null pointers");
  detail::with_elem(c.type, [&](auto zero) {
    using S = decltype(zero);
    detail::DenseRows<S> rd{static_cast<const S*>(c.k), static_cast<const S*>(c.v), c.stride_b, c.stride_s,
                            c.stride_h, c.capacity, c.ring_start, c.lengths, c.positions, int(a.D)};
    detail::launch(a, rd, device);
  });
}

void decode_attention(const DecodeArgs& a, const PagedCacheView& c, int device) {
  if (!c.k_pool || !c.v_pool || !c.block_tables || !c.lengths) throw Error("decode_attention: paged cache with null pointers");
  if (c.block_size < 1 || (c.block_size & (c.block_size - 1)) != 0)
    throw Error(cat("decode_attention: block_size ", c.block_size, " is not a power of two"));
  int shift = 0;
  while ((int64_t(1) << shift) < c.block_size) ++shift;
  detail::with_elem(c.type, [&](auto zero) {
    using S = decltype(zero);
    detail::PagedRows<S> rd{static_cast<const S*>(c.k_pool), static_cast<const S*>(c.v_pool), int(a.Hkv), int(a.D),
                            shift, c.block_tables, c.max_blocks, c.lengths};
    detail::launch(a, rd, device);
  });
}

void decode_attention(const DecodeArgs& a, const QuantCacheView& c, int device) {
  if (c.n_quant > 0 && (!c.k_codes || !c.v_codes || !c.k_scales || !c.v_scales))
    throw Error("decode_attention: quantized cache with null pointers");
  if (c.n_total > c.n_quant && (!c.k_window || !c.v_window || c.window_cap < 1))
    throw Error("decode_attention: quantized cache holds window positions but no window");
  if (c.group < 1 || (c.key_block > 0 && c.capacity % c.key_block != 0))
    throw Error("decode_attention: quantized cache with a bad group or key block");
  detail::QuantRows rd{c.format, int(a.Hkv), int(a.D), c.capacity, c.code_row, c.group, c.groups, c.key_block,
                       c.k_codes, c.v_codes, c.k_scales, c.v_scales, c.k_window, c.v_window, c.window_cap,
                       c.n_quant, c.n_total};
  detail::launch(a, rd, device);
}

}  // namespace attnlab::kernels::cuda
