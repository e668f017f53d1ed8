// Matrix-vector products y = alpha * A x + beta * y with A row-major [rows, cols] stored as f32, bf16 or
// int8 (one f32 scale per row), x and y f32 and contiguous. One position through a Linear layer is
// such a product, and it is memory-bound: reading A is the whole cost, so a smaller A is a faster step.
//
// Packed weights (llama.cpp's idea, at its simplest): bf16 keeps the f32 exponent and 8 mantissa bits
// (relative error <= 2^-9 per weight); int8 stores round(w / s) with s = max|w| / 127 over the row
// (absolute error <= s / 2 per weight). Both are decoded in registers; accumulation is f32.
#pragma once
#include <cstdint>

namespace attnlab::kernels {

enum class WeightFormat : uint8_t { f32, bf16, int8 };
const char* weight_format_name(WeightFormat f);  // "f32", "bf16", "int8"
WeightFormat parse_weight_format(const char* name);  // throws Error naming the choices

// Large matrices are split over the OpenMP threads by rows; small ones run on the calling thread.
void gemv(int64_t rows, int64_t cols, float alpha, const float* A, int64_t lda, const float* x, float beta, float* y);
void gemv_bf16(int64_t rows, int64_t cols, const uint16_t* A, const float* x, float* y);  // y = A x
void gemv_int8(int64_t rows, int64_t cols, const int8_t* A, const float* row_scales, const float* x, float* y);

// f32 [rows, cols] -> packed, and back (the model's prefill multiplies by the unpacked weights, so
// every position sees the same rounded values).
void pack_int8_rows(const float* w, int64_t rows, int64_t cols, int8_t* q, float* row_scales);
void unpack_int8_rows(const int8_t* q, const float* row_scales, int64_t rows, int64_t cols, float* w);

}  // namespace attnlab::kernels
