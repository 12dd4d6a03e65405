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

// The assignment of a group of images at once: `labels` [N, M] (any value on padding rows), `boxes`
// [N, M, 4], `real` [N, M] bool; `scores` [N, A, C], `pred_boxes` [N, A, 4]. Padding rows hold no anchor
// (`inside` is false there), so they never claim one and the result equals an image-by-image assignment
// of the real rows: topk and argmax see each image's row in the same order, padding ranks last.
struct GroupTargets {
  at::Tensor labels, boxes, scores, foreground, gt_index;  // views into the batch outputs at these images
};

void assign_group(const at::Tensor& scores, const at::Tensor& pred_boxes, const at::Tensor& anchors,
                  const at::Tensor& labels, const at::Tensor& boxes, const at::Tensor& real,
                  const AssignerOptions& options, GroupTargets out) {
  const int64_t anchor_count = scores.size(1), classes = scores.size(2), rows = boxes.size(1);
  const at::Tensor ax = anchors.select(1, 0).view({1, 1, -1}), ay = anchors.select(1, 1).view({1, 1, -1});
  const at::Tensor x1 = boxes.select(2, 0).unsqueeze(2), y1 = boxes.select(2, 1).unsqueeze(2);
  const at::Tensor x2 = boxes.select(2, 2).unsqueeze(2), y2 = boxes.select(2, 3).unsqueeze(2);
  const at::Tensor inside = (at::minimum(at::minimum(ax - x1, ay - y1), at::minimum(x2 - ax, y2 - ay)) > options.eps)
                                .logical_and_(real.unsqueeze(2));  // [N, M, A]

  // IoU of every box with every prediction of its image; inverted boxes count as empty.
  const at::Tensor px1 = pred_boxes.select(2, 0).unsqueeze(1), py1 = pred_boxes.select(2, 1).unsqueeze(1);
  const at::Tensor px2 = pred_boxes.select(2, 2).unsqueeze(1), py2 = pred_boxes.select(2, 3).unsqueeze(1);
  const at::Tensor inter = (at::minimum(x2, px2) - at::maximum(x1, px1)).clamp_min(0) *
                           (at::minimum(y2, py2) - at::maximum(y1, py1)).clamp_min(0);
  const at::Tensor area_g = (x2 - x1).clamp_min(0) * (y2 - y1).clamp_min(0);
  const at::Tensor area_p = (px2 - px1).clamp_min(0) * (py2 - py1).clamp_min(0);
  const at::Tensor iou = at::where(inside, inter / (area_g + area_p - inter + options.eps), 0.0);

  const at::Tensor safe_labels = labels.clamp(0, classes - 1);  // padding rows: any class, never used
  const at::Tensor class_scores =
      scores.transpose(1, 2).gather(1, safe_labels.unsqueeze(2).expand({-1, -1, anchor_count}));  // [N, M, A]
  const at::Tensor metric = at::where(inside, class_scores.pow(options.alpha) * iou.pow(options.beta), 0.0);

  const int64_t k = std::min(options.topk, anchor_count);
  const at::Tensor top = std::get<1>(metric.topk(k, 2));
  const at::Tensor claimed = at::zeros_like(inside).scatter_(2, top, true).logical_and_(metric > 0);

  // An anchor claimed by several boxes goes to the claimant it overlaps most (the first on a tie); -1
  // ranks the others last.
  const at::Tensor winner = at::where(claimed, iou, -1.0).argmax(1);  // [N, A], row index m
  const at::Tensor foreground = claimed.any(1);
  const at::Tensor won = (at::arange(rows, winner.options()).view({1, -1, 1}) == winner.unsqueeze(1))
                             .logical_and_(foreground.unsqueeze(1));  // [N, M, A], one box per positive

  const at::Tensor won_metric = at::where(won, metric, 0.0);
  const at::Tensor best_metric = won_metric.amax(2, true), best_iou = at::where(won, iou, 0.0).amax(2, true);
  const at::Tensor alignment = (won_metric * best_iou / (best_metric + options.eps)).amax(1);  // [N, A]

  const at::Tensor assigned_labels = safe_labels.gather(1, winner);
  out.foreground.copy_(foreground);
  out.gt_index.copy_(at::where(foreground, winner, -1));
  out.labels.copy_(at::where(foreground, assigned_labels, classes));
  out.boxes.copy_(at::where(foreground.unsqueeze(2), boxes.gather(1, winner.unsqueeze(2).expand({-1, -1, 4})), 0.0));
  out.scores.zero_().scatter_(2, assigned_labels.unsqueeze(2), at::where(foreground, alignment, 0.0).unsqueeze(2));
}

