// Batch normalisation over the batches of every rank of a distributed job (SyncBatchNorm): in training, the
// mean and variance of each channel are those of the global batch, so W ranks with batch b normalise
// exactly as one process with batch W*b would, and the running statistics follow the same update.
//
// The collective itself lives in the training layer (train/process_group.h); models only see RankSum.
#pragma once

#include <ATen/core/Tensor.h>

namespace torch::nn {
class BatchNorm2dImpl;
}

namespace detkit::models {

// Sums a tensor over the ranks of a distributed job, in place. Every rank must call it the same number of
// times in the same order with tensors of the same shape and dtype (the process-group contract).
class RankSum {
 public:
  virtual ~RankSum() = default;
  virtual void sum_(at::Tensor& tensor) = 0;
};

// The sum of `t` over the ranks, differentiable: the gradient reaching each rank's input is the sum of
// every rank's output gradient (each rank's loss depends on every rank's input through the sum).
at::Tensor sum_over_ranks(const at::Tensor& t, RankSum& ranks);

// `bn` applied to x [N, C, H, W] in training mode with the statistics of all ranks' x together (one
// collective forward and one backward: each rank's sums and squared deviations from its own mean,
// combined). Updates bn's running mean (biased batch mean), running variance (unbiased, as torch does) and
// num_batches_tracked. The output has x's dtype; statistics are in float32. Needs at least two values per
// channel over all ranks; throws UsageError otherwise.
at::Tensor sync_batch_norm(const at::Tensor& x, torch::nn::BatchNorm2dImpl& bn, RankSum& ranks);

}  // namespace detkit::models
