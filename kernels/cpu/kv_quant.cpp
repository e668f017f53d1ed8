#include "kernels/cpu/kv_quant.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "kernels/cpu/convert.h"

namespace attnlab::kernels {

const char* quant_format_name(QuantFormat f) {
  switch (f) {
    case QuantFormat::int8: return "int8";
    case QuantFormat::int4: return "int4";
    case QuantFormat::fp8_e4m3: return "fp8_e4m3";
  }
  return "?";
}

float quant_qmax(QuantFormat f) {
  switch (f) {
    case QuantFormat::int8: return 127.f;
    case QuantFormat::int4: return 7.f;
    case QuantFormat::fp8_e4m3: return 448.f;
  }
  return 1.f;
}

int64_t quant_code_bytes(QuantFormat f, int64_t n) { return f == QuantFormat::int4 ? (n + 1) / 2 : n; }

// ---- FP8 E4M3 ----------------------------------------------------------------------------------------

uint8_t f32_to_fp8_e4m3(float x) {
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  if (std::isnan(x)) return uint8_t(sign | 0x7F);
  const float a = std::fabs(x);
  if (a >= 448.f) return uint8_t(sign | 0x7E);  // saturate (also +-inf)
  if (a < 0x1p-6f) {
    // Subnormal range: value = m * 2^-9, m = 0..7; m = 8 is the smallest normal (code 0x08). Scaling by
    // a power of two is exact, and nearbyint rounds ties to even in the default rounding mode.
    return uint8_t(sign | uint8_t(std::nearbyint(a * 0x1p9f)));
  }
  int e;
  const float frac = std::frexp(a, &e);           // a = frac * 2^e, frac in [0.5, 1)
  int exp = e - 1;                                // a = (1 + f) * 2^exp, exp in [-6, 8]
  int m = int(std::nearbyint((frac * 2.f - 1.f) * 8.f));  // 3 mantissa bits, ties to even
  if (m == 8) {
    m = 0;
    ++exp;
  }
  const int field = exp + 7;
  if (field > 15 || (field == 15 && m == 7)) return uint8_t(sign | 0x7E);  // beyond 448: saturate
  return uint8_t(sign | uint8_t(field << 3) | uint8_t(m));
}

namespace {

std::array<float, 256> make_fp8_table() {
  std::array<float, 256> t{};
  for (int b = 0; b < 256; ++b) {
    const int field = (b >> 3) & 0xF, m = b & 7;
    float v;
    if (field == 15 && m == 7) v = std::nanf("");
    else if (field == 0) v = std::ldexp(float(m), -9);
    else v = std::ldexp(1.f + float(m) / 8.f, field - 7);
    t[size_t(b)] = (b & 0x80) ? -v : v;
  }
  return t;
}

const std::array<float, 256> kFp8Table = make_fp8_table();

// The f16 scale of a group whose largest magnitude is amax (see the header).
uint16_t scale_for(QuantFormat f, float amax) {
  if (!(amax > 0.f)) return 0;  // zeros (or NaN: scale 0 codes everything as 0 rather than spreading NaN)
  const float s = std::min(amax / quant_qmax(f), 65504.f);
  const uint16_t h = f32_to_f16(s);
  return (h & 0x7FFF) == 0 ? uint16_t(1) : h;  // never round a nonzero group's scale to 0 (2^-24)
}

// The code of v = x / scale (int4: the stored nibble, code + 8).
uint8_t encode(QuantFormat f, float v) {
  switch (f) {
    case QuantFormat::int8: return uint8_t(int8_t(std::clamp(std::nearbyint(v), -127.f, 127.f)));
    case QuantFormat::int4: return uint8_t(int(std::clamp(std::nearbyint(v), -7.f, 7.f)) + 8);
    case QuantFormat::fp8_e4m3: return f32_to_fp8_e4m3(v);
  }
  return 0;
}

}  // namespace

float fp8_e4m3_to_f32(uint8_t b) { return kFp8Table[b]; }

// ---- rows --------------------------------------------------------------------------------------------

void quant_scales(QuantFormat f, const float* x, int64_t n, int64_t group, uint16_t* scales) {
  for (int64_t g0 = 0, gi = 0; g0 < n; g0 += group, ++gi) {
    float amax = 0.f;
    for (int64_t i = g0; i < std::min(n, g0 + group); ++i) amax = std::max(amax, std::fabs(x[i]));
    scales[gi] = scale_for(f, amax);
  }
}

void channel_scales(QuantFormat f, const float* x, int64_t T, int64_t D, int64_t ld, uint16_t* scales) {
  for (int64_t c = 0; c < D; ++c) {
    float amax = 0.f;
    for (int64_t t = 0; t < T; ++t) amax = std::max(amax, std::fabs(x[t * ld + c]));
    scales[c] = scale_for(f, amax);
  }
}

void quantize(QuantFormat f, const float* x, int64_t n, int64_t group, const uint16_t* scales, uint8_t* codes) {
  if (f == QuantFormat::int4) std::fill(codes, codes + quant_code_bytes(f, n), uint8_t(0x88));  // code 0 pairs
  for (int64_t i = 0; i < n; ++i) {
    const float s = f16_to_f32(scales[i / group]);
    const uint8_t c = encode(f, s > 0.f ? x[i] / s : 0.f);
    if (f == QuantFormat::int4) codes[i / 2] = (i & 1) ? uint8_t((codes[i / 2] & 0x0F) | (c << 4))
                                                       : uint8_t((codes[i / 2] & 0xF0) | c);
    else codes[i] = c;
  }
}

void dequantize(QuantFormat f, const uint8_t* codes, const uint16_t* scales, int64_t n, int64_t group, float* out) {
  switch (f) {
    case QuantFormat::int8:
      for (int64_t g0 = 0; g0 < n; g0 += group) {
        const float s = f16_to_f32(scales[g0 / group]);
        for (int64_t i = g0; i < std::min(n, g0 + group); ++i) out[i] = float(int8_t(codes[i])) * s;
      }
      return;
    case QuantFormat::int4:
      for (int64_t g0 = 0; g0 < n; g0 += group) {
        const float s = f16_to_f32(scales[g0 / group]);
        for (int64_t i = g0; i < std::min(n, g0 + group); ++i) {
          const int nib = (i & 1) ? codes[i / 2] >> 4 : codes[i / 2] & 0x0F;
          out[i] = float(nib - 8) * s;
        }
      }
      return;
    case QuantFormat::fp8_e4m3:
      for (int64_t g0 = 0; g0 < n; g0 += group) {
        const float s = f16_to_f32(scales[g0 / group]);
        for (int64_t i = g0; i < std::min(n, g0 + group); ++i) out[i] = kFp8Table[codes[i]] * s;
      }
      return;
  }
}

}  // namespace attnlab::kernels
