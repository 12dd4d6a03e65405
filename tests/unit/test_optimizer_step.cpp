// The foreach optimizer step against LibTorch's own optimizers and clip_grad_norm_: the same weights and
// state after several steps with changing learning rates, three groups (one decayed), a parameter without
// a gradient, and a serialise/restore round trip between the two implementations.
#include <gtest/gtest.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>
#include <torch/serialize.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>

#include "models/yolo.h"
#include "train/op_counter.h"
#include "train/optimizer_step.h"

using namespace detkit::train;

namespace {

// Three groups of parameters (decayed weights, undecayed norms, biases), one of which never gets a
// gradient; the same values in every copy made with the same seed.
struct Params {
  std::vector<std::vector<at::Tensor>> groups;
  explicit Params(uint64_t seed) {
    at::manual_seed(static_cast<int64_t>(seed));
    groups = {{at::randn({8, 3, 3, 3}), at::randn({16, 8, 1, 1})}, {at::randn({8}), at::randn({16})},
              {at::randn({8}), at::randn({16}), at::randn({4})}};
    for (auto& g : groups)
      for (auto& p : g) p.set_requires_grad(true);
  }
  std::vector<at::Tensor> all() const {
    std::vector<at::Tensor> out;
    for (const auto& g : groups) out.insert(out.end(), g.begin(), g.end());
    return out;
  }
  // Gradients of step `step` (deterministic, different each step); the last bias never gets one.
  void set_gradients(int step) {
    at::manual_seed(1000 + step);
    const auto ps = all();
    for (std::size_t i = 0; i + 1 < ps.size(); ++i) ps[i].mutable_grad() = at::randn_like(ps[i]) * (1.0 + step);
  }
};

template <class Options>
std::vector<torch::optim::OptimizerParamGroup> param_groups(const Params& params, const Options& decayed,
                                                            const Options& plain) {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(params.groups[0], std::make_unique<Options>(decayed));
  groups.emplace_back(params.groups[1], std::make_unique<Options>(plain));
  groups.emplace_back(params.groups[2], std::make_unique<Options>(plain));
  return groups;
}

double max_difference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
  return worst;
}

// The learning rate of step `step` in group `g` (warm-up style: every step different).
double lr_at(int step, std::size_t g) { return 0.01 * (1 + step) / (1 + static_cast<double>(g)); }

template <class Options>
void set_lr(torch::optim::Optimizer& optimizer, int step) {
  for (std::size_t g = 0; g < optimizer.param_groups().size(); ++g)
    static_cast<Options&>(optimizer.param_groups()[g].options()).lr(lr_at(step, g));
}

std::string saved(const torch::optim::Optimizer& optimizer) {
  std::ostringstream out;
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  archive.save_to(out);
  return out.str();
}

void load(torch::optim::Optimizer& optimizer, const std::string& bytes) {
  std::istringstream in(bytes);
  torch::serialize::InputArchive archive;
  archive.load_from(in);
  optimizer.load(archive);
}

// Steps `reference` with LibTorch's step() and `ours` with foreach_step(), `steps` times, then checks the
// parameters agree; halfway the optimizers' states are swapped through serialisation (each loads the other's).
template <class Optimizer, class Options>
void expect_same_steps(const Options& decayed, const Options& plain) {
  Params a(7), b(7);
  Optimizer reference(param_groups(a, decayed, plain), plain);
  Optimizer ours(param_groups(b, decayed, plain), plain);
  for (int step = 0; step < 6; ++step) {
    a.set_gradients(step);
    b.set_gradients(step);
    set_lr<Options>(reference, step);
    set_lr<Options>(ours, step);
    reference.step();
    foreach_step(ours);
    ASSERT_LT(max_difference(a.all(), b.all()), 1e-6) << "after step " << step;
    EXPECT_FALSE(b.all().back().grad().defined());
    if (step == 2) {
      // Each implementation continues from the state the other one saved.
      const std::string from_reference = saved(reference), from_ours = saved(ours);
      load(reference, from_ours);
      load(ours, from_reference);
    }
  }
  EXPECT_EQ(reference.state().size(), ours.state().size());
}

}  // namespace

TEST(OptimizerStep, ForeachSgdTakesLibTorchsNesterovStep) {
  const auto options = [](double wd) { return torch::optim::SGDOptions(0.01).momentum(0.937).nesterov(true).weight_decay(wd); };
  expect_same_steps<torch::optim::SGD>(options(5e-4), options(0));
}

TEST(OptimizerStep, ForeachAdamWTakesLibTorchsStep) {
  const auto options = [](double wd) {
    return torch::optim::AdamWOptions(0.001).betas({0.9, 0.999}).weight_decay(wd);
  };
  expect_same_steps<torch::optim::AdamW>(options(0.05), options(0));
}

