// Memory planning for training (`detkit plan`, `batch: auto`; docs/plan.md).
//
// What it does: builds the detector, then measures real forward + backward passes with the real loss
// (models::DetectionLoss on synthetic targets) at two small batches, on the device asked for:
//   - CPU: LibTorch's CPU allocator is wrapped by a counting allocator (CpuAllocationCounter) for the
//     duration of the measurement; --amp is measured under CPU autocast (bfloat16), the stand-in for the
//     half-precision activations of a GPU. Sizes above PlanRequest::profile_imgsz are measured at that
//     size and the per-image part is scaled by area (exact for the feature maps: both sizes are multiples
//     of the largest stride, 32).
//   - CUDA: the caching allocator's peak statistics, under CUDA autocast for --amp (bf16 where the GPU
//     computes it, else fp16), plus the context and allocator overhead measured separately.
// The activations are then modelled as  activations(B) = fixed + B * per_image,  and the persistent state
// (weights, gradients, optimizer state, EMA, the trainer's gradient backup and host copies) is counted
// from the parameters.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/run_config.h"
#include "core/torch_plugin.h"

namespace detkit {
struct Split;
}

namespace detkit::train {

// Counts the bytes LibTorch allocates on the CPU while it lives: installs a wrapper around the CPU
// allocator (c10::SetCPUAllocator at the highest priority, forwarding to the allocator found) and puts
// the original back when destroyed. Thread-safe (intra-op threads allocate too). Memory allocated while a
// counter was installed and freed later is still accounted correctly. Only one counter may live at a time
// (a second throws RunError).
class CpuAllocationCounter {
 public:
  CpuAllocationCounter();
  ~CpuAllocationCounter();
  CpuAllocationCounter(const CpuAllocationCounter&) = delete;
  CpuAllocationCounter& operator=(const CpuAllocationCounter&) = delete;

  int64_t current() const;  // bytes allocated through the wrapper and not yet freed (since ever)
  int64_t peak() const;     // most of current() since construction or the last reset_peak()
  void reset_peak();        // peak = current
};

// One measured training step: what a forward + loss + backward pass adds to memory above the state that
// was already there (weights, gradients, optimizer state), in bytes.
struct StepMeasurement {
  int64_t batch = 0;
  int64_t imgsz = 0;
  uint64_t peak = 0;      // peak allocated during the step minus the allocation before it
  uint64_t reserved = 0;  // CUDA: the caching allocator's reserve after the step (0 on the CPU)
  double seconds = 0;
};

// The shape of what is profiled.
struct ProfileSpec {
  std::string model = "yolo-n";
  int64_t classes = 80;
  bool stride4 = false;          // the model has the stride-4 level
  int64_t imgsz = 640;           // the size measured (callers scale it down first when they want to)
  int64_t boxes_per_image = 8;   // ground-truth boxes in every synthetic image
  bool amp = false;              // autocast: bf16 on the CPU, bf16/fp16 on CUDA as the trainer picks
  bool channels_last = false;    // weights and images in NHWC memory order (models/yolo.h)
  std::string optimizer = "sgd";
  c10::Device device{c10::kCPU};
  uint64_t seed = 0;
};

// Builds the model once and measures steps at each of `batches` (in order, after one warm-up step at the
// first). Needs batches >= 1. Throws OutOfMemoryError when a step does not fit.
std::vector<StepMeasurement> measure_steps(const ProfileSpec& spec, const std::vector<int64_t>& batches);

// The speed of the training step alone, without the data pipeline: `steps` timed steps (after `warmup`
// untimed ones) of forward (under autocast when spec.amp), loss, backward, gradient clipping, an SGD step
// and the EMA update, on one batch of synthetic images and boxes that stays on the device. The rate the
// data pipeline would have to feed (bench/gpu compares `detkit train`'s end-to-end rate with it). Throws
// OutOfMemoryError when a step does not fit, UsageError for imgsz not a multiple of 32.
TrainingSpeedResult measure_training_speed(const ProfileSpec& spec, int64_t batch, int64_t steps, int64_t warmup);

// The full peak of a real training step, as the trainer runs it, from nothing: model, EMA copy,
// optimizer, the forward/backward of `batch` images, gradient clipping, the optimizer step and the EMA
// update (two steps, so the optimizer state exists). For checking plans (tests).
uint64_t measure_training_peak(const ProfileSpec& spec, int64_t batch, bool ema = true);

// The plan (`detkit plan`). Throws UsageError for a bad request, EnvironmentError when a CUDA device is
// asked for and none is visible, OutOfMemoryError when even the profiling batches do not fit.
MemoryPlan plan_memory(const PlanRequest& request);

// The predicted peak of a breakdown at another batch (persistent state + activations + workspace).
// `nominal_batch` decides whether gradients are accumulated (the trainer then keeps a gradient backup).
uint64_t predicted_peak(const MemoryBreakdown& m, int64_t batch, int64_t nominal_batch);

// The batches `batch: auto` chooses from: 1, 2, 4, then multiples of 8.
std::vector<int64_t> batch_candidates(int64_t max_batch);

struct ChooseBatchRequest {
  std::string model = "yolo-n";
  int64_t classes = 80;
  int64_t imgsz = 640;
  bool stride4 = false;
  int64_t max_boxes = 8;          // the most boxes one training sample carries
  int64_t nominal_batch = 64;     // the chosen batch never exceeds it
  bool amp = false;
  bool ema = true;
  std::string optimizer = "sgd";
  int64_t workers = 0;            // loader threads (CPU: its prefetch queue counts; 0: one per core)
  c10::Device device{c10::kCPU};
  double memory_fraction = 0.8;   // of the CUDA device's total memory, or of available RAM on the CPU
  uint64_t memory_bytes = 0;      // the memory to take the fraction of; 0: the device's (tests fake it)
};

struct BatchChoice {
  int64_t batch = 1;
  uint64_t predicted_peak = 0;  // at `batch`
  uint64_t budget = 0;          // memory_fraction x memory
  uint64_t memory = 0;          // what the fraction was taken of
  bool fits = true;             // false: even batch 1 is predicted over the budget (batch 1 chosen)
  MemoryBreakdown breakdown;
};

// Profiles steps shaped like the heaviest sample and picks the largest candidate batch whose predicted
// peak is under the budget (capped at nominal_batch). Throws like plan_memory.
BatchChoice choose_batch(const ChooseBatchRequest& request);

// The trainer's entry: when config.auto_batch is on (and the run is not resumed), chooses the batch for
// the heaviest sample of `train_split` (imgsz, and the most boxes of any image; with mosaic on, the sum
// of the four largest counts) and logs the choice and the margin; otherwise returns config.batch.
int64_t auto_batch(const RunConfig& config, const Split& train_split, int64_t classes, const c10::Device& device,
                   bool resumed);

}  // namespace detkit::train
