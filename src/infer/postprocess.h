// From the detector's raw head outputs to detections: decoding, confidence filtering, class-aware NMS,
// and the map from the letterboxed network input back to the original image.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace detkit {

namespace models {
struct LevelOutput;  // models/yolo.h
}

// Every anchor's box and class probabilities, in float32 whatever the head's dtype.
struct DecodedPredictions {
  at::Tensor boxes;          // [B, A, 4] xyxy in pixels of the network input
  at::Tensor probabilities;  // [B, A, C] sigmoid of the class logits
};

// Decodes the head (anchors level by level, row-major, as the loss sees them): each side's distance is the
// expectation over its reg_max bins, in units of the level's stride. Needs the outputs as
// models::flatten_head describes them, with 4 * reg_max box channels. Throws UsageError otherwise.
DecodedPredictions decode_predictions(const std::vector<models::LevelOutput>& outputs, int64_t reg_max = 16);

struct PostprocessOptions {
  double conf_threshold = 0.001;  // a (box, class) pair is a candidate when its probability is strictly above
  double iou_threshold = 0.7;     // NMS suppresses a box of the same class overlapping a kept one by more
  int64_t max_det = 300;          // detections kept per image (the highest-scoring)
  bool multi_label = true;        // every class above the threshold (YOLOv8 validation); false: the best class only
  int64_t max_candidates = 30000; // candidates per image entering NMS, the highest-scoring (bounds NMS's cost)
  int64_t reg_max = 16;           // distance bins per box side, as the head was built
};

// One image's detections, on the CPU, in decreasing score order.
struct Detections {
  at::Tensor boxes;    // [K, 4] float32 xyxy in pixels of the network input
  at::Tensor scores;   // [K] float32
  at::Tensor classes;  // [K] int64, 0-based
};

// Decodes the outputs and, per image, keeps the candidates above conf_threshold (one per class above it
// for multi_label, else the anchor's best class), the max_candidates best of them, then batched_nms
// (infer/nms.h: torchvision semantics) and the max_det best survivors. K may be 0.
// Throws UsageError for outputs decode_predictions refuses, thresholds outside [0, 1], or max_det or
// max_candidates below 1.
std::vector<Detections> postprocess(const std::vector<models::LevelOutput>& outputs, const PostprocessOptions& options = {});
// The same on already decoded predictions.
std::vector<Detections> postprocess(const DecodedPredictions& decoded, const PostprocessOptions& options = {});

// Maps boxes [K, 4] xyxy from a letterboxed network input back to the original orig_w x orig_h image and
// clips them to it. scale, pad_x and pad_y are augment::Letterboxed's fields. letterbox() resizes the
// image to round(orig * scale) pixels per side and scales boxes by that rounded size over the original
// one, which can differ from `scale` in the last digits; this inverts exactly that, so a box survives
// the round trip to float precision. Returns float32 on the boxes' device. Throws UsageError for a
// non-positive scale or size, or boxes not [K, 4].
at::Tensor unletterbox(const at::Tensor& boxes, double scale, int64_t pad_x, int64_t pad_y, int64_t orig_w,
                       int64_t orig_h);

}  // namespace detkit
