#include "core/run_config.h"

#include "core/error.h"
#include "core/text.h"

namespace detkit {

void AugmentConfig::visit(ConfigVisitor& v) {
  v.field("hsv_h", hsv_h, "hue jitter, fraction of the hue circle", {0, 0.5});
  v.field("hsv_s", hsv_s, "saturation jitter, fraction", {0, 1});
  v.field("hsv_v", hsv_v, "value (brightness) jitter, fraction", {0, 1});
  v.field("degrees", degrees, "random rotation range, +/- degrees", {0, 180});
  v.field("translate", translate, "random translation, fraction of the image size", {0, 0.9});
  v.field("scale", scale, "random scale gain, +/- fraction", {0, 0.95});
  v.field("shear", shear, "random shear, +/- degrees", {0, 45});
  v.field("flipud", flipud, "probability of a vertical flip", {0, 1});
  v.field("fliplr", fliplr, "probability of a horizontal flip", {0, 1});
  v.field("mosaic", mosaic, "probability of a 4-image mosaic", {0, 1});
  v.field("mixup", mixup, "probability of mixup", {0, 1});
  v.field("crop", crop, "probability of a random crop (when no mosaic)", {0, 1});
  v.field("crop_coverage", crop_coverage, "a random crop keeps at least this fraction of one box", {0, 1});
  v.field("brightness", brightness, "random brightness offset, +/- fraction of full scale", {0, 1});
  v.field("contrast", contrast, "random contrast gain, +/- fraction", {0, 1});
  v.field("close_mosaic", close_mosaic, "switch mosaic off for the last N epochs", {0, {}});
  v.field("multi_scale", multi_scale,
          "multi-scale training: each batch resized to imgsz x a random factor in [1 - this, 1 + this], a multiple "
          "of 32 (0: off; 0.5 is common)",
          {0, 0.9});
  v.field("min_visible", min_visible, "drop a box when less than this fraction of it stays visible", {0, 1});
  v.field("min_box_px", min_box_px, "drop a box smaller than this many pixels on a side", {0, {}});
}

void RunConfig::visit(ConfigVisitor& v) {
  v.field("version", version, "config schema version", {1, kRunConfigVersion});
  v.field("data", data, "dataset: a COCO JSON, a YOLO data.yaml or a VOC directory");
  v.field("data_format", data_format, "dataset layout", {"auto", "coco", "yolo", "voc"});
  v.field("model", model, "model family and scale", {"yolo-n", "yolo-s", "yolo-m"});
  v.field("stride4", stride4, "add a stride-4 output level for very small objects");
  v.field("weights", weights,
          "start from these weights: a detkit checkpoint or run, a PyTorch state_dict, or an Ultralytics YOLOv8 "
          "n/s/m .pt (see detkit import); \"\": from scratch");
  v.field("freeze", freeze, "layers not trained: backbone, or N (the first N layers in YOLOv8 numbering); \"\": none");
  v.field("imgsz", imgsz, "training and evaluation image size in pixels (multiple of 32)", {32, 8192});
  v.field("epochs", epochs, "training epochs", {1, 100000});
  v.field("time_limit", time_limit, "minutes: fit the run (epochs, schedule) into this time (0: no limit)", {0, 1e6});
  v.field("batch", batch, auto_batch,
          "images per optimizer micro-batch; auto: the largest that fits memory_fraction, from a memory profile "
          "(capped at nominal_batch)",
          {1, 4096});
  v.field("nominal_batch", nominal_batch, "effective batch reached by gradient accumulation", {1, 65536});
  v.field("memory_fraction", memory_fraction, "batch: auto's target share of GPU memory, or of available RAM on the CPU",
          {0.05, 1});
  v.field("workers", workers, "data-loader threads (0: one per core)", {0, 256});
  v.field("device", device, "cpu, cuda, cuda:N or auto");
  v.field("threads", threads, "intra-op CPU threads (0: one per core)", {0, 1024});
  v.field("seed", seed, "seed for every random number generator", {0, {}});
  v.field("amp", amp, "mixed precision on CUDA (bf16 where supported, else fp16)");
  v.field("channels_last", channels_last, "weights and images in NHWC memory order (faster convolutions)");
  v.field("cudnn_benchmark", cudnn_benchmark,
          "on a GPU, cuDNN times its convolution algorithms for each new input shape and keeps the fastest "
          "(false: its heuristic choice, the same every run)");
  v.field("optimizer", optimizer, "optimizer", {"sgd", "adamw"});
  v.field("lr0", lr0, lr0_auto,
          "initial learning rate (0.01; 0.002 when starting from weights); auto: from a learning-rate range test (see lr_find)",
          {0, 10});
  v.field("lrf", lrf, "final learning rate as a fraction of lr0", {0, 1});
  v.field("momentum", momentum, "SGD momentum / Adam beta1", {0, 1});
  v.field("weight_decay", weight_decay, "weight decay (not applied to norms and biases)", {0, 1});
  v.field("warmup_epochs", warmup_epochs, "linear warmup length in epochs (3; 1 when starting from weights)", {0, 1000});
  v.field("warmup_momentum", warmup_momentum, "SGD momentum / Adam beta1 at the start of warmup", {0, 1});
  v.field("warmup_bias_lr", warmup_bias_lr, "bias learning rate at the start of warmup", {0, 10});
  v.field("schedule", schedule, "learning-rate decay after warmup", {"cosine", "linear"});
  v.field("ema", ema, "keep an exponential moving average of the weights");
  v.field("ema_decay", ema_decay, "EMA decay", {0, 1});
  v.field("grad_clip", grad_clip, "clip the gradient norm to this (0: off)", {0, {}});
  v.field("box_gain", box_gain, "weight of the CIoU box loss", {0, 100});
  v.field("cls_gain", cls_gain, "weight of the classification loss", {0, 100});
  v.field("dfl_gain", dfl_gain, "weight of the distribution focal loss", {0, 100});
  v.field("eval_interval", eval_interval, "evaluate every N epochs", {1, {}});
  v.field("val_conf", val_conf, "confidence threshold of validation predictions", {0, 1});
  v.field("val_iou", val_iou, "NMS IoU threshold of validation predictions", {0, 1});
  v.field("skip_limit", skip_limit, "consecutive non-finite steps that trigger a rollback", {1, {}});
  v.field("max_rollbacks", max_rollbacks, "rollbacks (each lowering the learning rate) before training stops", {0, 100});
  v.field("oom_retries", oom_retries, "times a step may halve its micro-batch after running out of memory", {0, 12});
  v.field("gpu_memory_fraction", gpu_memory_fraction, "cap on this process's share of GPU memory (0: no cap)", {0, 1});
  v.field("inject_oom", inject_oom, "testing: simulate out-of-memory at these batches (e.g. \"7,30\")");
  v.field("inject_oom_backward", inject_oom_backward,
          "testing: simulate out-of-memory halfway through the backward pass at these batches");
  v.field("inject_nonfinite", inject_nonfinite, "testing: make the loss NaN at these batches (e.g. \"12\")");
  v.field("inject_rank", inject_rank, "testing: the rank where inject_oom / inject_nonfinite fire (-1: every rank)", {-1, {}});
  v.field("sync_bn", sync_bn, "distributed: BatchNorm statistics over all ranks' batches (SyncBatchNorm)");
  v.field("dist_backend", dist_backend,
          "distributed: the collectives' backend: auto (NCCL when training on GPUs and this build has it, else Gloo), "
          "gloo or nccl",
          {"auto", "gloo", "nccl"});
  v.field("dist_overlap", dist_overlap,
          "distributed: average gradients bucket by bucket while backward runs, each as soon as its gradients are "
          "complete (false: all after backward)");
  v.field("dist_bucket_mb", dist_bucket_mb,
          "distributed: MiB of gradients per bucket averaged during backward (smaller: earlier start, more collectives)",
          {0.01, 1024});
  v.field("dist_timeout", dist_timeout, "distributed: seconds a rank waits for the others (joining, a step, validation)",
          {1, 86400});
  v.field("patience", patience, "stop after N evaluations without improvement (0: never)", {0, {}});
  v.field("cache", cache,
          "keep images in RAM: none (decode every epoch), ram (at training size: least memory, resampled twice), "
          "decoded (as decoded: each image decoded once, the same batches as none), auto (decoded when that takes at "
          "most a quarter of the available RAM, else none)",
          {"none", "ram", "decoded", "auto"});
  v.field("project", project, "directory that holds run directories");
  v.field("name", name, "run directory name inside project");
  v.section("augment", "data augmentation", augment);
  v.section("lr_find", "learning-rate range test (detkit lr-find, lr0: auto)", lr_find);
}

void LrFindConfig::visit(ConfigVisitor& v) {
  v.field("steps", steps, "optimizer steps of the test (it stops early when the loss diverges)", {5, 100000});
  v.field("start", start, "first learning rate", {1e-12, 100});
  v.field("end", end, "last learning rate (rates grow geometrically in between)", {1e-12, 100});
  v.field("smoothing", smoothing, "weight of the past in the loss's exponential moving average", {0, 0.999});
  v.field("diverge", diverge, "stop when the smoothed loss exceeds this multiple of its minimum", {1.1, 1000});
  v.field("divisor", divisor, "suggestion: the rate of the lowest smoothed loss divided by this", {1, 1000});
}

namespace {
// Checks that involve more than one key, or a constraint a range cannot express.
void validate(const RunConfig& c) {
  if (c.imgsz % 32 != 0)
    throw ConfigError({cat("config key 'imgsz' must be a multiple of 32 (the largest model stride); got ", c.imgsz), "",
                       cat("use imgsz=", (c.imgsz + 31) / 32 * 32)});
  if (!c.auto_batch && c.nominal_batch < c.batch)
    throw ConfigError({cat("config key 'nominal_batch' (", c.nominal_batch, ") is smaller than 'batch' (", c.batch, ")"),
                       "gradient accumulation can only grow the effective batch",
                       cat("set nominal_batch to at least ", c.batch)});
  const bool device_ok = c.device == "auto" || c.device == "cpu" || c.device == "cuda" ||
                         (starts_with(c.device, "cuda:") && parse_int(c.device.substr(5)).value_or(-1) >= 0);
  if (!device_ok)
    throw ConfigError({cat("config key 'device' must be cpu, cuda, cuda:N or auto; got '", c.device, "'"), "",
                       "use device=cuda:0 for the first GPU or device=cpu"});
  if (c.lr_find.start >= c.lr_find.end)
    throw ConfigError({cat("config key 'lr_find.start' (", c.lr_find.start, ") must be below 'lr_find.end' (", c.lr_find.end, ")"),
                       "the range test raises the learning rate from start to end",
                       "use e.g. lr_find.start=1e-6 lr_find.end=1"});
  const bool freeze_ok = c.freeze.empty() || c.freeze == "none" || c.freeze == "backbone" ||
                         (parse_int(c.freeze).value_or(-1) >= 0 && parse_int(c.freeze).value_or(-1) <= 23);
  if (!freeze_ok)
    throw ConfigError({cat("config key 'freeze' must be backbone, a layer count 0-23 or empty; got '", c.freeze, "'"), "",
                       "use freeze=backbone (the first 10 layers) or freeze=N"});
  if (c.name.empty() || c.name.find('/') != std::string::npos)
    throw ConfigError({cat("config key 'name' must be a single directory name; got '", c.name, "'"), "",
                       "put parent directories in 'project' instead"});
}
}  // namespace

RunConfig resolve_run_config(const std::string& config_file, const std::vector<std::string>& overrides) {
  RunConfig config;
  // -1 marks "not given", so the fine-tuning defaults apply only to what the user left unset.
  config.lr0 = -1;
  config.warmup_epochs = -1;
  const ConfigRoot root = config_root(config);
  if (!config_file.empty()) apply_config_file(root, config_file);
  apply_config_overrides(root, overrides);
  const RunConfig defaults;
  if (config.lr0 < 0) config.lr0 = config.weights.empty() ? defaults.lr0 : kFinetuneLr0;
  if (config.warmup_epochs < 0) config.warmup_epochs = config.weights.empty() ? defaults.warmup_epochs : kFinetuneWarmupEpochs;
  validate(config);
  return config;
}

fs::path write_resolved_config(const fs::path& run_dir, RunConfig config) {
  const fs::path path = run_dir / "config.yaml";
  write_file_atomic(path, "# resolved detkit run configuration (defaults < config file < overrides)\n" +
                              config_to_yaml(config_root(config)));
  return path;
}

}  // namespace detkit
