#include "train/setup.h"

#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <cmath>

#include "augment/multiscale.h"
#include "core/error.h"
#include "core/log.h"
#include "core/text.h"
#include "core/torch/compat.h"
#include "infer/predict.h"
#include "models/weights_import.h"

namespace detkit::train {

models::YoloDetector make_detector(const RunConfig& config, int64_t classes, const c10::Device& device) {
  models::YoloOptions options;
  options.scale = models::yolo_scale(config.model);
  options.classes = classes;
  options.stride4 = config.stride4;
  models::YoloDetector model(options);
  model->to(device);
  return model;
}

ImportResult prepare_starting_point(models::YoloDetector& model, const RunConfig& config, bool load_weights) {
  ImportResult imported;
  if (load_weights && !config.weights.empty()) {
    imported = models::load_weights_into(model, config.weights, config.model);
    log_info("weights: ", imported.file, " (", imported.source_layout,
             imported.entry.empty() ? "" : ", entry '" + imported.entry + "'", "): ", imported.count("loaded"),
             " tensors loaded, ", imported.count("reshaped"), " reshaped, ", imported.count("new"), " left new, ",
             imported.count("unused"), " unused");
    for (const auto& note : imported.notes) log_info("weights: ", note);
  }
  if (const int64_t frozen = models::apply_freeze(model, config.freeze))
    log_info("freeze=", config.freeze, ": ", frozen, " parameter tensors are not trained");
  return imported;
}

const Split& training_split(const Dataset& dataset, const std::string& name) {
  const Split* split = dataset.find_split(name);
  if (!split || split->images.empty()) {
    std::vector<std::string> names;
    for (const auto& s : dataset.splits) names.push_back(s.name + " (" + std::to_string(s.images.size()) + " images)");
    throw UsageError({cat("the dataset has no training images in split '", name, "'"),
                      cat("its splits: ", names.empty() ? std::string("none") : join(names, ", ")),
                      "name the training split with --train-split, or check the dataset's layout with 'detkit check'"});
  }
  if (dataset.categories.empty())
    throw UsageError({"the dataset declares no classes", "a detector needs at least one class to learn",
                      "declare the classes (COCO 'categories', YOLO 'names', VOC object names)"});
  return *split;
}

int64_t accumulation(int64_t batch, int64_t nominal_batch) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(nominal_batch) / static_cast<double>(batch)));
}

models::LossOptions loss_options(const RunConfig& config) {
  models::LossOptions options;
  options.box_gain = config.box_gain;
  options.cls_gain = config.cls_gain;
  options.dfl_gain = config.dfl_gain;
  return options;
}

OptimizerSetup make_optimizer(models::YoloDetector& model, const RunConfig& config, int64_t accumulate) {
  OptimizerSetup setup;
  std::vector<at::Tensor> weights, norms, biases;
  for (const auto& item : model->named_parameters()) {
    const at::Tensor& p = item.value();
    if (!p.requires_grad()) continue;
    setup.params.push_back(p);
    if (ends_with(item.key(), "bias")) biases.push_back(p);
    else if (p.dim() <= 1) norms.push_back(p);
    else weights.push_back(p);
  }
  const double decay = config.weight_decay * static_cast<double>(config.batch * accumulate) /
                       static_cast<double>(config.nominal_batch);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (config.optimizer == "sgd") {
    auto options = [&](double wd) {
      return std::make_unique<torch::optim::SGDOptions>(
          torch::optim::SGDOptions(config.lr0).momentum(config.momentum).nesterov(true).weight_decay(wd));
    };
    groups.emplace_back(weights, options(decay));
    groups.emplace_back(norms, options(0));
    groups.emplace_back(biases, options(0));
    setup.optimizer = std::make_unique<torch::optim::SGD>(
        groups, torch::optim::SGDOptions(config.lr0).momentum(config.momentum).nesterov(true));
  } else {
    auto options = [&](double wd) {
      return std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(config.lr0).betas({config.momentum, 0.999}).weight_decay(wd));
    };
    groups.emplace_back(weights, options(decay));
    groups.emplace_back(norms, options(0));
    groups.emplace_back(biases, options(0));
    setup.optimizer = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(config.lr0));
  }
  return setup;
}

void set_group_hyperparameters(torch::optim::Optimizer& optimizer, const RunConfig& config, std::size_t group,
                               double lr, double momentum) {
  auto& g = optimizer.param_groups().at(group);
  if (config.optimizer == "sgd") {
    auto& o = static_cast<torch::optim::SGDOptions&>(g.options());
    o.lr(lr);
    o.momentum(momentum);
  } else {
    auto& o = static_cast<torch::optim::AdamWOptions&>(g.options());
    o.lr(lr);
    o.betas({momentum, std::get<1>(o.betas())});
  }
}

augment::LoaderOptions train_loader_options(const RunConfig& config, const c10::Device& device) {
  augment::LoaderOptions lo;
  lo.imgsz = config.imgsz;
  lo.batch = config.batch;
  lo.workers = config.workers;
  lo.seed = static_cast<uint64_t>(config.seed);
  lo.epochs = config.epochs;
  lo.recipe = config.augment;
  lo.cache = config.cache;
  lo.device = device.str();
  // On the CPU the step's own threads need every core (augment/loader.h, on-demand loading); on a GPU
  // the host mostly waits for the device, and batches are best built ahead.
  lo.on_demand = device.is_cpu();
  return lo;
}

TrainingInput training_input(const augment::Batch& batch, const RunConfig& config, const c10::Device& device,
                             int64_t iteration) {
  // Targets stay on the host: the loss pads them there, so the step never waits to read them back.
  TrainingInput input{infer::to_model_input(batch.images, device), batch.targets};
  if (config.augment.multi_scale > 0) {
    const int64_t size = augment::multi_scale_size(static_cast<uint64_t>(config.seed), iteration, config.imgsz,
                                                   config.augment.multi_scale);
    augment::rescale_batch(input.images, input.targets, size);
  }
  if (config.channels_last) input.images = input.images.contiguous(at::MemoryFormat::ChannelsLast);
  return input;
}

Precision choose_precision(const RunConfig& config, const c10::Device& device) {
  Precision p;
  if (!device.is_cuda() || !config.amp) return p;
  p.autocast = true;
  p.bf16 = compat::cuda_supports_bf16(device.index());
  p.loss_scaling = !p.bf16;
  compat::set_cuda_autocast_dtype(p.bf16);
  return p;
}

models::LossTerms forward_loss(models::YoloDetector& model, const models::DetectionLoss& loss, const at::Tensor& images,
                               const at::Tensor& targets, bool autocast) {
  if (autocast) compat::set_autocast(true, true);
  struct AutocastOff {
    bool on;
    ~AutocastOff() {
      if (on) compat::set_autocast(true, false);
    }
  } off{autocast};
  const auto outputs = model->forward(images);
  return loss(outputs, targets, images.size(0));
}

}  // namespace detkit::train
