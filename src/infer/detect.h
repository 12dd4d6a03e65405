// `detkit detect`: a trained checkpoint on image files, in batches, writing
//   OUT/predictions.json   COCO results (image_id = position of the image in `sources` + 1, category_id =
//                          class index + 1) with OUT/images.json mapping ids to files and class names
//   OUT/labels/NAME.txt    YOLO lines "class cx cy w h score" (normalised)
//   OUT/NAME.jpg           the image with boxes, class names and scores drawn (save_images)
// Unreadable images are logged with their file name, counted in DetectResult::failed and skipped. Every
// file is written atomically; inputs are never modified.
#pragma once

#include <c10/core/Device.h>

#include <string>
#include <vector>

#include "core/torch_plugin.h"
#include "infer/predict.h"

namespace detkit::infer {

// A detector ready to predict: a LibTorch checkpoint (or run directory) on the requested device, or an
// exported ONNX file (by its .onnx extension) in OpenCV's DNN module on the CPU.
struct Backend {
  ForwardFn forward;
  c10::Device device{c10::kCPU};
  std::vector<std::string> class_names;
  int64_t imgsz = 0;      // the size it was trained (checkpoint) or exported (ONNX) at
  int64_t reg_max = 16;
  std::string path;       // the file read
  std::string runtime;    // "LibTorch", "OpenCV 4.6.0 DNN"
};

// Throws CheckpointError for a checkpoint that cannot be read; for ONNX files what load_onnx_detector
// throws, and UsageError when `imgsz` (> 0) differs from the file's fixed size.
Backend load_backend(const std::string& model, const std::string& device, int64_t imgsz = 0);

// Throws UsageError (no sources, bad thresholds), DataError (the checkpoint).
DetectResult detect(const DetectRequest& request);

}  // namespace detkit::infer
