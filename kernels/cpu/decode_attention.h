// Attention of a few new queries over a KV cache, for incremental decoding (the CPU counterpart of
// vLLM's paged-attention kernel). One loop serves every cache layout: the cache is described by a
// *reader* that hands the kernel one key or value row at a time — a pointer straight into the cache
// when the row is stored in the compute type, or the row decoded into a small scratch buffer
// (bf16/f16 storage, int8/int4/fp8 codes). Nothing is gathered into a contiguous copy and nothing of
// size [length, D] is ever dequantized at once.
//
//   q      [B, Tq, H, D]   the queries of the Tq newest positions (already appended to the cache);
//                          element strides q_stride_b/t/h, D contiguous
//   o      [B, Tq, H, D]   contiguous, overwritten
//   probs  [B, H, Tq, probs_len]  optional, contiguous, overwritten: the softmax probabilities over the
//                          held keys (zeros past a row's length), for analysis and for caches that
//                          score positions (selective retention)
//
// Positions. A cache knows position(b), the number of positions appended to batch row b so far, and the
// absolute position of every key it holds (key_position). The Tq queries sit at positions
// position(b) - Tq .. position(b) - 1. Query at position p sees a held key at position kp when
//     causal:      kp <= p
//     window > 0:  kp > p - window          (sliding-window attention)
// Held keys must be in increasing position order (all our caches keep temporal order), so the loop
// stops at the first key beyond the last query. A query that sees no key gets O = 0.
//
// GQA: query head h reads KV head h / (H / Hkv); the H / Hkv query heads of a group (and all Tq
// queries of a task) share each key/value row load. Threads: OpenMP over (b, KV head, query chunk);
// each output element is written by one task, so results do not depend on the thread count.
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/kv_quant.h"

namespace attnlab::kernels {

template <class T>
struct DecodeParams {
  int64_t B = 0, Tq = 0, H = 0, Hkv = 0, D = 0;
  const T* q = nullptr;
  int64_t q_stride_b = 0, q_stride_t = 0, q_stride_h = 0;
  T* o = nullptr;
  T* probs = nullptr;      // optional
  int64_t probs_len = 0;   // >= every length(b) when probs is set
  T scale = 0;
  bool causal = true;
  int64_t window = 0;      // 0: unlimited
};

// ---- readers ------------------------------------------------------------------------------------------
// Every reader provides (inline, const):
//   int64_t length(b)                  keys held for batch row b
//   int64_t position(b)                positions appended to row b so far
//   int64_t key_position(b, g, j)      absolute position of held key j of KV head g
//   const T* key(b, g, j, T* scratch)  its D values: a pointer into the cache, or decoded into scratch
//   const T* value(b, g, j, T* scratch)
//   static constexpr bool kStableRows  true when key/value never use the scratch buffer (the returned
//                                      pointers stay valid for the whole call)

// Storage tags for 16-bit float caches.
struct bf16_bits { uint16_t bits; };
struct f16_bits { uint16_t bits; };
inline float to_float(bf16_bits x) { return bf16_to_f32(x.bits); }
inline float to_float(f16_bits x) { return f16_to_f32(x.bits); }

// Dense storage: row (b, slot s, KV head g) at k + b*stride_b + s*stride_s + g*stride_h (elements of S),
// for a contiguous [B, S, Hkv, D] cache, a head-major [B, Hkv, S, D] one, or a ring buffer.
//   Logical key j of row b lives in slot (ring_start + j) % capacity (ring_start = 0: no ring).
//   Its position is positions[(b * Hkv + g) * pos_stride + slot] when `positions` is set (caches that
//   evict arbitrary keys), else position(b) - length(b) + j (consecutive positions).
template <class T, class S = T>
struct DenseKVReader {
  const S* k = nullptr;
  const S* v = nullptr;
  int64_t stride_b = 0, stride_s = 0, stride_h = 0, D = 0;
  int64_t capacity = 0, ring_start = 0;
  const int64_t* lengths = nullptr;    // [B]
  const int64_t* positions_b = nullptr;  // [B] positions appended per row
  const int64_t* positions = nullptr;  // optional [B, Hkv, pos_stride] key positions per slot
  int64_t pos_stride = 0, Hkv = 1;
  static constexpr bool kStableRows = std::is_same_v<S, T>;

  int64_t length(int64_t b) const { return lengths[b]; }
  int64_t position(int64_t b) const { return positions_b[b]; }
  int64_t slot(int64_t j) const {
    const int64_t s = ring_start + j;
    return s >= capacity ? s - capacity : s;
  }
  int64_t key_position(int64_t b, int64_t g, int64_t j) const {
    return positions ? positions[(b * Hkv + g) * pos_stride + slot(j)] : positions_b[b] - lengths[b] + j;
  }
  const T* row(const S* base, int64_t b, int64_t g, int64_t j, T* scratch) const {
    const S* r = base + b * stride_b + slot(j) * stride_s + g * stride_h;
    if constexpr (std::is_same_v<S, T>) {
      return r;
    } else {
      for (int64_t d = 0; d < D; ++d) scratch[d] = T(to_float(r[d]));
      return scratch;
    }
  }
  const T* key(int64_t b, int64_t g, int64_t j, T* scratch) const { return row(k, b, g, j, scratch); }
  const T* value(int64_t b, int64_t g, int64_t j, T* scratch) const { return row(v, b, g, j, scratch); }
};

// Attention sinks (StreamingLLM) before a window of dense storage: held key j < n_sinks is sink j, a
// row of sink_k/sink_v [B, n_sinks, Hkv, D] in the compute type (the cache has already rotated it to
// the position it is attended at, sink_pos0 + j); keys j >= n_sinks are the window's keys
// j - n_sinks of `ring`, consecutive positions ending at position(b) - 1. Sink positions must come
// before the window's (sink_pos0 + n_sinks <= the window's first position).
template <class T, class S = T>
struct SinkKVReader {
  DenseKVReader<T, S> ring;
  const T* sink_k = nullptr;
  const T* sink_v = nullptr;
  int64_t n_sinks = 0, sink_pos0 = 0;
  static constexpr bool kStableRows = DenseKVReader<T, S>::kStableRows;

