// Low-precision number formats for KV caches: symmetric int8, int4 (two codes per byte) and
// FP8 E4M3, each with f16 scales, plus the scalar FP8 conversions.
//
// Every format stores x ≈ decode(code) * scale with one scale per group of consecutive values:
//   scale = max|x over the group| / qmax    qmax = 127 (int8), 7 (int4), 448 (fp8 e4m3)
//   code  = round_to_nearest_even(x / scale), clamped to [-qmax, qmax] (fp8: encoded, saturating)
// The scale is rounded to f16 first and the codes are computed against the rounded scale, so decoding
// uses exactly the scale the codes were made for. A group of zeros gets scale 0 and codes 0.
//
// Groups: "per token" quantization uses groups along the head dim D (group = D for int8/fp8, 32 for
// int4 by default); "per channel" quantization (KIVI's keys) computes one scale per channel over a
// block of tokens (channel_scales) and then quantizes each token row with those scales (group = 1).
//
// FP8 E4M3 follows the OCP 8-bit Floating Point Specification (v1.0, "E4M3FN"): 1 sign bit, 4
// exponent bits (bias 7), 3 mantissa bits; no infinities; S.1111.111 is NaN; largest finite ±448;
// smallest normal 2^-6; subnormals m * 2^-9. Encoding rounds to nearest even and saturates to ±448
// (the spec's saturating mode); NaN stays NaN.
//
// Code layouts: int8 and fp8 one byte per value; int4 packs value 2i in the low nibble and value 2i+1
// in the high nibble of byte i, each stored as code + 8 (so -7..7 -> 1..15).
#pragma once
#include <cstdint>

namespace attnlab::kernels {

enum class QuantFormat { int8, int4, fp8_e4m3 };

const char* quant_format_name(QuantFormat f);  // "int8", "int4", "fp8_e4m3"
float quant_qmax(QuantFormat f);              // 127, 7, 448
// Bytes of codes for n values (int4: ceil(n / 2)).
int64_t quant_code_bytes(QuantFormat f, int64_t n);

// ---- FP8 E4M3 scalars ------------------------------------------------------------------------------
uint8_t f32_to_fp8_e4m3(float x);  // round to nearest even, saturating to ±448; NaN -> 0x7F (sign kept)
float fp8_e4m3_to_f32(uint8_t b);  // exact (table lookup)

// ---- rows ------------------------------------------------------------------------------------------
// One f16 scale per group of `group` consecutive values of x[0..n) (the last group may be shorter):
// scales[ceil(n / group)].
void quant_scales(QuantFormat f, const float* x, int64_t n, int64_t group, uint16_t* scales);
// codes for x[0..n) given the f16 scales of its groups (from quant_scales or channel_scales).
void quantize(QuantFormat f, const float* x, int64_t n, int64_t group, const uint16_t* scales, uint8_t* codes);
// out[i] = decode(code i) * scale[i / group].
void dequantize(QuantFormat f, const uint8_t* codes, const uint16_t* scales, int64_t n, int64_t group, float* out);

// Per-channel scales of a block of T token rows (row stride ld) with D channels: scales[D], one per
// channel over the T rows. Quantize each row afterwards with quantize(f, row, D, 1, scales, codes).
void channel_scales(QuantFormat f, const float* x, int64_t T, int64_t D, int64_t ld, uint16_t* scales);

}  // namespace attnlab::kernels
