// Training-state checkpoints (nn/optim/checkpoint.h): exact resume, file layout and error messages.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <memory>

#include "autograd/functions.h"
#include "nn/layers/linear.h"
#include "nn/optim/adamw.h"
#include "nn/optim/checkpoint.h"
#include "nn/optim/clip_grad.h"
#include "nn/optim/sgd.h"
#include "nn/serialization.h"
#include "tensor/ops.h"
#include "test_util.h"

using namespace attnlab;
using testing::check_error;

namespace {

// Two Linear layers and a persistent buffer (a running mean of the loss) so that the model part of
// the checkpoint holds parameters and buffers.
class Net : public nn::Module {
 public:
  explicit Net(uint64_t seed) {
    Generator g(seed);
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(3, 5, true, DType::f64));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(5, 2, true, DType::f64));
    fc1->reset_parameters(&g);
    fc2->reset_parameters(&g);
    loss_ema = register_buffer("loss_ema", zeros({1}, DType::f64));
  }
  Tensor forward(const Tensor& x) { return fc2->forward(tanh(fc1->forward(x))); }

  std::shared_ptr<nn::Linear> fc1, fc2;
  Tensor loss_ema;
};

// Everything a training run owns. Built identically (same seeds) for the straight and the resumed
// runs, except `init_seed`, so a resumed run only matches if the checkpoint really restored it.
struct Run {
  Net net;
  std::unique_ptr<optim::Optimizer> opt;
  std::unique_ptr<optim::Scheduler> sched;
  Generator rng;  // draws the batches

  Run(uint64_t init_seed, uint64_t data_seed, bool adamw = true) : net(init_seed), rng(data_seed) {
    // No weight decay on biases.
    std::vector<optim::ParamGroup> groups{{{}, std::nullopt, std::nullopt}, {{}, std::nullopt, 0.0}};
    for (const auto& [name, p] : net.named_parameters())
      groups[name.ends_with("bias") ? 1 : 0].params.push_back(p);
    if (adamw) opt = std::make_unique<optim::AdamW>(groups, 0.05, optim::Adam::Betas{0.9, 0.99}, 1e-8, 0.1);
    else opt = std::make_unique<optim::SGD>(groups, 0.05, 0.9, 0.0, 0.1, true);
    sched = std::make_unique<optim::LinearWarmupCosine>(*opt, 3, 12, 1e-3, 0.1);
  }

  void train(int steps) {
    for (int s = 0; s < steps; ++s) {
      // 7x3 and 7x2 draws: odd counts, so the Box–Muller spare is part of the state at save time.
      const Tensor x = randn({7, 3}, DType::f64, &rng), y = randn({7, 2}, DType::f64, &rng);
      opt->zero_grad();
      const Tensor loss = mean(square(net.forward(x) - y));
      backward(loss);
      optim::clip_grad_norm_(net.parameters(), 0.5);
      opt->step();
      sched->step();
      NoGradGuard ng;
      ops::mul_(net.loss_ema, 0.9);
      ops::add_(net.loss_ema, loss.detach(), 0.1);
    }
  }
};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("attnlab_test_checkpoint_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

void check_identical(const nn::Module& a, const nn::Module& b) {
  testing::check_identical(a.state_dict(), b.state_dict());
}

}  // namespace

TEST_CASE("train N straight == train k, save, load into fresh objects, train N-k: bit-identical") {
  for (bool adamw : {true, false}) {
    CAPTURE(adamw);
    const int N = 14, k = 5;  // the schedule's warmup ends at 3 and it floors after 12
    Run straight(1, 2, adamw);
    straight.train(N);

    const std::string path = temp_path(adamw ? "adamw.safetensors" : "sgd.safetensors");
    {
      Run first(1, 2, adamw);
      first.train(k);
      optim::save_training_state(path, first.net, *first.opt, first.sched.get(), k, first.rng,
                                 {{"epoch", 0}, {"note", "resume test"}});
    }
    Run resumed(99, 98, adamw);  // different init and data seeds: all must come from the file
    const auto st = optim::load_training_state(path, resumed.net, *resumed.opt,
                                               resumed.sched.get(), resumed.rng);
    CHECK(st.step == k);
    CHECK(st.extra["note"] == "resume test");
    CHECK(resumed.opt->step_count() == k);
    CHECK(resumed.sched->t() == k);
    resumed.train(N - k);

    check_identical(resumed.net, straight.net);
    CHECK(resumed.opt->lr(0) == straight.opt->lr(0));
    CHECK(resumed.rng.state() == straight.rng.state());
    auto sa = resumed.opt->state_dict(), sb = straight.opt->state_dict();
    REQUIRE(sa.size() == sb.size());
    for (size_t i = 0; i < sa.size(); ++i)
      CHECK(sa[i].second.to_vector<double>() == sb[i].second.to_vector<double>());
    std::filesystem::remove(path);
  }
}

