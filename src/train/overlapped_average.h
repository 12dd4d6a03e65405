// Gradient averaging over the ranks of a distributed job, overlapped with the backward pass, as PyTorch's
// DistributedDataParallel does it, on c10d's own collectives (train/process_group.h):
//
//   - the parameters are cut into buckets in reverse order, the order backward produces their gradients
//     (the first bucket small, so communication starts early);
//   - a hook on each parameter's gradient accumulator marks it ready once its gradient is complete;
//   - a bucket whose gradients are all ready starts its all-reduce at once and backward goes on with the
//     layers below while it runs; buckets start in bucket order on every rank, so the collectives pair up
//     whatever order one rank's gradients come in;
//   - finish() waits for the sums and writes the averages into the gradients.
//
// Parameters the loss does not depend on are found by walking its graph, as DDP's find_unused_parameters
// does, but only once unless there are some.
//
// Unlike DDP, the training step survives a rank that fails part way (out of memory, a non-finite loss):
// finish() starts every bucket the pass did not, so every rank joins the same collectives whatever
// happened, and the caller then discards the step's gradients on every rank together.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace detkit::train {

class ProcessGroup;

class OverlappedGradientAverage {
 public:
  // Buckets of at most `bucket_bytes` (the first at most `first_bucket_bytes`) over `params`: leaf tensors
  // that require grad, the same list (shapes, order) on every rank, on group.device() (else every bucket
  // is copied there inside backward). Registers a hook on each parameter's gradient accumulator, removed
  // by the destructor; `group` must outlive this object. No other collective may run on `group` during
  // an armed backward pass (SyncBatchNorm's would pair with the buckets at different points per rank).
  OverlappedGradientAverage(ProcessGroup& group, std::vector<at::Tensor> params, int64_t bucket_bytes,
                            int64_t first_bucket_bytes = int64_t{1} << 20);
  ~OverlappedGradientAverage();
  OverlappedGradientAverage(const OverlappedGradientAverage&) = delete;
  OverlappedGradientAverage& operator=(const OverlappedGradientAverage&) = delete;

  // The next backward pass, from `loss`, averages the gradients as they become ready. Without arm()
  // backward passes only accumulate (the earlier pieces of a batch split after running out of memory).
  // Parameters `loss` does not depend on count as ready at once (their gradients do not change): the
  // first call walks `loss`'s graph to find them, later calls only when that walk found some.
  void arm(const at::Tensor& loss);
  // Completes the averaging: starts every bucket not started yet (parameters that got no gradient, or a
  // pass that stopped early or never ran), waits for all of them, and replaces each gradient by its mean
  // over the ranks (an undefined gradient becomes a tensor, zero before averaging). Disarms. Every rank
  // must call it the same number of times (the trainer: once per attempt of a batch that averages in
  // backward) whether or not it armed and whatever happened in between. Throws RunError when a rank died
  // or stopped answering.
  void finish();

  int64_t buckets() const;
  // How many buckets the last finish() found started already (by the backward pass, or by arm() when all
  // their parameters are unused): the overlap achieved.
  int64_t started_in_backward() const;
  // Parameters the last walk of a loss's graph found unused.
  int64_t unused_parameters() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace detkit::train
