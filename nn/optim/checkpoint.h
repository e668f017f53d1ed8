// Training-state checkpoints: everything needed to resume training bit for bit, in ONE safetensors
// file written atomically (nn::save_tensors writes a temp file and renames it).
//
// Layout:
//   tensors   "model.<name>"   every entry of model.state_dict() (parameters and persistent buffers)
//             "optim.<name>"   every entry of opt.state_dict(), e.g. "optim.state.3.exp_avg"
//   metadata  (safetensors metadata is string -> string, so structured values are json text)
//             "attnlab_training_state"  kTrainingStateVersion, checked on load
//             "step"                    the caller's step counter, decimal
//             "rng_state"               json array of the Generator's state words as decimal strings
//                                       (u64 words do not survive a trip through a json double)
//             "optimizer"               opt.state_meta()
//             "scheduler"               sched->state()   (absent when saved without a schedule)
//             "extra"                   the caller's json (epoch, data-loader position, best loss...)
//
// Exact resume: train k steps, save, build fresh model/optimizer/schedule/Generator the same way,
// load, train N-k steps == train N steps straight, bit-identical (tested in test_checkpoint.cpp).
// Requires the same model code and optimizer construction (hyperparameters other than each group's
// lr and weight_decay come from the constructor, see Optimizer::load_state).
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "nn/module.h"
#include "nn/optim/optimizer.h"
#include "nn/optim/schedule.h"
#include "tensor/creation.h"

namespace attnlab::optim {

inline constexpr int kTrainingStateVersion = 1;

// Writes the checkpoint; `sched` may be null. Tensors are written as they are now (call it between
// steps, not during one).
void save_training_state(const std::string& path, const nn::Module& model, const Optimizer& opt,
                         const Scheduler* sched, int64_t step, const Generator& rng,
                         const nlohmann::json& extra = nlohmann::json::object());

struct TrainingState {
  int64_t step = 0;
  nlohmann::json extra;
};

// Restores a save_training_state file into objects built the same way as the saved ones: the model
// (strict load_state_dict: same names, shapes, dtypes), the optimizer (Optimizer::load_state), the
// schedule and the generator's state. Returns the step and extra. `sched` may be null (a saved
// schedule is then ignored); a non-null `sched` requires one in the file.
// Errors (attnlab::Error, naming the file): not a training-state file or a newer version, corrupt
// metadata, tensors outside "model."/"optim.", and every mismatch the loaders report. The file is
// fully parsed and the model's names and shapes checked before anything is changed; a mismatch found
// later (optimizer, schedule) can leave the model loaded — discard the objects on error.
TrainingState load_training_state(const std::string& path, nn::Module& model, Optimizer& opt,
                                  Scheduler* sched, Generator& rng);

}  // namespace attnlab::optim
