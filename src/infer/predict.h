// Running a detector over a validation-mode loader (letterbox only): the shared inner loop of evaluation
// during training, `detkit eval --model` and `detkit detect`.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <array>
#include <cstdint>
#include <functional>
#include <set>
#include <vector>

#include "augment/loader.h"
#include "infer/postprocess.h"
#include "models/yolo.h"

namespace detkit::infer {

// One image's detections in its own pixel coordinates (boxes clipped to the image).
struct ImageDetections {
  int64_t index = -1;                       // the image, as an index into the loader's split
  int64_t width = 0, height = 0;            // the image's displayed size
  std::vector<std::array<float, 4>> boxes;  // xyxy
  std::vector<float> scores;                // decreasing
  std::vector<int64_t> classes;             // 0-based class index
};

struct PredictOptions {
  PostprocessOptions postprocess;
  bool autocast = false;  // CUDA only: run the forward pass under autocast (fp16, or bf16 when `bf16`)
  bool bf16 = false;
  mutable std::set<int64_t> inject_oom;  // testing: simulate out-of-memory at these batch numbers (once each)
};

struct PredictStats {
  int64_t images = 0;
  int64_t skipped = 0;       // unreadable images (logged by the loader)
  double seconds = 0;        // whole loop
  double model_seconds = 0;  // forward + post-processing
  int64_t oom_retries = 0;   // batches redone in smaller passes after running out of memory
};

// Runs `model` (switched to eval mode, no gradients) over every batch of `loader` (which must have
// augment=false, so batches carry their geometry) for epoch 0, and hands each batch's detections to
// `on_batch` in loader order. The model must be on `device`. A batch that runs out of memory is redone in
// passes of half as many images (down to one; later batches keep the smaller passes): the detections are
// the same. Throws what the loader or the model throws, OutOfMemoryError when one image does not fit.
PredictStats predict(models::YoloDetector& model, augment::Loader& loader, const c10::Device& device,
                     const PredictOptions& options,
                     const std::function<void(const augment::Batch&, std::vector<ImageDetections>&)>& on_batch);

// One forward pass of any backend: the network input [b, 3, H, W] float in 0..1 on the device, to every
// anchor's decoded box and class probabilities (LibTorch's model, or an exported ONNX file).
using ForwardFn = std::function<DecodedPredictions(const at::Tensor& input)>;

// The same loop over any backend's forward pass (autocast, when asked, wraps each call).
PredictStats predict(const ForwardFn& forward, augment::Loader& loader, const c10::Device& device, const PredictOptions& options,
                     const std::function<void(const augment::Batch&, std::vector<ImageDetections>&)>& on_batch);

// `model`'s forward pass decoded, as a ForwardFn (it holds the module; the caller sets eval mode).
ForwardFn model_forward(models::YoloDetector model, int64_t reg_max);

// Runs `fn` with `model` in eval mode and restores training mode afterwards, also when `fn` throws.
template <typename Fn>
auto in_eval_mode(models::YoloDetector& model, Fn&& fn) -> decltype(fn()) {
  struct Restore {
    models::YoloDetector& model;
    bool was_training;
    ~Restore() {
      if (was_training) model->train();
    }
  } restore{model, model->is_training()};
  model->eval();
  return fn();
}

// Images [B, 3, H, W] uint8 -> float in 0..1 on `device` (the model's input).
at::Tensor to_model_input(const at::Tensor& images, const c10::Device& device);

}  // namespace detkit::infer