  int64_t length(int64_t b) const { return n_sinks + ring.length(b); }
  int64_t position(int64_t b) const { return ring.position(b); }
  int64_t key_position(int64_t b, int64_t g, int64_t j) const {
    return j < n_sinks ? sink_pos0 + j : ring.key_position(b, g, j - n_sinks);
  }
  const T* sink_row(const T* base, int64_t b, int64_t g, int64_t j) const {
    return base + ((b * n_sinks + j) * ring.Hkv + g) * ring.D;
  }
  const T* key(int64_t b, int64_t g, int64_t j, T* scratch) const {
    return j < n_sinks ? sink_row(sink_k, b, g, j) : ring.key(b, g, j - n_sinks, scratch);
  }
  const T* value(int64_t b, int64_t g, int64_t j, T* scratch) const {
    return j < n_sinks ? sink_row(sink_v, b, g, j) : ring.value(b, g, j - n_sinks, scratch);
  }
};

// Paged storage (vLLM's PagedAttention): a pool of blocks [num_blocks, Hkv, block_size, D]; key j of
// row b lives in block block_tables[b][j / block_size] at offset j % block_size. block_size is a power
// of two (block_shift = log2). Positions are consecutive: key j is at position j.
template <class T>
struct PagedKVReader {
  const T* k_pool = nullptr;
  const T* v_pool = nullptr;
  int64_t Hkv = 0, D = 0, block_shift = 4;
  const int32_t* const* block_tables = nullptr;  // [B] pointers to each row's table
  const int64_t* lengths = nullptr;               // [B]
  static constexpr bool kStableRows = true;

  int64_t length(int64_t b) const { return lengths[b]; }
  int64_t position(int64_t b) const { return lengths[b]; }
  int64_t key_position(int64_t, int64_t, int64_t j) const { return j; }
  const T* row(const T* pool, int64_t b, int64_t g, int64_t j) const {
    const int64_t block = block_tables[b][j >> block_shift];
    const int64_t bs = int64_t(1) << block_shift;
    return pool + ((block * Hkv + g) * bs + (j & (bs - 1))) * D;
  }
  const T* key(int64_t b, int64_t g, int64_t j, T*) const { return row(k_pool, b, g, j); }
  const T* value(int64_t b, int64_t g, int64_t j, T*) const { return row(v_pool, b, g, j); }
};

// Quantized storage: the oldest n_quant positions of every (b, g) as codes + f16 scales, the newest
// n_window ones in f32 (a ring of window_cap slots, position t in slot t % window_cap). Head-major:
//   codes   [B, Hkv, capacity, code_row] bytes      (code_row = quant_code_bytes(format, D))
//   values' scales per token  [B, Hkv, capacity, groups]            (groups = ceil(D / group))
//   keys' scales: per token as values, or per channel (KIVI) [B, Hkv, capacity / key_block, D]:
//   one scale per channel for each block of key_block positions.
//   window  [B, Hkv, window_cap, D] f32
// All rows of the batch hold the same positions 0..position-1; key j is at position j.
struct QuantKVReader {
  QuantFormat format = QuantFormat::int8;
  int64_t Hkv = 0, D = 0, capacity = 0, code_row = 0, group = 0, groups = 0;
  int64_t key_block = 0;  // 0: keys quantized per token like values; > 0: per channel over blocks
  const uint8_t* k_codes = nullptr;
  const uint8_t* v_codes = nullptr;
  const uint16_t* k_scales = nullptr;
  const uint16_t* v_scales = nullptr;
  const float* k_window = nullptr;
  const float* v_window = nullptr;
  int64_t window_cap = 0, n_quant = 0, n_total = 0;
  static constexpr bool kStableRows = false;

  int64_t length(int64_t) const { return n_total; }
  int64_t position(int64_t) const { return n_total; }
  int64_t key_position(int64_t, int64_t, int64_t j) const { return j; }
  const float* key(int64_t b, int64_t g, int64_t j, float* scratch) const {
    const int64_t bg = b * Hkv + g;
    if (j >= n_quant) return k_window + (bg * window_cap + j % window_cap) * D;
    const uint8_t* codes = k_codes + (bg * capacity + j) * code_row;
    if (key_block > 0)
      dequantize(format, codes, k_scales + (bg * (capacity / key_block) + j / key_block) * D, D, 1, scratch);
    else
      dequantize(format, codes, k_scales + (bg * capacity + j) * groups, D, group, scratch);
    return scratch;
  }
  const float* value(int64_t b, int64_t g, int64_t j, float* scratch) const {
    const int64_t bg = b * Hkv + g;
    if (j >= n_quant) return v_window + (bg * window_cap + j % window_cap) * D;
    dequantize(format, v_codes + (bg * capacity + j) * code_row, v_scales + (bg * capacity + j) * groups, D,
               group, scratch);
    return scratch;
  }
};

// ---- the kernel ---------------------------------------------------------------------------------------
// Instantiated (decode_attention.cpp) for: DenseKVReader<float>, DenseKVReader<double>,
// DenseKVReader<float, bf16_bits>, DenseKVReader<float, f16_bits>, the same four SinkKVReaders,
// PagedKVReader<float>, PagedKVReader<double>, QuantKVReader (T = float).
template <class T, class Reader>
void decode_attention(const DecodeParams<T>& p, const Reader& r);

}  // namespace attnlab::kernels
