#include "models/box_loss.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "core/error.h"

namespace detkit::models {

std::pair<at::Tensor, at::Tensor> make_anchors(const std::vector<std::vector<int64_t>>& grids,
                                               const std::vector<int64_t>& strides, const c10::Device& device) {
  DETKIT_ASSERT(grids.size() == strides.size(), "one stride per grid");
  const auto options = at::TensorOptions().dtype(at::kFloat).device(device);
  std::vector<at::Tensor> points, stride_column;
  for (std::size_t level = 0; level < grids.size(); ++level) {
    const int64_t h = grids[level][0], w = grids[level][1];
    const at::Tensor xs = at::arange(w, options) + 0.5, ys = at::arange(h, options) + 0.5;
    const auto mesh = at::meshgrid({ys, xs}, "ij");
    points.push_back(at::stack({mesh[1], mesh[0]}, -1).view({-1, 2}));
    stride_column.push_back(at::full({h * w, 1}, static_cast<double>(strides[level]), options));
  }
  return {at::cat(points), at::cat(stride_column)};
}

at::Tensor decode_distribution(const at::Tensor& logits, int64_t bins) {
  DETKIT_ASSERT(logits.dim() >= 1 && logits.size(-1) == 4 * bins, "logits must end in 4 * bins");
  std::vector<int64_t> split = logits.sizes().vec();
  split.back() = 4;
  split.push_back(bins);
  const at::Tensor probabilities = logits.view(split).softmax(-1);
  return (probabilities * at::arange(bins, logits.options())).sum(-1);
}

at::Tensor distance_to_bbox(const at::Tensor& distances, const at::Tensor& anchor_points) {
  const auto parts = distances.chunk(2, -1);
  return at::cat({anchor_points - parts[0], anchor_points + parts[1]}, -1);
}

at::Tensor bbox_to_distance(const at::Tensor& anchor_points, const at::Tensor& boxes, double max_distance) {
  const auto parts = boxes.chunk(2, -1);
  return at::cat({anchor_points - parts[0], parts[1] - anchor_points}, -1).clamp(0, max_distance);
}

at::Tensor complete_iou(const at::Tensor& a, const at::Tensor& b, double eps) {
  const at::Tensor ax1 = a.select(-1, 0), ay1 = a.select(-1, 1), ax2 = a.select(-1, 2), ay2 = a.select(-1, 3);
  const at::Tensor bx1 = b.select(-1, 0), by1 = b.select(-1, 1), bx2 = b.select(-1, 2), by2 = b.select(-1, 3);
  const at::Tensor aw = ax2 - ax1, ah = ay2 - ay1 + eps, bw = bx2 - bx1, bh = by2 - by1 + eps;
  const at::Tensor inter = (at::minimum(ax2, bx2) - at::maximum(ax1, bx1)).clamp_min(0) *
                           (at::minimum(ay2, by2) - at::maximum(ay1, by1)).clamp_min(0);
  const at::Tensor iou = inter / (aw * ah + bw * bh - inter + eps);
  // Smallest enclosing box: its squared diagonal normalises the squared distance between the centres.
  const at::Tensor cw = at::maximum(ax2, bx2) - at::minimum(ax1, bx1);
  const at::Tensor ch = at::maximum(ay2, by2) - at::minimum(ay1, by1);
  const at::Tensor c2 = cw.pow(2) + ch.pow(2) + eps;
  const at::Tensor rho2 = ((bx1 + bx2 - ax1 - ax2).pow(2) + (by1 + by2 - ay1 - ay2).pow(2)) / 4;
  const at::Tensor v = (4 / (M_PI * M_PI)) * (at::atan(bw / bh) - at::atan(aw / ah)).pow(2);
  at::Tensor alpha;
  {
    at::NoGradGuard no_grad;  // the trade-off weight is treated as a constant, as the paper does
    alpha = v / (v - iou + (1 + eps));
  }
  return iou - (rho2 / c2 + v * alpha);
}

at::Tensor distribution_focal_loss(const at::Tensor& logits, const at::Tensor& targets) {
  const int64_t bins = logits.size(-1);
  const at::Tensor left = targets.to(at::kLong).clamp(0, bins - 2);
  const at::Tensor right = left + 1;
  const at::Tensor weight_left = right.to(targets.scalar_type()) - targets;
  const at::Tensor weight_right = 1 - weight_left;
  const at::Tensor log_probabilities = logits.log_softmax(-1);
  const at::Tensor loss = -(log_probabilities.gather(-1, left.unsqueeze(-1)).squeeze(-1) * weight_left +
                            log_probabilities.gather(-1, right.unsqueeze(-1)).squeeze(-1) * weight_right);
  return loss.mean(-1);
}

}  // namespace detkit::models
