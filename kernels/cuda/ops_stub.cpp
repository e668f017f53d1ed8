// kernels/cuda/ops.h in a build without CUDA: no tensor can live on a GPU there, so these are only
// reached by mistake; each throws the same Error as the runtime stub.
#include "kernels/cuda/ops.h"

#include "kernels/error.h"

namespace attnlab::kernels::cuda {

namespace {
[[noreturn]] void unavailable() {
  throw Error("CUDA: attnlab was built without CUDA (configure with -DATTNLAB_CUDA=ON and nvcc present)");
}
}  // namespace

void copy(const Extent&, const Operand&, const Operand&, int) { unavailable(); }
void binary(BinaryOp, const Extent&, const Operand&, const Operand&, const Operand&, double, int) { unavailable(); }
void unary(UnaryOp, const Extent&, const Operand&, const Operand&, int) { unavailable(); }
void compare(CompareOp, const Extent&, const Operand&, const Operand&, const Operand&, int) { unavailable(); }
void clamp(const Extent&, const Operand&, const Operand&, double, double, int) { unavailable(); }
void where(const Extent&, const Operand&, const Operand&, const Operand&, const Operand&, int) { unavailable(); }
void reduce_rows(Reduction, DType, void*, const void*, int64_t, int64_t, int64_t, int) { unavailable(); }
void arg_reduce_rows(bool, DType, void*, int64_t*, const void*, int64_t, int64_t, int) { unavailable(); }
void softmax_forward(bool, DType, void*, const void*, int64_t, int64_t, int) { unavailable(); }
void softmax_backward(bool, DType, void*, const void*, const void*, int64_t, int64_t, int) { unavailable(); }
void gelu_forward(DType, void*, const void*, int64_t, bool, int) { unavailable(); }
void gelu_backward(DType, void*, const void*, const void*, int64_t, bool, int) { unavailable(); }
void layernorm_forward(DType, void*, void*, void*, const void*, const void*, const void*, int64_t, int64_t,
                       double, int) { unavailable(); }
void layernorm_backward(DType, void*, void*, void*, const void*, const void*, const void*, const void*,
                        const void*, int64_t, int64_t, int) { unavailable(); }
bool index_select(DType, void*, const void*, DType, const void*, int64_t, int64_t, int64_t, int64_t, int) {
  unavailable();
}
bool index_add(DType, void*, const void*, DType, const void*, int64_t, int64_t, int64_t, int64_t, int) {
  unavailable();
}
bool gather(DType, void*, const Operand&, const Operand&, const Extent&, int, int64_t, int) { unavailable(); }
bool scatter_add(DType, const Operand&, const Operand&, const Operand&, const Extent&, int, int64_t, int) {
  unavailable();
}
void gemm_strided_batched(DType, bool, bool, int64_t, int64_t, int64_t, const void*, int64_t, int64_t,
                          const void*, int64_t, int64_t, void*, int64_t, int64_t, int64_t, int) { unavailable(); }
void adamw_step(float*, const float*, float*, float*, int64_t, double, double, double, double, double, int64_t,
                double, int) { unavailable(); }

}  // namespace attnlab::kernels::cuda
