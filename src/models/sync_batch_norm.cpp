#include "models/sync_batch_norm.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/modules/batchnorm.h>

#include <cstdint>

#include "core/error.h"

namespace detkit::models {

namespace {

// Autograd node for sum_over_ranks. The RankSum is passed as its address: saved_data holds IValues only,
// and the trainer that owns the RankSum outlives every backward pass.
struct SumOverRanks : public torch::autograd::Function<SumOverRanks> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t ranks_address) {
    ctx->saved_data["ranks"] = ranks_address;
    at::Tensor y = x.detach().contiguous().clone();
    reinterpret_cast<RankSum*>(static_cast<std::intptr_t>(ranks_address))->sum_(y);
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* ranks = reinterpret_cast<RankSum*>(static_cast<std::intptr_t>(ctx->saved_data["ranks"].toInt()));
    at::Tensor g = grads[0].contiguous().clone();
    ranks->sum_(g);
    return {g, at::Tensor()};
  }
};

}  // namespace

at::Tensor sum_over_ranks(const at::Tensor& t, RankSum& ranks) {
  return SumOverRanks::apply(t, static_cast<int64_t>(reinterpret_cast<std::intptr_t>(&ranks)));
}

at::Tensor sync_batch_norm(const at::Tensor& x, torch::nn::BatchNorm2dImpl& bn, RankSum& ranks) {
  DETKIT_ASSERT(x.dim() == 4, "sync_batch_norm needs [N, C, H, W]");
  const int64_t channels = x.size(1);
  const at::Tensor xf = x.to(at::kFloat);
  // One collective (and one more for the gradient) per layer: each rank's channel sums, its squared
  // deviations from its own mean (M2), n * mean^2 and its value count. Chan et al.'s combination:
  // M2 = sum(M2_r) + sum(n_r mean_r^2) - N mean^2, where only the between-rank part can cancel.
  const double local_n = static_cast<double>(x.numel() / channels);
  const at::Tensor local_sum = xf.sum({0, 2, 3});
  const at::Tensor local_mean = local_sum / std::max(local_n, 1.0);
  const at::Tensor local_m2 = (xf - local_mean.view({1, channels, 1, 1})).pow(2).sum({0, 2, 3});
  const at::Tensor local = at::cat({local_sum, local_m2, local_mean * local_sum, at::full({1}, local_n, xf.options())});
  const at::Tensor global = sum_over_ranks(local, ranks);
  const at::Tensor count = global.narrow(0, 3 * channels, 1).detach();
  const double n = count.item<double>();
  if (n < 2)
    throw UsageError({"batch normalisation needs more than one value per channel in training",
                      "the global batch is a single image of a single pixel at some layer",
                      "train with a larger batch or image size"});
  const at::Tensor mean = global.narrow(0, 0, channels) / count;
  const at::Tensor m2 = global.narrow(0, channels, channels) + global.narrow(0, 2 * channels, channels) - mean * mean * count;
  const at::Tensor var = m2.clamp_min(0) / count;
  const at::Tensor centered = xf - mean.view({1, channels, 1, 1});
  const double eps = bn.options.eps();
  at::Tensor scale = (var + eps).rsqrt();
  at::Tensor shift;
  if (bn.options.affine()) {
    scale = scale * bn.weight;
    shift = bn.bias.view({1, channels, 1, 1});
  }
  at::Tensor y = centered * scale.view({1, channels, 1, 1});
  if (shift.defined()) y = y + shift;
  if (bn.options.track_running_stats()) {
    at::NoGradGuard no_grad;
    const double momentum = bn.options.momentum().value_or(0.1);
    bn.running_mean.mul_(1 - momentum).add_(mean.detach().to(bn.running_mean.scalar_type()), momentum);
    bn.running_var.mul_(1 - momentum).add_((var.detach() * (n / (n - 1))).to(bn.running_var.scalar_type()), momentum);
    bn.num_batches_tracked.add_(1);
  }
  return y.to(x.scalar_type());
}

}  // namespace detkit::models
