// Non-maximum suppression for detections: which boxes survive, class by class.
#pragma once

#include <ATen/core/Tensor.h>

namespace detkit {

// Class-aware NMS with torchvision.ops.batched_nms's semantics, so detections equal what a PyTorch
// pipeline keeps:
//   - boxes [N, 4] xyxy (float), scores [N], classes [N] (integer); boxes of different classes never
//     suppress each other;
//   - a box is suppressed by a higher-scoring kept box of its class whose IoU with it is > iou_threshold
//     (strictly greater), with IoU computed in the boxes' precision, areas as (x2 - x1) * (y2 - y1);
//   - returns the kept indices (int64, on the CPU) in decreasing score order.
// It follows torchvision's two code paths, so even the rounding agrees: up to 4000 boxes, one NMS over
// boxes shifted apart by class ("coordinate trick"); above that, one NMS per class.
// Needs: N equal in all three tensors; iou_threshold in [0, 1]. Throws UsageError otherwise. Runs on
// the CPU (inputs on another device are copied).
at::Tensor batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& classes, double iou_threshold);

// Plain NMS over all boxes (one class). Same semantics and return value.
at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold);

}  // namespace detkit
