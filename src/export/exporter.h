// `detkit export`: a trained detector as a file other runtimes run (LibTorch side of src/export).
//
// The graph is the network as forward() computes it in eval mode (BatchNorm folded), followed by the
// same decoding as infer::decode_predictions, so the file's outputs are the detector's predictions before
// NMS:
//   images  float[B, 3, S, S]  RGB in 0..1, letterboxed (longer side S, centred, padding 114/255)
//   boxes   float[B, A, 4]     x1 y1 x2 y2 in pixels of the input
//   scores  float[B, A, C]     class probabilities (sigmoid)
// With --nms (ONNX only), NonMaxSuppression per image and class follows, output
//   detections float[K, 7]    image index, x1, y1, x2, y2, score, class
// With --raw, every level's raw head outputs follow (box_sN float[B, 4*16, S/N, S/N], cls_sN [B, C, ...]).
#pragma once

#include <cstdint>
#include <string>

#include "core/torch_plugin.h"
#include "export/graph.h"

namespace detkit {
namespace models {
class YoloDetector;  // models/yolo.h
}

namespace exporting {

struct DetectorGraphOptions {
  int64_t imgsz = 640;
  int64_t batch = 1;       // 0: dynamic
  bool raw_outputs = false;
  bool nms = false;
  double conf = 0.25, iou = 0.7;
  int64_t max_det = 300;
  bool half = false;
};

// The detector's export graph. Throws UsageError for an imgsz that is not a positive multiple of 32.
Graph detector_graph(models::YoloDetector& model, const DetectorGraphOptions& options);

// Writes the file and verifies it (see ExportRequest). Throws as TorchPlugin::export_model says.
ExportResult export_model(const ExportRequest& request);

}  // namespace exporting
}  // namespace detkit