// Images per group: as many as keep the [N, M, A] working tensors under about 16M elements each.
constexpr int64_t kGroupElements = int64_t{1} << 24;

}  // namespace

UsageError class_out_of_range(int64_t row, int64_t image, int64_t cls, int64_t classes) {
  return UsageError({cat("ground-truth box ", row, " of image ", image, " has class ", cls, ", outside the model's ",
                         classes, " classes"),
                     "class indices are 0-based and must be below the number of classes the head predicts",
                     "build the model with as many classes as the dataset has, or fix the label"});
}

Assignment assign_task_aligned(const at::Tensor& scores, const at::Tensor& pred_boxes, const at::Tensor& anchors,
                               const at::Tensor& gt_labels, const at::Tensor& gt_boxes, const at::Tensor& gt_mask,
                               const AssignerOptions& options, bool padded_and_checked) {
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

  const at::Tensor score_f = scores.detach().to(at::kFloat), pred_f = pred_boxes.detach().to(at::kFloat);
  const at::Tensor anchors_f = anchors.detach().to(float_options);
  const at::Tensor boxes_f = gt_boxes.detach().to(at::kFloat);
  at::Tensor real_d, labels_d;
  int64_t rows = max_boxes;
  if (padded_and_checked) {
    real_d = (gt_mask.reshape({batch, max_boxes}) != 0).to(device);
    labels_d = gt_labels.reshape({batch, max_boxes}).to(long_options);
  } else {
    const at::Tensor real = (gt_mask.reshape({batch, max_boxes}) != 0).cpu();
    const at::Tensor labels_all = gt_labels.reshape({batch, max_boxes}).to(at::kLong).cpu();
    const at::Tensor bad_label = real.logical_and(labels_all.lt(0).logical_or(labels_all.ge(classes)));
    if (bad_label.any().item<bool>()) {
      const at::Tensor where = bad_label.nonzero()[0];
      const int64_t image = where[0].item<int64_t>(), row = where[1].item<int64_t>();
      throw class_out_of_range(row, image, labels_all[image][row].item<int64_t>(), classes);
    }
    real_d = real.to(device);
    labels_d = labels_all.to(device);
    // Rows past the last real one of every image are padding: trimmed, so they cost nothing.
    const at::Tensor any_real = real.any(0);
    if (!any_real.any().item<bool>()) return out;
    rows = any_real.nonzero().max().item<int64_t>() + 1;
  }
  const int64_t group = std::max<int64_t>(1, kGroupElements / std::max<int64_t>(1, rows * anchor_count));
  for (int64_t begin = 0; begin < batch; begin += group) {
    const int64_t n = std::min(group, batch - begin);
    assign_group(score_f.narrow(0, begin, n), pred_f.narrow(0, begin, n), anchors_f,
                 labels_d.narrow(0, begin, n).narrow(1, 0, rows), boxes_f.narrow(0, begin, n).narrow(1, 0, rows),
                 real_d.narrow(0, begin, n).narrow(1, 0, rows), options,
                 {out.labels.narrow(0, begin, n), out.boxes.narrow(0, begin, n), out.scores.narrow(0, begin, n),
                  out.foreground.narrow(0, begin, n), out.gt_index.narrow(0, begin, n)});
  }
  return out;
}

}  // namespace detkit::models
