// The configuration of a training run: every knob with its default, range and a one-line meaning.
// Loaded from YAML plus key=value overrides (core/config.h); written, resolved, into each run directory.
// Torch-free, so `detkit config` and the docs work without LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"

namespace detkit {

constexpr int64_t kRunConfigVersion = 1;

struct AugmentConfig {
  double hsv_h = 0.015;       // hue jitter, fraction of the hue circle
  double hsv_s = 0.7;         // saturation jitter, fraction
  double hsv_v = 0.4;         // value (brightness) jitter, fraction
  double degrees = 0.0;       // random rotation range, +/- degrees
  double translate = 0.1;     // random translation, fraction of the image size
  double scale = 0.5;         // random scale gain, +/- fraction
  double shear = 0.0;         // random shear, +/- degrees
  double flipud = 0.0;        // probability of a vertical flip
  double fliplr = 0.5;        // probability of a horizontal flip
  double mosaic = 1.0;        // probability of a 4-image mosaic
  double mixup = 0.0;         // probability of mixup
  double crop = 0.0;          // probability of a random crop (when no mosaic)
  double crop_coverage = 0.5; // a random crop keeps at least this fraction of one box
  double brightness = 0.0;    // random brightness offset, +/- fraction of full scale
  double contrast = 0.0;      // random contrast gain, +/- fraction
  int64_t close_mosaic = 10;  // switch mosaic off for the last N epochs
  double multi_scale = 0.0;   // each training batch resized to imgsz x [1 - this, 1 + this] (multiple of 32; 0: off)
  double min_visible = 0.2;   // drop an augmented box when less than this fraction of it stays visible
  double min_box_px = 2.0;    // drop an augmented box smaller than this many pixels on a side

  void visit(ConfigVisitor& v);
};

// The learning-rate range test (`detkit lr-find`, and `lr0: auto` before training; docs/lr-find.md).
struct LrFindConfig {
  int64_t steps = 100;        // optimizer steps of the test (it stops early when the loss diverges)
  double start = 1e-6;        // first learning rate
  double end = 1.0;           // last learning rate (rates grow geometrically in between)
  double smoothing = 0.9;     // weight of the past in the loss's exponential moving average
  double diverge = 4.0;       // stop when the smoothed loss exceeds this multiple of its minimum
  double divisor = 10.0;      // suggestion: the rate of the lowest smoothed loss divided by this

