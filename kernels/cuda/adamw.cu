// The fused AdamW step on f32 master weights (nn/optim/adam.cpp's arithmetic, one kernel, one pass).
#include <cmath>

#include "kernels/cuda/common.cuh"

namespace attnlab::kernels::cuda {

namespace {
__global__ void adamw_kernel(float* p, const float* grad, float* m, float* v, int64_t n, float grad_scale,
                             float decay_factor, float beta1, float beta2, float one_minus_beta1,
                             float one_minus_beta2, float neg_step_size, float bias_correction2_sqrt, float eps) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = grad[i] * grad_scale;
    float pi = p[i];
    if (decay_factor != 1.0f) pi *= decay_factor;
    const float mi = m[i] * beta1 + one_minus_beta1 * g;
    const float vi = v[i] * beta2 + one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) / bias_correction2_sqrt + eps;
    p[i] = pi + neg_step_size * (mi / denom);
  }
}
}  // namespace

void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, double lr, double beta1,
                double beta2, double eps, double weight_decay, int64_t step, double grad_scale, int device) {
  if (n == 0) return;
  ATTNLAB_CHECK(step >= 1, "adamw_step: step counts from 1, got ", step);
  // The per-step scalars in double on the host, as the CPU optimizer (and PyTorch) compute them.
  const double t = double(step);
  const double bias_correction1 = 1.0 - std::pow(beta1, t);
  const double bias_correction2 = 1.0 - std::pow(beta2, t);
  const double step_size = lr / bias_correction1;
  adamw_kernel<<<grid_for(n), kThreads, 0, current_stream(device)>>>(
      param, grad, m, v, n, float(grad_scale), float(1.0 - lr * weight_decay), float(beta1), float(beta2),
      float(1.0 - beta1), float(1.0 - beta2), float(-step_size), float(std::sqrt(bias_correction2)), float(eps));
  ATTNLAB_CUDA_CHECK_LAUNCH();
}

}  // namespace attnlab::kernels::cuda
