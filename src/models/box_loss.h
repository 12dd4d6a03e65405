// The box side of the detector's loss: anchor points, distribution decoding, CIoU and distribution
// focal loss. Plain tensor functions, no state, usable on any device.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>
#include <vector>

namespace detkit::models {

// Anchor points at cell centres (x + 0.5, y + 0.5) in grid units for grids [H, W] listed per level, and
// each point's stride: ([A, 2], [A, 1]) with A = sum of H * W, level by level, row-major; float32 on `device`.
std::pair<at::Tensor, at::Tensor> make_anchors(const std::vector<std::vector<int64_t>>& grids,
                                               const std::vector<int64_t>& strides,
                                               const c10::Device& device = c10::Device(c10::kCPU));

// Expected distance of each side from per-bin logits: logits [..., 4 * bins] -> distances [..., 4].
at::Tensor decode_distribution(const at::Tensor& logits, int64_t bins);

// Distances (left, top, right, bottom) from anchor points to xyxy boxes, and back. bbox_to_distance
// clamps to [0, max_distance] so a target always lies inside the bins.
at::Tensor distance_to_bbox(const at::Tensor& distances, const at::Tensor& anchor_points);
at::Tensor bbox_to_distance(const at::Tensor& anchor_points, const at::Tensor& boxes, double max_distance);

// Complete IoU of matching rows of two [N, 4] xyxy tensors: IoU minus the normalised centre distance
// minus the aspect-ratio consistency term (Zheng et al., 2020). Returns [N].
at::Tensor complete_iou(const at::Tensor& a, const at::Tensor& b, double eps = 1e-7);

// Distribution focal loss (Li et al., 2020): each continuous target distance t in [0, bins - 1) is
// learned as the two bins around it, weighted by closeness. logits [N, 4, bins], targets [N, 4];
// returns the mean over the 4 sides, [N].
at::Tensor distribution_focal_loss(const at::Tensor& logits, const at::Tensor& targets);

}  // namespace detkit::models
