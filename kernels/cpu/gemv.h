// Matrix-vector products y = alpha * A x + beta * y with A row-major [rows, cols] stored as f32, bf16 or
// int8 (one f32 scale per row), x and y f32 and contiguous. One position through a Linear layer is
// such a product, and it is memory-bound: reading A is the whole cost, so a smaller A is a faster step.
//
// Packed weights (llama.cpp's idea, at its simplest): bf16 keeps the f32 exponent and 8 mantissa bits
// (relative error <= 2^-9 per weight); int8 stores round(w / s) with s = max|w| / 127 over the row
// (absolute error <= s / 2 per weight). Both are decoded in registers; accumulation is f32. w8a8 keeps
// the int8 weights and also rounds x to int8, so the products are integer (below).
#pragma once
#include <cstdint>

namespace attnlab::kernels {

enum class WeightFormat : uint8_t { f32, bf16, int8, w8a8 };
const char* weight_format_name(WeightFormat f);  // "f32", "bf16", "int8", "w8a8"
WeightFormat parse_weight_format(const char* name);  // throws Error naming the choices

// Large matrices are split over the OpenMP threads by rows; small ones run on the calling thread.
void gemv(int64_t rows, int64_t cols, float alpha, const float* A, int64_t lda, const float* x, float beta, float* y);
void gemv_bf16(int64_t rows, int64_t cols, const uint16_t* A, const float* x, float* y);  // y = A x
void gemv_int8(int64_t rows, int64_t cols, const int8_t* A, const float* row_scales, const float* x, float* y);

// w8a8: the int8 rows above times x quantized on the fly to int8 in blocks of kQ8Block with one f32
// scale each (llama.cpp's Q8_0): integer multiply-adds, 32 per instruction pair instead of 8 widened
// f32 FMAs. Adds x's rounding (at most half a step, max|x_block| / 254, per element) to the weights'.
constexpr int64_t kQ8Block = 32;
void gemv_w8a8(int64_t rows, int64_t cols, const int8_t* A, const float* row_scales, const float* x, float* y);
// x[n] -> q[n], scales[ceil(n / kQ8Block)]: q = round(x / s), s = max|x_block| / 127.
void quantize_q8_blocks(const float* x, int64_t n, int8_t* q, float* scales);

// f32 [rows, cols] -> packed, and back (the model's prefill multiplies by the unpacked weights, so
// every position sees the same rounded values).
void pack_int8_rows(const float* w, int64_t rows, int64_t cols, int8_t* q, float* row_scales);
void unpack_int8_rows(const int8_t* q, const float* row_scales, int64_t rows, int64_t cols, float* w);

}  // namespace attnlab::kernels
