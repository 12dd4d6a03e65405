// The parts of a training step that the trainer and the learning-rate range test (train/lr_find.h) build
// the same way from a RunConfig, so a range test measures exactly the recipe that training will run:
// the detector, the optimizer with its three parameter groups, the training loader, the precision, and
// one forward/backward pass under autocast.
#pragma once

#include <torch/optim/optimizer.h>

#include <memory>
#include <vector>

#include "augment/loader.h"
#include "core/run_config.h"
#include "core/torch_plugin.h"
#include "data/dataset.h"
#include "models/loss.h"
#include "models/yolo.h"

namespace detkit::train {

// The split to train on, checked: it exists and has images, and the dataset declares classes. Throws
// UsageError naming the dataset's splits, or the missing classes, with the fix.
const Split& training_split(const Dataset& dataset, const std::string& name);

// A fresh detector for `classes` classes as config.model / config.stride4 say, on `device`. The weights
// come from LibTorch's generator: seed it first for a reproducible start.
models::YoloDetector make_detector(const RunConfig& config, int64_t classes, const c10::Device& device);

// The starting point of training (and of the learning-rate range test) on a detector make_detector
// built: weights= loaded when `load_weights` (a resumed run has its own checkpoint), with a one-line log of
// what was loaded, then freeze= applied. Returns the import table (no rows when nothing was loaded).
// Throws as models::load_weights_into and models::apply_freeze do.
ImportResult prepare_starting_point(models::YoloDetector& model, const RunConfig& config, bool load_weights);

// Gradient accumulation that reaches `nominal_batch` with micro-batches of `batch` (>= 1).
int64_t accumulation(int64_t batch, int64_t nominal_batch);
inline int64_t accumulation(const RunConfig& config) { return accumulation(config.batch, config.nominal_batch); }

// The loss's gains from the run configuration.
models::LossOptions loss_options(const RunConfig& config);

struct OptimizerSetup {
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<at::Tensor> params;  // every trainable parameter, in model order (for clipping)
};

// SGD (Nesterov) or AdamW as config.optimizer says, with three parameter groups in this order: weights
// (decayed), normalisation weights and biases (never decayed: decaying them only fights the normalisation
// and the heads' prior). The loss is summed over the batch, so weight decay is scaled to the images per
// optimizer step (config.batch x accumulate / config.nominal_batch).
OptimizerSetup make_optimizer(models::YoloDetector& model, const RunConfig& config, int64_t accumulate);

// Sets the learning rate and the momentum (SGD) or beta1 (AdamW) of parameter group `group`.
void set_group_hyperparameters(torch::optim::Optimizer& optimizer, const RunConfig& config, std::size_t group,
                               double lr, double momentum);

// The training loader's options: the recipe, imgsz, batch, workers, seed, epochs, RAM cache and device.
augment::LoaderOptions train_loader_options(const RunConfig& config, const c10::Device& device);

// The model input of training batch `iteration`: float images (0..1) on `device` and targets on the host
// (the loss pads them there), both resized to the iteration's size when config.augment.multi_scale > 0
// (augment/multiscale.h).
struct TrainingInput {
  at::Tensor images, targets;
};
TrainingInput training_input(const augment::Batch& batch, const RunConfig& config, const c10::Device& device,
                             int64_t iteration);

// Mixed precision on CUDA when config.amp: bf16 where the device has it, else fp16 with loss scaling.
// Nothing on the CPU. choose_precision also sets LibTorch's CUDA autocast dtype.
struct Precision {
  bool autocast = false, bf16 = false, loss_scaling = false;
};
Precision choose_precision(const RunConfig& config, const c10::Device& device);

// The model's forward pass and the loss on `images` (float, on the model's device) and `targets`
// ([M, 6], image index relative to this batch), under autocast when `autocast` (switched off again even
// when something throws). No backward pass.
models::LossTerms forward_loss(models::YoloDetector& model, const models::DetectionLoss& loss, const at::Tensor& images,
                               const at::Tensor& targets, bool autocast);

}  // namespace detkit::train
