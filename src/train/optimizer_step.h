// The optimizer step on whole parameter lists (torch side): gradient norm and clipping, SGD (Nesterov)
// and AdamW, and zeroing, each as a few `_foreach` calls instead of a loop over the parameters.
//
// Why: LibTorch's C++ optimizers, clip_grad_norm_ and zero_grad launch several kernels per parameter
// (a yolo-s has ~190 parameter tensors: ~2,000 launches per step for AdamW alone). On a GPU each launch
// costs the host microseconds, so with a small model the host, not the GPU, sets the pace. The foreach
// forms launch one fused kernel per operation over all tensors on a GPU, and on the CPU run the same
// per-tensor arithmetic as the loops they replace.
//
// Contract
//   - foreach_step() takes exactly the step torch::optim::SGD or torch::optim::AdamW would take (same
//     formulas, same operation order; LibTorch 1.13 and 2.x define them alike), reading each group's
//     options and keeping its state in the optimizer's own state map, so optimizer serialisation,
//     checkpoints and resume are unchanged and the two can be mixed step by step. Other optimizer types,
//     and options the trainer never sets (SGD without Nesterov momentum, AdamW with amsgrad), go to
//     optimizer.step() unchanged.
//   - Parameters without a gradient are skipped, as the loops do.
//   - SGD uses the gradients as scratch space: after its step they hold the update direction, not the
//     gradient (the trainer zeroes them next). So SGD allocates nothing after its first step; AdamW, like
//     PyTorch's own foreach AdamW, one temporary the size of the parameters.
//   - gradient_norm() returns the total L2 norm as a 0-dim tensor on the gradients' device (no host
//     synchronisation); clip_gradients() scales them in place by min(1, max_norm / (norm + 1e-6)), the
//     coefficient torch::nn::utils::clip_grad_norm_ uses.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace torch::optim {
class Optimizer;
}

namespace detkit::train {

// The defined gradients of `params`, in order.
std::vector<at::Tensor> defined_gradients(const std::vector<at::Tensor>& params);

// The L2 norm of all `grads` together (0-dim float tensor on their device; an empty list gives 0 on the CPU).
at::Tensor gradient_norm(const std::vector<at::Tensor>& grads);

// Scales `grads` in place by min(1, max_norm / (norm + 1e-6)); nothing when that is 1 or `norm` is not finite.
void clip_gradients(std::vector<at::Tensor>& grads, double norm, double max_norm);

// One optimizer step over every parameter with a gradient (see the contract above).
void foreach_step(torch::optim::Optimizer& optimizer);

// The end of a training step: the gradients of `params` divided by `loss_scale` (fp16 loss scaling; 1:
// none), their norm read back (the one wait for the device), clipped to `max_norm` (infinity: no
// clipping) and, when the norm is finite, foreach_step(). Returns the norm before clipping; a non-finite
// norm means no step was taken. The gradients are left for the caller to zero.
double unscale_clip_step(torch::optim::Optimizer& optimizer, const std::vector<at::Tensor>& params,
                         double loss_scale, double max_norm);

// Zeroes every parameter's gradient in place (gradients stay allocated, as LibTorch 1.13's zero_grad).
void zero_gradients(torch::optim::Optimizer& optimizer);

}  // namespace detkit::train
