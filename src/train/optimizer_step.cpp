#include "train/optimizer_step.h"

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <cmath>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>

#include "core/error.h"

namespace detkit::train {

namespace {

// The key of `p` in an optimizer's state map: LibTorch 1.13 keys by the text of the TensorImpl pointer
// (c10::guts::to_string, an ostringstream), 2.x by the pointer itself.
template <class Key>
Key state_key(const at::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream text;
    text << p.unsafeGetTensorImpl();
    return text.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

template <class State, class Map>
State* find_state(Map& states, const at::Tensor& p) {
  using Key = typename std::decay_t<Map>::key_type;
  auto it = states.find(state_key<Key>(p));
  return it == states.end() ? nullptr : static_cast<State*>(it->second.get());
}

template <class State, class Map>
State& add_state(Map& states, const at::Tensor& p, std::unique_ptr<State> state) {
  using Key = typename std::decay_t<Map>::key_type;
  State& ref = *state;
  states[state_key<Key>(p)] = std::move(state);
  return ref;
}

// SGD with momentum as torch::optim::SGD computes it: d = g + wd * p; buf = d on the first step, else
// buf = momentum * buf + (1 - dampening) * d; Nesterov: d = d + momentum * buf; p -= lr * d.
void sgd_group(torch::optim::SGD& optimizer, torch::optim::OptimizerParamGroup& group) {
  const auto& options = static_cast<const torch::optim::SGDOptions&>(group.options());
  std::vector<at::Tensor> params, grads;
  for (const auto& p : group.params())
    if (p.grad().defined()) {
      params.push_back(p);
      grads.push_back(p.grad());
    }
  if (params.empty()) return;
  // The gradients are the scratch space for the update (the trainer zeroes them next), so the step
  // allocates nothing beyond the first step's buffers.
  std::vector<at::Tensor>& steps = grads;
  if (options.weight_decay() != 0) at::_foreach_add_(steps, params, options.weight_decay());
  // First steps start their buffer from the step; the rest decay it (one list each).
  std::vector<at::Tensor> buffers, decayed_steps, all_buffers;
  for (std::size_t i = 0; i < params.size(); ++i) {
    auto* state = find_state<torch::optim::SGDParamState>(optimizer.state(), params[i]);
    if (!state) {
      auto fresh = std::make_unique<torch::optim::SGDParamState>();
      fresh->momentum_buffer(steps[i].clone().detach());
      all_buffers.push_back(add_state(optimizer.state(), params[i], std::move(fresh)).momentum_buffer());
    } else {
      buffers.push_back(state->momentum_buffer());
      decayed_steps.push_back(steps[i]);
      all_buffers.push_back(state->momentum_buffer());
    }
  }
  if (!buffers.empty()) {
    at::_foreach_mul_(buffers, options.momentum());
    at::_foreach_add_(buffers, decayed_steps, 1 - options.dampening());
  }
  at::_foreach_add_(steps, all_buffers, options.momentum());
  at::_foreach_add_(params, steps, -options.lr());
}

// AdamW as torch::optim::AdamW computes it: p *= 1 - lr * wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). Parameters are stepped in lists of equal t.
void adamw_group(torch::optim::AdamW& optimizer, torch::optim::OptimizerParamGroup& group) {
  const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
  const double lr = options.lr(), beta1 = std::get<0>(options.betas()), beta2 = std::get<1>(options.betas());
  struct Lists {
    std::vector<at::Tensor> params, grads, exp_avg, exp_avg_sq;
  };
  std::map<int64_t, Lists> by_step;
  std::vector<at::Tensor> decayed;
  for (const auto& p : group.params()) {
    if (!p.grad().defined()) continue;
    decayed.push_back(p);
    auto* state = find_state<torch::optim::AdamWParamState>(optimizer.state(), p);
    if (!state) {
      auto fresh = std::make_unique<torch::optim::AdamWParamState>();
      fresh->step(0);
      fresh->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
      fresh->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
      state = &add_state(optimizer.state(), p, std::move(fresh));
    }
    state->step(state->step() + 1);
    Lists& lists = by_step[state->step()];
    lists.params.push_back(p);
    lists.grads.push_back(p.grad());
    lists.exp_avg.push_back(state->exp_avg());
    lists.exp_avg_sq.push_back(state->exp_avg_sq());
  }
  if (decayed.empty()) return;
  if (options.weight_decay() != 0) at::_foreach_mul_(decayed, 1 - lr * options.weight_decay());
  for (auto& [step, lists] : by_step) {
    const double correction1 = 1 - std::pow(beta1, static_cast<double>(step));
    const double correction2 = 1 - std::pow(beta2, static_cast<double>(step));
    at::_foreach_mul_(lists.exp_avg, beta1);
    at::_foreach_add_(lists.exp_avg, lists.grads, 1 - beta1);
    at::_foreach_mul_(lists.exp_avg_sq, beta2);
    at::_foreach_addcmul_(lists.exp_avg_sq, lists.grads, lists.grads, 1 - beta2);
    std::vector<at::Tensor> denominators = at::_foreach_sqrt(lists.exp_avg_sq);
    at::_foreach_div_(denominators, std::sqrt(correction2));
    at::_foreach_add_(denominators, options.eps());
    at::_foreach_addcdiv_(lists.params, lists.exp_avg, denominators, -lr / correction1);
  }
}

}  // namespace

std::vector<at::Tensor> defined_gradients(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  return grads;
}

at::Tensor gradient_norm(const std::vector<at::Tensor>& grads) {
  if (grads.empty()) return at::zeros({}, at::kFloat);
  const std::vector<at::Tensor> norms = at::_foreach_norm(grads, 2);
  return norms.size() == 1 ? norms.front() : at::stack(norms).norm(2);
}

void clip_gradients(std::vector<at::Tensor>& grads, double norm, double max_norm) {
  if (!std::isfinite(norm) || grads.empty()) return;
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient < 1) at::_foreach_mul_(grads, coefficient);
}

void foreach_step(torch::optim::Optimizer& optimizer) {
  at::NoGradGuard no_grad;
  if (auto* sgd = dynamic_cast<torch::optim::SGD*>(&optimizer)) {
    bool plain = true;
    for (const auto& group : sgd->param_groups()) {
      const auto& o = static_cast<const torch::optim::SGDOptions&>(group.options());
      plain = plain && o.nesterov() && o.momentum() != 0;
    }
    if (plain) {
      for (auto& group : sgd->param_groups()) sgd_group(*sgd, group);
      return;
    }
  } else if (auto* adamw = dynamic_cast<torch::optim::AdamW*>(&optimizer)) {
    bool plain = true;
    for (const auto& group : adamw->param_groups())
      plain = plain && !static_cast<const torch::optim::AdamWOptions&>(group.options()).amsgrad();
    if (plain) {
      for (auto& group : adamw->param_groups()) adamw_group(*adamw, group);
      return;
    }
  }
  optimizer.step();
}

double unscale_clip_step(torch::optim::Optimizer& optimizer, const std::vector<at::Tensor>& params,
                         double loss_scale, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads = defined_gradients(params);
  if (loss_scale != 1 && !grads.empty()) at::_foreach_mul_(grads, 1.0 / loss_scale);
  const double norm = gradient_norm(grads).item<double>();
  if (!std::isfinite(norm)) return norm;
  clip_gradients(grads, norm, max_norm);
  foreach_step(optimizer);
  return norm;
}

void zero_gradients(torch::optim::Optimizer& optimizer) {
  std::vector<at::Tensor> grads;
  for (const auto& group : optimizer.param_groups())
    for (const auto& g : defined_gradients(group.params())) grads.push_back(g);
  if (!grads.empty()) at::_foreach_zero_(grads);
}

}  // namespace detkit::train
