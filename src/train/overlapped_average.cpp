#include "train/overlapped_average.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <functional>
#include <mutex>
#include <unordered_set>

#include "core/error.h"
#include "core/torch/compat.h"
#include "train/flat_buckets.h"
#include "train/process_group.h"

namespace detkit::train {

struct OverlappedGradientAverage::State {
  struct Bucket {
    std::vector<std::size_t> members;  // indices into params, in the order they are packed
    std::size_t waiting = 0;           // members whose gradient is not complete yet in this pass
    std::vector<at::Tensor> views;     // the members' gradients in memory order, as packed into flat
    at::Tensor flat;
    PendingSum sum;
  };

  explicit State(ProcessGroup& g) : group(g) {}

  // Called by a parameter's hook (with `mutex` held) when its gradient is complete: starts every bucket,
  // in order, whose gradients are all complete.
  void mark_ready(std::size_t param) {
    if (!armed || ready[param]) return;
    ready[param] = 1;
    --buckets[bucket_of[param]].waiting;
    while (next < buckets.size() && buckets[next].waiting == 0) start(buckets[next++]);
  }

  // Marks the parameters whose gradient accumulator `loss`'s graph does not reach.
  void mark_unused(const at::Tensor& loss) {
    std::unordered_set<const torch::autograd::Node*> reached;
    std::vector<torch::autograd::Node*> stack;
    if (const compat::AutogradNodeRef root = loss.grad_fn()) stack.push_back(root.get());
    while (!stack.empty()) {
      torch::autograd::Node* node = stack.back();
      stack.pop_back();
      if (!reached.insert(node).second) continue;
      for (const torch::autograd::Edge& edge : node->next_edges())
        if (edge.function) stack.push_back(edge.function.get());
    }
    unused = 0;
    for (std::size_t i = 0; i < params.size(); ++i)
      if (!reached.count(accumulators[i].get())) {
        ++unused;
        mark_ready(i);
      }
    walked = true;
  }

  void start(Bucket& b) {
    at::NoGradGuard no_grad;
    b.views.clear();
    for (const std::size_t m : b.members) {
      at::Tensor& p = params[m];
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      b.views.push_back(in_memory_order(p.grad()));
    }
    b.flat = pack_flat(b.views).to(group.device());
    b.sum = group.start_sum_(b.flat);
  }

  void reset_pass() {
    armed = false;
    next = 0;
    std::fill(ready.begin(), ready.end(), 0);
    for (Bucket& b : buckets) {
      b.waiting = b.members.size();
      b.views.clear();
      b.flat = at::Tensor();
      b.sum = PendingSum();
    }
  }

  ProcessGroup& group;
  std::vector<at::Tensor> params;
  std::vector<compat::AutogradNodeRef> accumulators;  // kept alive: they carry the hooks
  std::vector<uintptr_t> hook_keys;
  std::vector<std::size_t> bucket_of;
  std::vector<char> ready;
  std::vector<Bucket> buckets;
  std::size_t next = 0;  // the first bucket not started in this pass
  bool armed = false;
  bool walked = false;   // a loss's graph was walked for unused parameters
  int64_t unused = 0;    // parameters that walk did not reach
  int64_t started_in_backward = 0;
  std::mutex mutex;  // the hooks run on the autograd engine's threads (a GPU's backward has its own)
};

namespace {

// Runs `on_ready` after a gradient accumulator has added this pass's gradient to its parameter's.
struct ReadyHook : torch::autograd::FunctionPostHook {
  explicit ReadyHook(std::function<void()> fn) : on_ready(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    on_ready();
    return outputs;
  }
  std::function<void()> on_ready;
};

}  // namespace

OverlappedGradientAverage::OverlappedGradientAverage(ProcessGroup& group, std::vector<at::Tensor> params,
                                                     int64_t bucket_bytes, int64_t first_bucket_bytes)
    : state_(std::make_shared<State>(group)) {
  State& s = *state_;
  s.params = std::move(params);
  s.bucket_of.assign(s.params.size(), 0);
  s.ready.assign(s.params.size(), 0);
  // Reverse order: the last layers' gradients come first in backward.
  int64_t limit = first_bucket_bytes, filled = 0;
  for (std::size_t i = s.params.size(); i-- > 0;) {
    const at::Tensor& p = s.params[i];
    DETKIT_ASSERT(p.is_leaf() && p.requires_grad(), "gradient averaging needs leaf parameters that require grad");
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool other_kind = !s.buckets.empty() && (s.params[s.buckets.back().members.front()].scalar_type() != p.scalar_type() ||
                                                   s.params[s.buckets.back().members.front()].device() != p.device());
    if (s.buckets.empty() || other_kind || filled + bytes > limit) {
      if (!s.buckets.empty()) limit = bucket_bytes;
      s.buckets.emplace_back();
      filled = 0;
    }
    s.buckets.back().members.push_back(i);
    s.bucket_of[i] = s.buckets.size() - 1;
    filled += bytes;
  }
  s.reset_pass();
  const std::weak_ptr<State> weak = state_;
  for (std::size_t i = 0; i < s.params.size(); ++i) {
    compat::AutogradNodeRef accumulator = torch::autograd::impl::grad_accumulator(s.params[i]);
    DETKIT_ASSERT(static_cast<bool>(accumulator), "a leaf parameter that requires grad has a gradient accumulator");
    s.hook_keys.push_back(accumulator->add_post_hook(std::make_unique<ReadyHook>([weak, i] {
      if (const std::shared_ptr<State> live = weak.lock()) {
      std::lock_guard<std::mutex> lock(live->mutex);
      live->mark_ready(i);
    }
    })));
    s.accumulators.push_back(std::move(accumulator));
  }
}

OverlappedGradientAverage::~OverlappedGradientAverage() {
  for (std::size_t i = 0; i < state_->accumulators.size(); ++i) state_->accumulators[i]->del_post_hook(state_->hook_keys[i]);
}

void OverlappedGradientAverage::arm(const at::Tensor& loss) {
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  s.armed = true;
  // Which parameters a loss reaches depends on the model's structure, not on the batch: a model without
  // unused parameters is walked once. Whether a rank walks or not changes only when its buckets start,
  // never which collectives it joins or in which order, so the ranks need not agree on it (no other
  // collective runs on the group during backward: the constructor's contract).
  if (!s.walked || s.unused > 0) s.mark_unused(loss);
}

void OverlappedGradientAverage::finish() {
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  struct ResetAfter {
    State& s;
    ~ResetAfter() { s.reset_pass(); }
  } reset_after{s};
  s.started_in_backward = 0;
  for (State::Bucket& b : s.buckets) {
    if (b.sum.started()) ++s.started_in_backward;
    else s.start(b);  // in bucket order, after those backward started: the same order on every rank
  }
  at::NoGradGuard no_grad;
  const double scale = 1.0 / static_cast<double>(s.group.world_size());
  for (State::Bucket& b : s.buckets) {
    b.sum.wait();
    b.flat.mul_(scale);
    unpack_flat(b.views, b.flat);
  }
}

int64_t OverlappedGradientAverage::buckets() const { return static_cast<int64_t>(state_->buckets.size()); }
int64_t OverlappedGradientAverage::started_in_backward() const { return state_->started_in_backward; }
int64_t OverlappedGradientAverage::unused_parameters() const { return state_->unused; }

}  // namespace detkit::train