TEST_CASE("the checkpoint is one safetensors file with model.*, optim.* and string metadata") {
  Run run(1, 2);
  run.train(2);
  const std::string path = temp_path("layout.safetensors");
  optim::save_training_state(path, run.net, *run.opt, run.sched.get(), 2, run.rng);
  const auto f = nn::load_tensors(path);
  CHECK(f.contains("model.fc1.weight"));
  CHECK(f.contains("model.loss_ema"));
  CHECK(f.contains("optim.state.0.exp_avg"));
  CHECK(f.contains("optim.state.3.exp_avg_sq"));
  CHECK(f.metadata.at("attnlab_training_state") == "1");
  CHECK(f.metadata.at("step") == "2");
  const auto words = nlohmann::json::parse(f.metadata.at("rng_state"));
  REQUIRE(words.size() == 6);
  CHECK(words[0].get<std::string>() == std::to_string(run.rng.state()[0]));
  CHECK(nlohmann::json::parse(f.metadata.at("optimizer"))["optimizer"] == "AdamW");
  CHECK(nlohmann::json::parse(f.metadata.at("scheduler"))["t"] == 2);
  // A model-only reader can still take the weights out by name.
  CHECK(f.get("model.fc2.bias").shape() == Shape{2});
  std::filesystem::remove(path);
}

TEST_CASE("load_training_state errors name the file and the problem") {
  Run run(1, 2);
  run.train(2);
  const std::string path = temp_path("errors.safetensors");
  optim::save_training_state(path, run.net, *run.opt, run.sched.get(), 2, run.rng);

  SUBCASE("a different model fails before anything changes") {
    class Other : public nn::Module {
     public:
      Other() { fc1 = register_module("fc1", std::make_shared<nn::Linear>(3, 4, true, DType::f64)); }
      std::shared_ptr<nn::Linear> fc1;
    } other;
    optim::AdamW opt(other.parameters());
    check_error([&] { optim::load_training_state(path, other, opt, nullptr, run.rng); },
                {path, "model tensor 'fc1.bias' is [5] in the checkpoint but [4]"});
    CHECK(opt.step_count() == 0);
  }
  SUBCASE("a different optimizer") {
    Run fresh(1, 2, /*adamw=*/false);
    check_error([&] {
      optim::load_training_state(path, fresh.net, *fresh.opt, fresh.sched.get(), fresh.rng);
    }, {path, "SGD::load_state", "saved by AdamW"});
  }
  SUBCASE("a schedule asked for but not saved; a different schedule") {
    const std::string p2 = temp_path("nosched.safetensors");
    optim::save_training_state(p2, run.net, *run.opt, nullptr, 2, run.rng);
    Run fresh(1, 2);
    check_error([&] {
      optim::load_training_state(p2, fresh.net, *fresh.opt, fresh.sched.get(), fresh.rng);
    }, {p2, "metadata key 'scheduler' is missing"});
    std::filesystem::remove(p2);
    optim::StepLR step(*fresh.opt, 3);
    check_error([&] { optim::load_training_state(path, fresh.net, *fresh.opt, &step, fresh.rng); },
                {path, "saved by LinearWarmupCosine"});
  }
  SUBCASE("not a training-state file, corrupt metadata, stray tensors") {
    Run fresh(1, 2);
    const std::string p3 = temp_path("plain.safetensors");
    nn::save_module(p3, fresh.net);
    check_error([&] {
      optim::load_training_state(p3, fresh.net, *fresh.opt, nullptr, fresh.rng);
    }, {p3, "not a training-state checkpoint"});

    auto f = nn::load_tensors(path);
    auto meta = f.metadata;
    meta["rng_state"] = "[\"12\", \"x\"]";
    nn::save_tensors(p3, f.tensors, meta);
    check_error([&] {
      optim::load_training_state(p3, fresh.net, *fresh.opt, nullptr, fresh.rng);
    }, {p3, "corrupt metadata"});

    meta = f.metadata;
    meta["optimizer"] = "{not json";
    nn::save_tensors(p3, f.tensors, meta);
    check_error([&] {
      optim::load_training_state(p3, fresh.net, *fresh.opt, nullptr, fresh.rng);
    }, {p3, "corrupt metadata"});

    meta = f.metadata;
    meta["attnlab_training_state"] = "2";
    nn::save_tensors(p3, f.tensors, meta);
    check_error([&] {
      optim::load_training_state(p3, fresh.net, *fresh.opt, nullptr, fresh.rng);
    }, {p3, "version 2 is newer"});

    auto tensors = f.tensors;
    tensors.emplace_back("stray", zeros({1}));
    nn::save_tensors(p3, tensors, f.metadata);
    check_error([&] {
      optim::load_training_state(p3, fresh.net, *fresh.opt, nullptr, fresh.rng);
    }, {p3, "unexpected tensor 'stray'"});

    tensors = f.tensors;
    std::erase_if(tensors, [](const auto& kv) { return kv.first == "optim.state.0.exp_avg"; });
    nn::save_tensors(p3, tensors, f.metadata);
    check_error([&] {
      optim::load_training_state(p3, fresh.net, *fresh.opt, nullptr, fresh.rng);
    }, {p3, "missing buffer 'state.0.exp_avg'"});
    CHECK(fresh.opt->step_count() == 0);  // nothing half-loaded
    std::filesystem::remove(p3);
  }
  std::filesystem::remove(path);
}
