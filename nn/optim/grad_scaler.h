// Dynamic loss scaling for f16 training (torch.cuda.amp.GradScaler's role).
//
// f16 gradients below ~6e-8 flush to zero. The scaler multiplies the loss by S (65536 to start) so
// the backward pass runs on numbers S times larger, then divides the (f32 master) gradients by S
// before clipping and the step. When a gradient holds inf/NaN the scale was too large: the step is
// skipped and S halves. After `growth_interval` good steps in a row S doubles, so it tracks the
// largest scale that does not overflow.
//
//   optim::GradScaler scaler;                      // enabled only for f16; a no-op pass-through else
//   opt.zero_grad();
//   { autocast::AutocastGuard ac(DType::f16); loss = ...; }
//   backward(scaler.scale(loss));
//   scaler.unscale_(opt);                          // before clipping: clip the true gradients
//   optim::clip_grad_norm_(params, 1.0);
//   scaler.step(opt);                              // skipped when unscale_ found inf/NaN
//   scaler.update();                               // halve on overflow, grow after N good steps
//
// bf16 has f32's exponent range and needs no scaling: build the scaler with enabled = false.
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/optim/optimizer.h"
#include "tensor/tensor.h"

namespace attnlab::optim {

struct GradScalerOptions {
  double init_scale = 65536.0;   // 2^16, PyTorch's default
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;  // good steps in a row before the scale grows
  bool enabled = true;
};

class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions opt = {});

  bool enabled() const { return opt_.enabled; }
  // loss * scale (differentiable; the loss itself when disabled).
  Tensor scale(const Tensor& loss) const;
  // Divides every defined gradient of `params` by the scale in place and records whether any of them
  // holds inf/NaN (found_inf()). Once per step: a second call before update() throws.
  void unscale_(const std::vector<Tensor>& params);
  void unscale_(const Optimizer& opt) { unscale_(opt.parameters()); }
  // Runs opt.step() unless inf/NaN was found (unscale_ is called first if it was not). Returns
  // whether the step ran. Disabled: always steps.
  bool step(Optimizer& opt);
  // Adjusts the scale after the step: backoff on inf/NaN (and reset the good-step count), growth
  // after growth_interval good steps in a row. Then a new step may begin.
  void update();

  double get_scale() const { return scale_; }
  bool found_inf() const { return found_inf_; }
  int64_t growth_tracker() const { return growth_tracker_; }
  int64_t skipped_steps() const { return skipped_; }

  // {"scale", "growth_tracker", "skipped_steps"} for training states; load_state restores them.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& j);

 private:
  GradScalerOptions opt_;
  double scale_;
  int64_t growth_tracker_ = 0;
  int64_t skipped_ = 0;
  bool unscaled_ = false;  // unscale_ ran this step
  bool found_inf_ = false;
};

}  // namespace attnlab::optim
