// Attention on the GPU: FlashAttention-2 forward/backward and the KV-cache decode kernel.
// Plain C++ (no CUDA types), so tests, tools and tensor code include it with the host compiler.
// The functions exist only in builds with CUDA (ATTNLAB_WITH_CUDA); callers guard their use.
//
// Every pointer below is a *device* pointer (kernels/cuda/runtime.h allocates and copies); every
// call is queued on the device's stream (kernels/cuda/check.cuh current_stream) and returns without
// waiting. The design, the kernel layouts and how to run the GPU tests: docs/cuda_attention.md.
//
// Conventions are the CPU ones (kernels/cpu/attention_params.h), restated here:
//   Q    [B, Sq, H,   D]   element strides (q_stride_b, q_stride_s, q_stride_h), D contiguous
//   K, V [B, Sk, Hkv, D]   element strides (k_stride_*, v_stride_*), D contiguous
//   O    [B, Sq, H,   D]   contiguous, element type of Q/K/V
//   LSE  [B, H,  Sq]       contiguous, f32 (natural log; -inf for a query that sees no key)
//   s_ij = scale * <q_i, k_j> + bias(b, h, i, j) (bias optional), masked (-inf) when causal and
//   j > i + (Sk - Sq) (bottom-right aligned) or key_padding_mask[b, j] != 0; query head h reads KV
//   head h / (H / Hkv); a fully masked row gets O = 0, LSE = -inf.
// Dropout on the probabilities uses the CPU's counter-based mask (kernels/cpu/attention_params.h
// dropout_keep), so both devices drop the same entries for the same seed; the backward regenerates it.
// A key padding mask or a bias is served by the reference and SIMT kernels (every variant falls back
// to SIMT for them); the tensor-core kernels take causal masking only.
#pragma once
#include <cstdint>

#include "kernels/cpu/kv_quant.h"

