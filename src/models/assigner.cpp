#include "models/assigner.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "core/error.h"
#include "core/text.h"

namespace detkit::models {

namespace {

void require(bool ok, const std::string& what, const std::string& fix) {
  if (!ok) throw UsageError({what, "", fix});
}

void check_inputs(const at::Tensor& scores, const at::Tensor& pred_boxes, const at::Tensor& anchors,
                  const at::Tensor& gt_labels, const at::Tensor& gt_boxes, const at::Tensor& gt_mask,
                  const AssignerOptions& options) {
  require(scores.dim() == 3, cat("assigner scores must be [B, A, C]; got ", scores.sizes()), "pass sigmoid class scores [B, A, C]");
  const int64_t b = scores.size(0), a = scores.size(1);
  require(pred_boxes.dim() == 3 && pred_boxes.size(0) == b && pred_boxes.size(1) == a && pred_boxes.size(2) == 4,
          cat("assigner predicted boxes must be [B, A, 4] = [", b, ", ", a, ", 4]; got ", pred_boxes.sizes()),
          "pass one xyxy box per anchor");
  require(anchors.dim() == 2 && anchors.size(0) == a && anchors.size(1) == 2,
          cat("assigner anchors must be [A, 2] = [", a, ", 2]; got ", anchors.sizes()), "pass one (x, y) point per anchor");
  require(gt_boxes.dim() == 3 && gt_boxes.size(0) == b && gt_boxes.size(2) == 4,
          cat("assigner gt boxes must be [B, M, 4] with B = ", b, "; got ", gt_boxes.sizes()), "pad each image's boxes to M rows");
  const int64_t m = gt_boxes.size(1);
  require(gt_labels.numel() == b * m && gt_labels.dim() == 3,
          cat("assigner gt labels must be [B, M, 1] = [", b, ", ", m, ", 1]; got ", gt_labels.sizes()), "pass one class per box");
  require(gt_mask.numel() == b * m && gt_mask.dim() == 3,
          cat("assigner gt mask must be [B, M, 1] = [", b, ", ", m, ", 1]; got ", gt_mask.sizes()), "pass one flag per box row");
  require(options.topk >= 1, cat("assigner topk must be at least 1; got ", options.topk), "use topk = 10");
  require(options.alpha >= 0 && options.beta >= 0,
          cat("assigner exponents must be non-negative; got alpha ", options.alpha, ", beta ", options.beta),
          "use alpha = 0.5, beta = 6");
}

// IoU of every box in `a` [G, 4] with every box in `b` [A, 4] (xyxy): [G, A]. Inverted boxes count as
// empty, so a degenerate ground truth or prediction overlaps nothing.
at::Tensor pairwise_iou(const at::Tensor& a, const at::Tensor& b, double eps) {
  const at::Tensor ax1 = a.select(1, 0).unsqueeze(1), ay1 = a.select(1, 1).unsqueeze(1);
  const at::Tensor ax2 = a.select(1, 2).unsqueeze(1), ay2 = a.select(1, 3).unsqueeze(1);
  const at::Tensor bx1 = b.select(1, 0), by1 = b.select(1, 1), bx2 = b.select(1, 2), by2 = b.select(1, 3);
  const at::Tensor inter = (at::minimum(ax2, bx2) - at::maximum(ax1, bx1)).clamp_min(0) *
                           (at::minimum(ay2, by2) - at::maximum(ay1, by1)).clamp_min(0);
  const at::Tensor area_a = (ax2 - ax1).clamp_min(0) * (ay2 - ay1).clamp_min(0);
  const at::Tensor area_b = (bx2 - bx1).clamp_min(0) * (by2 - by1).clamp_min(0);
  return inter / (area_a + area_b - inter + eps);
}

// One image's assignment of its G real boxes to A anchors. Each output row is written in place.
struct ImageTargets {
  at::Tensor labels, boxes, scores, foreground, gt_index;  // views into the batch outputs at one image
};

void assign_image(const at::Tensor& scores, const at::Tensor& pred_boxes, const at::Tensor& anchors,
                  const at::Tensor& labels, const at::Tensor& boxes, const at::Tensor& rows,
                  const AssignerOptions& options, ImageTargets out) {
  const int64_t anchor_count = scores.size(0), classes = scores.size(1), gt_count = boxes.size(0);
  const at::Tensor ax = anchors.select(1, 0).unsqueeze(0), ay = anchors.select(1, 1).unsqueeze(0);
  const at::Tensor x1 = boxes.select(1, 0).unsqueeze(1), y1 = boxes.select(1, 1).unsqueeze(1);
  const at::Tensor x2 = boxes.select(1, 2).unsqueeze(1), y2 = boxes.select(1, 3).unsqueeze(1);
  const at::Tensor inside =
      at::minimum(at::minimum(ax - x1, ay - y1), at::minimum(x2 - ax, y2 - ay)) > options.eps;  // [G, A]

  const at::Tensor iou = at::where(inside, pairwise_iou(boxes, pred_boxes, options.eps), 0.0);
  const at::Tensor class_scores = scores.t().index_select(0, labels);  // [G, A]: each box's class
  const at::Tensor metric = at::where(inside, class_scores.pow(options.alpha) * iou.pow(options.beta), 0.0);

  const int64_t k = std::min(options.topk, anchor_count);
  const at::Tensor top = std::get<1>(metric.topk(k, 1));
  const at::Tensor claimed =
      at::zeros({gt_count, anchor_count}, inside.options()).scatter_(1, top, true).logical_and_(metric > 0);

  // An anchor claimed by several boxes goes to the claimant it overlaps most; -1 ranks the others last.
  const at::Tensor winner = at::where(claimed, iou, -1.0).argmax(0);  // [A], local box index
  const at::Tensor foreground = claimed.any(0);
  const at::Tensor won = (at::arange(gt_count, winner.options()).unsqueeze(1) == winner.unsqueeze(0))
                             .logical_and_(foreground.unsqueeze(0));  // [G, A], one box per positive

  const at::Tensor won_metric = at::where(won, metric, 0.0);
  const at::Tensor best_metric = won_metric.amax(1, true), best_iou = at::where(won, iou, 0.0).amax(1, true);
  const at::Tensor alignment = (won_metric * best_iou / (best_metric + options.eps)).amax(0);  // [A]

  const at::Tensor assigned_labels = labels.index_select(0, winner);
  out.foreground.copy_(foreground);
  out.gt_index.copy_(at::where(foreground, rows.index_select(0, winner), -1));
  out.labels.copy_(at::where(foreground, assigned_labels, classes));
  out.boxes.copy_(at::where(foreground.unsqueeze(1), boxes.index_select(0, winner), 0.0));
  out.scores.zero_().scatter_(1, assigned_labels.unsqueeze(1), at::where(foreground, alignment, 0.0).unsqueeze(1));
}

}  // namespace

Assignment assign_task_aligned(const at::Tensor& scores, const at::Tensor& pred_boxes, const at::Tensor& anchors,
                               const at::Tensor& gt_labels, const at::Tensor& gt_boxes, const at::Tensor& gt_mask,
                               const AssignerOptions& options) {
  check_inputs(scores, pred_boxes, anchors, gt_labels, gt_boxes, gt_mask, options);
  at::NoGradGuard no_grad;  // targets are constants for the loss
  const int64_t batch = scores.size(0), anchor_count = scores.size(1), classes = scores.size(2);
  const int64_t max_boxes = gt_boxes.size(1);
  const auto device = scores.device();
  const auto float_options = at::TensorOptions().dtype(at::kFloat).device(device);
  const auto long_options = at::TensorOptions().dtype(at::kLong).device(device);

  Assignment out;
  out.labels = at::full({batch, anchor_count}, classes, long_options);
  out.boxes = at::zeros({batch, anchor_count, 4}, float_options);
  out.scores = at::zeros({batch, anchor_count, classes}, float_options);
  out.foreground = at::zeros({batch, anchor_count}, long_options.dtype(at::kBool));
  out.gt_index = at::full({batch, anchor_count}, -1, long_options);
  if (batch == 0 || anchor_count == 0 || max_boxes == 0) return out;

  // Padding rows are dropped up front, so they cost nothing and cannot leak into the result.
  const at::Tensor real = (gt_mask.reshape({batch, max_boxes}) != 0).cpu();
  const at::Tensor labels_all = gt_labels.reshape({batch, max_boxes}).to(at::kLong).cpu();
  const at::Tensor bad_label = real.logical_and(labels_all.lt(0).logical_or(labels_all.ge(classes)));
  if (bad_label.any().item<bool>()) {
    const at::Tensor where = bad_label.nonzero()[0];
    const int64_t image = where[0].item<int64_t>(), row = where[1].item<int64_t>();
    throw UsageError({cat("ground-truth box ", row, " of image ", image, " has class ", labels_all[image][row].item<int64_t>(),
                          ", outside the model's ", classes, " classes"),
                      "class indices are 0-based and must be below the number of classes the head predicts",
                      "build the model with as many classes as the dataset has, or fix the label"});
  }
  const at::Tensor score_f = scores.detach().to(at::kFloat), pred_f = pred_boxes.detach().to(at::kFloat);
  const at::Tensor anchors_f = anchors.detach().to(float_options);
  const at::Tensor boxes_f = gt_boxes.detach().to(at::kFloat);
  for (int64_t b = 0; b < batch; ++b) {
    const at::Tensor rows = real[b].nonzero().squeeze(1).to(device);
    if (rows.numel() == 0) continue;
    assign_image(score_f[b], pred_f[b], anchors_f, labels_all[b].to(device).index_select(0, rows),
                 boxes_f[b].index_select(0, rows), rows, options,
                 {out.labels[b], out.boxes[b], out.scores[b], out.foreground[b], out.gt_index[b]});
  }
  return out;
}

}  // namespace detkit::models
