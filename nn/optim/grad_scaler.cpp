#include "nn/optim/grad_scaler.h"

#include <cmath>

#include "autograd/functions.h"
#include "nn/optim/clip_grad.h"

namespace attnlab::optim {

GradScaler::GradScaler(GradScalerOptions opt) : opt_(opt), scale_(opt.init_scale) {
  ATTNLAB_CHECK(opt.init_scale > 0 && std::isfinite(opt.init_scale), "GradScaler: init_scale must be > 0, got ",
                opt.init_scale);
  ATTNLAB_CHECK(opt.growth_factor > 1, "GradScaler: growth_factor must be > 1, got ", opt.growth_factor);
  ATTNLAB_CHECK(opt.backoff_factor > 0 && opt.backoff_factor < 1, "GradScaler: backoff_factor must be in (0, 1), got ",
                opt.backoff_factor);
  ATTNLAB_CHECK(opt.growth_interval > 0, "GradScaler: growth_interval must be > 0, got ", opt.growth_interval);
}

Tensor GradScaler::scale(const Tensor& loss) const { return enabled() ? loss * scale_ : loss; }

void GradScaler::unscale_(const std::vector<Tensor>& params) {
  if (!enabled()) return;
  ATTNLAB_CHECK(!unscaled_, "GradScaler::unscale_: already called since the last update()");
  NoGradGuard ng;
  const std::vector<Tensor> grads = grads_of(params);
  const double inv = 1.0 / scale_;  // the scale is a power of two by default, so this is exact
  for (const Tensor& g : grads)
    if (g.defined()) ops::mul_(g, inv);
  found_inf_ = !all_finite(grads);
  unscaled_ = true;
}

bool GradScaler::step(Optimizer& opt) {
  if (!enabled()) {
    opt.step();
    return true;
  }
  if (!unscaled_) unscale_(opt);
  if (found_inf_) {
    ++skipped_;
    return false;
  }
  opt.step();
  return true;
}

void GradScaler::update() {
  if (!enabled()) return;
  ATTNLAB_CHECK(unscaled_, "GradScaler::update: call unscale_() or step() first in this iteration");
  if (found_inf_) {
    scale_ *= opt_.backoff_factor;
    growth_tracker_ = 0;
  } else if (++growth_tracker_ >= opt_.growth_interval) {
    scale_ *= opt_.growth_factor;
    growth_tracker_ = 0;
  }
  unscaled_ = false;
}

nlohmann::json GradScaler::state() const {
  return {{"scale", scale_}, {"growth_tracker", growth_tracker_}, {"skipped_steps", skipped_}};
}

void GradScaler::load_state(const nlohmann::json& j) {
  try {
    scale_ = j.at("scale").get<double>();
    growth_tracker_ = j.at("growth_tracker").get<int64_t>();
    skipped_ = j.value("skipped_steps", int64_t(0));
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("GradScaler::load_state: ") + e.what());
  }
  ATTNLAB_CHECK(scale_ > 0 && std::isfinite(scale_), "GradScaler::load_state: bad scale ", scale_);
  unscaled_ = found_inf_ = false;
}

}  // namespace attnlab::optim