namespace attnlab::kernels::cuda {

// Element type of Q, K, V, O and of the gradients. Accumulation is always f32.
enum class ElemType { f32, bf16, f16 };
const char* elem_type_name(ElemType t);  // "f32", "bf16", "f16"
int elem_size(ElemType t);               // bytes

// reference: the plain kernels (one thread block per query row or key row, f32 maths), the oracle
//            the optimized kernels are checked against on the GPU (as llm.c's dev/cuda versions).
// optimized: FlashAttention-2 tiles, the readable tensor-core tier: bf16/f16 with D = 64 or 128 on
//            mma.sync (64-row blocks, synchronous copies), everything else through the SIMT tiled kernels.
// fast:      the FA2-class tier (cp.async pipelines, swizzled shared memory, ldmatrix, 128-row blocks of
//            8 warps, dQ by atomics or a tensor-core pass) for bf16/f16, D = 64 or 128, aligned rows,
//            scale > 0, no padding mask or bias; anything else runs as `optimized`. Not the default:
//            written against a lane-level emulation (tests/kernels/cuda/fast_kernels_sim.py), not yet
//            measured on a GPU (docs/cuda_attention.md).
enum class Variant { reference, optimized, fast };
const char* variant_name(Variant v);

struct FlashArgs {
  ElemType dtype = ElemType::f32;
  int64_t B = 0, Sq = 0, Sk = 0, H = 0, Hkv = 0, D = 0;  // D <= 256
  const void* q = nullptr;
  int64_t q_stride_b = 0, q_stride_s = 0, q_stride_h = 0;
  const void* k = nullptr;
  int64_t k_stride_b = 0, k_stride_s = 0, k_stride_h = 0;
  const void* v = nullptr;
  int64_t v_stride_b = 0, v_stride_s = 0, v_stride_h = 0;
  float scale = 0;  // usually 1 / sqrt(D)
  bool causal = false;
  double dropout_p = 0;        // in [0, 1): P_ij kept with probability 1 - p, then scaled by 1 / (1 - p)
  uint64_t dropout_seed = 0;   // the same seed for forward and backward
  const uint8_t* key_padding_mask = nullptr;  // [B, Sk] device, contiguous, nonzero = ignore that key
  const void* bias = nullptr;                 // additive, logical [B, H, Sq, Sk], element type dtype,
  int64_t bias_stride_b = 0, bias_stride_h = 0, bias_stride_q = 0, bias_stride_k = 0;  // 0 broadcasts
};

// Args for contiguous Q [B, Sq, H, D], K/V [B, Sk, Hkv, D], scale = 1/sqrt(D), no mask.
FlashArgs flash_args(ElemType dtype, int64_t B, int64_t Sq, int64_t Sk, int64_t H, int64_t Hkv, int64_t D,
                     const void* q, const void* k, const void* v);

// Throws attnlab::Error (prefixed by `op`) on bad shapes, D > 256, H % Hkv != 0, null pointers,
// a non-finite scale or dropout_p outside [0, 1).
void check_flash_args(const FlashArgs& a, const char* op);

// Forward. o: [B, Sq, H, D] contiguous (dtype), lse: [B, H, Sq] f32; both overwritten.
void flash_forward(const FlashArgs& a, void* o, float* lse, int device, Variant variant = Variant::optimized);

// The attention weights P_ij = exp(s_ij - LSE_i) (masked, before dropout; 0 on rows that see no key)
// from the forward's LSE: weights [B, H, Sq, Sk] contiguous (dtype), overwritten. A plain kernel (one
// block per query row), what return_weights costs on the GPU: the flash kernels never form P whole.
void flash_weights(const FlashArgs& a, const float* lse, void* weights, int device);

// Backward. o, dout: [B, Sq, H, D] contiguous (dtype); lse from flash_forward with the same args.
// dq: [B, Sq, H, D], dk, dv: [B, Sk, Hkv, D], contiguous (dtype), overwritten; dK/dV are summed over
// the H / Hkv query heads of a group.
// optimized, fast: Delta = rowsum(dO∘O) first, then one kernel per (KV block, KV head, batch) that
//   recomputes P from LSE and accumulates dK/dV on chip over the whole group; dQ is added into an
//   f32 buffer with atomicAdd (summation order varies run to run), or — deterministic = true — by a
//   second kernel parallel over query blocks that owns each dQ row (bit-identical across runs).
// reference: always deterministic. Scratch (f32 dQ and Delta) comes from the caching allocator.
void flash_backward(const FlashArgs& a, const void* o, const void* dout, const float* lse, void* dq, void* dk,
                    void* dv, int device, Variant variant = Variant::optimized, bool deterministic = false);

// ---- decode: a few new queries against a KV cache ----------------------------------------------------
// The GPU counterpart of kernels/cpu/decode_attention.h (same positions and visibility rules):
//   q [B, Tq, H, D] f32, element strides q_stride_b/t/h, D contiguous; o [B, Tq, H, D] f32 contiguous.
//   The Tq queries of row b sit at positions position(b) - Tq .. position(b) - 1; a query at position
//   p sees a held key at position kp when (not causal or kp <= p) and (window == 0 or kp > p - window).
//   A query that sees no key gets O = 0.
// One thread block per (batch row, KV head, chunk of at most 8 query rows of the group): the G = H / Hkv
// heads × Tq queries share every K/V row the block loads (and dequantizes, in registers).
struct DecodeArgs {
  int64_t B = 0, Tq = 0, H = 0, Hkv = 0, D = 0;  // D <= 256
  const float* q = nullptr;
  int64_t q_stride_b = 0, q_stride_t = 0, q_stride_h = 0;
  float* o = nullptr;
  float scale = 0;
  bool causal = true;
  int64_t window = 0;  // 0: unlimited
};

// Dense cache, as DenseKVReader: row (b, slot s, KV head g) at base + b*stride_b + s*stride_s +
// g*stride_h elements; logical key j of row b is in slot (ring_start + j) % capacity and at position
// position(b) - length(b) + j.
struct DenseCacheView {
  ElemType type = ElemType::f32;  // storage (the queries and outputs are f32 whatever it is)
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t stride_b = 0, stride_s = 0, stride_h = 0;
  int64_t capacity = 0, ring_start = 0;
  const int64_t* lengths = nullptr;    // [B] device
  const int64_t* positions = nullptr;  // [B] device: positions appended to each row so far
};

// Paged cache, as PagedKVReader (vLLM): pools [num_blocks, Hkv, block_size, D]; key j of row b is in
// block block_tables[b * max_blocks + j / block_size] at offset j % block_size and at position j;
// position(b) = length(b). block_size is a power of two. Only the first ceil(length(b) / block_size)
// table entries of a row are read, and only the first length(b) keys.
struct PagedCacheView {
  ElemType type = ElemType::f32;
  const void* k_pool = nullptr;
  const void* v_pool = nullptr;
  int64_t block_size = 16;
  const int32_t* block_tables = nullptr;  // [B, max_blocks] device
  int64_t max_blocks = 0;
  const int64_t* lengths = nullptr;       // [B] device
};

// Quantized cache, as QuantKVReader (kernels/cpu/kv_quant.h formats: int8, int4, fp8 e4m3 with f16
// scales; keys per token or per channel over blocks of key_block positions), the newest positions in an
// f32 ring window. Every row holds positions 0 .. n_total - 1; key j is at position j.
struct QuantCacheView {
  QuantFormat format = QuantFormat::int8;
  int64_t capacity = 0, code_row = 0, group = 0, groups = 0;
  int64_t key_block = 0;  // 0: keys per token like values; > 0: per channel over blocks
  const uint8_t* k_codes = nullptr;    // [B, Hkv, capacity, code_row]
  const uint8_t* v_codes = nullptr;
  const uint16_t* k_scales = nullptr;  // [B, Hkv, capacity, groups] or [B, Hkv, capacity / key_block, D]
  const uint16_t* v_scales = nullptr;  // [B, Hkv, capacity, groups]
  const float* k_window = nullptr;     // [B, Hkv, window_cap, D]
  const float* v_window = nullptr;
  int64_t window_cap = 0, n_quant = 0, n_total = 0;
};

void decode_attention(const DecodeArgs& a, const DenseCacheView& cache, int device);
void decode_attention(const DecodeArgs& a, const PagedCacheView& cache, int device);
void decode_attention(const DecodeArgs& a, const QuantCacheView& cache, int device);

}  // namespace attnlab::kernels::cuda