TEST(OptimizerStep, OptionsWithoutAForeachFormFallBackToLibTorch) {
  // amsgrad and plain (non-Nesterov) momentum are left to LibTorch's loops: still the same step.
  expect_same_steps<torch::optim::AdamW>(torch::optim::AdamWOptions(0.001).amsgrad(true).weight_decay(0.01),
                                         torch::optim::AdamWOptions(0.001).amsgrad(true).weight_decay(0));
  expect_same_steps<torch::optim::SGD>(torch::optim::SGDOptions(0.01).momentum(0.9),
                                       torch::optim::SGDOptions(0.01).momentum(0.9));
}

TEST(OptimizerStep, NormAndClippingMatchClipGradNorm) {
  for (const double max_norm : {0.5, 1e6, std::numeric_limits<double>::infinity()}) {
    Params a(3), b(3);
    a.set_gradients(4);
    b.set_gradients(4);
    const double expected = torch::nn::utils::clip_grad_norm_(a.all(), max_norm);
    std::vector<at::Tensor> grads = defined_gradients(b.all());
    ASSERT_EQ(grads.size(), b.all().size() - 1);
    const double norm = gradient_norm(grads).item<double>();
    EXPECT_NEAR(norm, expected, 1e-5 * expected);
    clip_gradients(grads, norm, max_norm);
    EXPECT_LT(max_difference(defined_gradients(a.all()), grads), 1e-6) << "max_norm " << max_norm;
  }
  EXPECT_EQ(gradient_norm({}).item<double>(), 0.0);
}

TEST(OptimizerStep, UnscaleClipStepSkipsNonFiniteGradientsAndUnscalesOthers) {
  Params a(11), b(11);
  torch::optim::SGD reference(a.all(), torch::optim::SGDOptions(0.1).momentum(0.9).nesterov(true));
  torch::optim::SGD ours(b.all(), torch::optim::SGDOptions(0.1).momentum(0.9).nesterov(true));
  a.set_gradients(0);
  b.set_gradients(0);
  for (auto& g : defined_gradients(b.all())) g.mul_(1024);  // as fp16 loss scaling leaves them
  torch::nn::utils::clip_grad_norm_(a.all(), 10.0);
  reference.step();
  const double norm = unscale_clip_step(ours, b.all(), 1024, 10.0);
  EXPECT_TRUE(std::isfinite(norm));
  EXPECT_LT(max_difference(a.all(), b.all()), 1e-6);

  const auto before = b.all().front().clone();
  b.set_gradients(1);
  b.all()[1].mutable_grad()[0][0][0][0] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(std::isfinite(unscale_clip_step(ours, b.all(), 1, 10.0)));
  EXPECT_TRUE(at::equal(b.all().front(), before)) << "a non-finite gradient must not move the weights";

  zero_gradients(ours);
  for (const auto& g : defined_gradients(b.all())) EXPECT_EQ(g.abs().sum().item<double>(), 0.0);
}

// The point of the foreach step: the host dispatches a handful of operators per update instead of
// several per parameter tensor (on a GPU, each is at least one kernel launch). Counted on yolo-s's own
// parameters, AdamW as the trainer runs it (clip, step, zero), against LibTorch's loops.
TEST(OptimizerStep, TheUpdateDispatchesAHandfulOfOperatorsNotSeveralPerParameter) {
  detkit::models::YoloOptions options;
  options.scale = detkit::models::yolo_scale("yolo-s");
  options.classes = 3;
  detkit::models::YoloDetector model(options);
  std::vector<at::Tensor> params = model->parameters();
  const auto fill = [&] {
    at::NoGradGuard no_grad;
    for (auto& p : params) p.mutable_grad() = at::randn_like(p);
  };
  torch::optim::AdamW loops(params, torch::optim::AdamWOptions(1e-3).weight_decay(0.05));
  torch::optim::AdamW fused(params, torch::optim::AdamWOptions(1e-3).weight_decay(0.05));
  fill();
  loops.step();  // first steps: state created
  foreach_step(fused);
  int64_t loop_ops = 0, foreach_ops = 0;
  {
    fill();
    OperatorCounter counter;
    torch::nn::utils::clip_grad_norm_(params, 10.0);
    loops.step();
    loops.zero_grad();
    loop_ops = counter.count();
  }
  {
    fill();
    OperatorCounter counter;
    unscale_clip_step(fused, params, 1.0, 10.0);
    zero_gradients(fused);
    foreach_ops = counter.count();
  }
  std::cout << params.size() << " parameter tensors: LibTorch's loops " << loop_ops << " operators, foreach " << foreach_ops
            << "\n";
  EXPECT_GT(loop_ops, 5 * static_cast<int64_t>(params.size()));
  EXPECT_LE(foreach_ops, 20);
}