  void visit(ConfigVisitor& v);
};

// Fine-tuning defaults: when `weights` is set and lr0 / warmup_epochs are not, the run starts from trained
// features, so a lower rate and a shorter warmup keep it from washing them out.
constexpr double kFinetuneLr0 = 0.002;
constexpr double kFinetuneWarmupEpochs = 1.0;

struct RunConfig {
  int64_t version = kRunConfigVersion;  // config schema version
  std::string data = "";                // dataset: a COCO JSON, a YOLO data.yaml or a VOC directory
  std::string data_format = "auto";     // dataset layout
  std::string model = "yolo-n";         // model family and scale
  bool stride4 = false;                 // add a stride-4 output level for very small objects
  std::string weights = "";             // start from these weights (detkit, PyTorch state_dict or Ultralytics YOLOv8 file)
  std::string freeze = "";              // layers not trained: backbone, or N (the first N, YOLOv8 numbering); "": none
  int64_t imgsz = 640;                  // training and evaluation image size (pixels, multiple of 32)
  int64_t epochs = 100;                 // training epochs
  double time_limit = 0;                // minutes: fit the run (epochs, schedule) into this time (0: no limit)
  int64_t batch = 16;                   // images per optimizer micro-batch (`auto`: sets auto_batch)
  bool auto_batch = false;              // batch: auto, chosen from a memory profile before training (docs/plan.md)
  int64_t nominal_batch = 64;           // effective batch reached by gradient accumulation
  double memory_fraction = 0.8;         // batch: auto's target share of GPU memory (or of available RAM on the CPU)
  int64_t workers = 0;                  // data-loader threads (0: one per core)
  std::string device = "auto";          // cpu, cuda, cuda:N or auto
  int64_t threads = 0;                  // intra-op CPU threads (0: one per core)
  int64_t seed = 0;                     // seed for every random number generator
  bool amp = true;                      // mixed precision on CUDA (bf16 where supported, else fp16)
  bool channels_last = true;            // weights and images in NHWC memory order (faster convolutions)
  bool cudnn_benchmark = true;          // on a GPU, cuDNN times its convolution algorithms per shape, keeps the fastest
  std::string optimizer = "sgd";        // optimizer
  double lr0 = 0.01;                    // initial learning rate (`auto`: sets lr0_auto)
  bool lr0_auto = false;                // lr0: auto, chosen by a learning-rate range test before training
  double lrf = 0.01;                    // final learning rate as a fraction of lr0
  double momentum = 0.937;              // SGD momentum / Adam beta1
  double weight_decay = 0.0005;         // weight decay (not applied to norms and biases)
  double warmup_epochs = 3.0;           // linear warmup length in epochs
  double warmup_momentum = 0.8;         // SGD momentum / Adam beta1 at the start of warmup
  double warmup_bias_lr = 0.1;          // bias learning rate at the start of warmup (falls to the schedule's)
  std::string schedule = "cosine";      // learning-rate decay after warmup
  bool ema = true;                      // keep an exponential moving average of the weights
  double ema_decay = 0.9999;            // EMA decay
  double grad_clip = 10.0;              // clip the gradient norm to this (0: off)
  double box_gain = 7.5;                // weight of the CIoU box loss
  double cls_gain = 0.5;                // weight of the classification loss
  double dfl_gain = 1.5;                // weight of the distribution focal loss
  int64_t eval_interval = 1;            // evaluate every N epochs
  double val_conf = 0.001;              // confidence threshold of validation predictions
  double val_iou = 0.7;                 // NMS IoU threshold of validation predictions
  int64_t skip_limit = 3;               // consecutive non-finite steps that trigger a rollback
  int64_t max_rollbacks = 3;            // rollbacks (each lowering the learning rate) before training stops
  int64_t oom_retries = 3;              // times a step may halve its micro-batch after running out of memory
  double gpu_memory_fraction = 0;       // cap on this process's share of GPU memory (0: no cap)
  std::string inject_oom = "";          // testing: simulate out-of-memory at these batches (e.g. "7,30")
  std::string inject_oom_backward = ""; // testing: simulate out-of-memory halfway through backward at these batches
  std::string inject_nonfinite = "";    // testing: make the loss NaN at these batches (e.g. "12")
  int64_t inject_rank = -1;             // testing: the rank where inject_oom / inject_nonfinite fire (-1: every rank)
  bool sync_bn = false;                 // distributed: BatchNorm statistics over all ranks' batches (SyncBatchNorm)
  double dist_timeout = 600;            // distributed: seconds a rank waits for the others (joining, a step, validation)
  std::string dist_backend = "auto";    // distributed: auto (NCCL on GPUs when built with it, else Gloo), gloo or nccl
  bool dist_overlap = true;             // distributed: average gradients in buckets during backward (false: after it)
  double dist_bucket_mb = 4;            // distributed: size of a gradient bucket averaged during backward, MiB
  int64_t patience = 50;                // stop after N evaluations without improvement (0: never)
  std::string cache = "auto";           // keep images in RAM: none, ram (training size), decoded (exact), auto
  std::string project = "runs";         // directory that holds run directories
  std::string name = "train";           // run directory name inside `project`
  AugmentConfig augment;                // data augmentation
  LrFindConfig lr_find;                 // learning-rate range test

  void visit(ConfigVisitor& v);
};

// Defaults < `config_file` (when not empty) < `overrides`. Throws ConfigError.
RunConfig resolve_run_config(const std::string& config_file, const std::vector<std::string>& overrides);

// Writes `config` as commented YAML to DIR/config.yaml, atomically; returns the path written.
fs::path write_resolved_config(const fs::path& run_dir, RunConfig config);

}  // namespace detkit
