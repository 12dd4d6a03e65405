#include "models/loss.h"

#include <ATen/ATen.h>

#include <tuple>

#include "core/error.h"
#include "core/text.h"
#include "models/box_loss.h"
#include "models/yolo.h"

namespace detkit::models {

namespace {

void require(bool ok, const std::string& what, const std::string& fix) {
  if (!ok) throw UsageError({what, "", fix});
}

// [B, K, H, W] -> [B, H * W, K], anchors row-major as make_anchors lists them.
at::Tensor anchors_last(const at::Tensor& level) {
  return level.flatten(2).transpose(1, 2);
}

}  // namespace

FlatHead flatten_head(const std::vector<LevelOutput>& outputs, int64_t reg_max) {
  require(!outputs.empty(), "the detection head gave no levels", "pass the model's forward output unchanged");
  require(reg_max >= 2, cat("reg_max must be at least 2; got ", reg_max), "use the reg_max the model was built with (16)");
  const at::Tensor& first = outputs.front().cls;
  require(first.defined() && first.dim() == 4, "the head's class output must be [B, C, H, W]",
          "pass the model's forward output unchanged");
  const int64_t batch = first.size(0), classes = first.size(1);
  std::vector<at::Tensor> distributions, logits;
  std::vector<std::vector<int64_t>> grids;
  std::vector<int64_t> strides;
  for (std::size_t level = 0; level < outputs.size(); ++level) {
    const LevelOutput& out = outputs[level];
    require(out.cls.defined() && out.cls.dim() == 4 && out.cls.size(0) == batch && out.cls.size(1) == classes,
            cat("level ", level, " class output must be [", batch, ", ", classes, ", H, W]; got ",
                out.cls.defined() ? out.cls.sizes() : at::IntArrayRef{}),
            "pass the model's forward output unchanged");
    require(out.box.defined() && out.box.dim() == 4 && out.box.size(0) == batch && out.box.size(1) == 4 * reg_max &&
                out.box.size(2) == out.cls.size(2) && out.box.size(3) == out.cls.size(3),
            cat("level ", level, " box output must be [", batch, ", ", 4 * reg_max, ", ", out.cls.size(2), ", ",
                out.cls.size(3), "]; got ", out.box.defined() ? out.box.sizes() : at::IntArrayRef{}),
            "use the reg_max the model was built with (its box channels / 4)");
    require(out.stride > 0, cat("level ", level, " has stride ", out.stride), "pass the model's forward output unchanged");
    distributions.push_back(anchors_last(out.box));
    logits.push_back(anchors_last(out.cls));
    grids.push_back({out.cls.size(2), out.cls.size(3)});
    strides.push_back(out.stride);
  }
  FlatHead head;
  head.distribution = at::cat(distributions, 1).to(at::kFloat);
  head.logits = at::cat(logits, 1).to(at::kFloat);
  // Made on the outputs' device: copying them there from pageable host memory would wait for the device.
  std::tie(head.anchors, head.strides) = make_anchors(grids, strides, first.device());
  return head;
}

PaddedTargets pad_targets(const at::Tensor& targets, int64_t batch_size, int64_t classes,
                          std::optional<c10::Device> device) {
  require(targets.defined() && targets.dim() == 2 && targets.size(1) == 6,
          cat("targets must be [N, 6] (image, class, x1, y1, x2, y2); got ",
              targets.defined() ? targets.sizes() : at::IntArrayRef{}),
          "pass the loader's Batch::targets");
  require(batch_size >= 0, cat("batch size must not be negative; got ", batch_size), "pass the number of images");
  const at::Tensor rows = targets.detach().to(at::kFloat).cpu();
  const at::Tensor image = rows.select(1, 0).to(at::kLong);
  if (rows.size(0) > 0) {
    const int64_t lowest = image.min().item<int64_t>(), highest = image.max().item<int64_t>();
    require(lowest >= 0 && highest < batch_size,
            cat("targets name images ", lowest, "..", highest, " but the batch has ", batch_size, " images"),
            "the first column of the targets is the image's position in the batch (0-based)");
  }
  const at::Tensor counts = at::bincount(image, {}, batch_size);
  const int64_t max_boxes = rows.size(0) == 0 ? 0 : counts.max().item<int64_t>();
  PaddedTargets out;
  out.labels = at::zeros({batch_size, max_boxes, 1}, at::kLong);
  out.boxes = at::zeros({batch_size, max_boxes, 4}, at::kFloat);
  out.mask = at::zeros({batch_size, max_boxes, 1}, at::kBool);
  if (max_boxes > 0) {
    // A stable sort groups rows by image in their original order; a row's slot is its rank in its group.
    const at::Tensor order = std::get<1>(image.sort(/*stable=*/true, 0, false));
    const at::Tensor sorted_image = image.index_select(0, order);
    const at::Tensor group_start = counts.cumsum(0) - counts;
    const at::Tensor slot = at::arange(rows.size(0), at::kLong) - group_start.index_select(0, sorted_image);
    const at::Tensor sorted = rows.index_select(0, order);
    const at::Tensor labels = sorted.select(1, 1).to(at::kLong);
    if (classes > 0) {
      const at::Tensor bad = labels.lt(0).logical_or(labels.ge(classes)).nonzero();
      if (bad.size(0) > 0) {
        const int64_t row = bad[0][0].item<int64_t>();
        throw class_out_of_range(slot[row].item<int64_t>(), sorted_image[row].item<int64_t>(), labels[row].item<int64_t>(),
                                 classes);
      }
    }
    out.labels.index_put_({sorted_image, slot}, labels.unsqueeze(1));
    out.boxes.index_put_({sorted_image, slot}, sorted.slice(1, 2, 6));
    out.mask.index_put_({sorted_image, slot}, at::ones({rows.size(0), 1}, at::kBool));
  }
  const c10::Device target = device.value_or(targets.device());
  if (!target.is_cuda()) return {out.labels.to(target), out.boxes.to(target), out.mask.to(target)};
  // Pinned, so the copies are queued behind the forward pass instead of waiting for it.
  const auto to_device = [&](const at::Tensor& t) { return t.pin_memory().to(target, /*non_blocking=*/true); };
  return {to_device(out.labels), to_device(out.boxes), to_device(out.mask)};
}

DetectionLoss::DetectionLoss(LossOptions options) : options_(options) {
  require(options_.box_gain >= 0 && options_.cls_gain >= 0 && options_.dfl_gain >= 0,
          cat("loss gains must be non-negative; got box ", options_.box_gain, ", cls ", options_.cls_gain, ", dfl ",
              options_.dfl_gain),
          "use box 7.5, cls 0.5, dfl 1.5");
}

LossTerms DetectionLoss::operator()(const std::vector<LevelOutput>& outputs, const at::Tensor& targets,
                                    int64_t batch_size) const {
  const int64_t bins = options_.reg_max;
  const FlatHead head = flatten_head(outputs, bins);
  const int64_t batch = head.logits.size(0);
  require(batch_size == batch, cat("batch size ", batch_size, " does not match the head's outputs (", batch, " images)"),
          "pass the number of images in the batch");
  const auto device = head.logits.device();

  const at::Tensor distances = decode_distribution(head.distribution, bins);  // [B, A, 4] grid units
  const at::Tensor pred_boxes = distance_to_bbox(distances, head.anchors);     // [B, A, 4] grid units
  const int64_t classes = head.logits.size(2);
  const PaddedTargets gt = pad_targets(targets, batch, classes, device);
  const Assignment assigned = assign_task_aligned(head.logits.detach().sigmoid(), pred_boxes.detach() * head.strides,
                                                  head.anchors * head.strides, gt.labels, gt.boxes, gt.mask,
                                                  options_.assigner, /*padded_and_checked=*/true);

  const at::Tensor raw_score_sum = assigned.scores.sum();
  const at::Tensor score_sum = raw_score_sum.clamp_min(1);
  const at::Tensor cls_sum = at::binary_cross_entropy_with_logits(head.logits, assigned.scores, {}, {}, at::Reduction::Sum);
  const at::Tensor cls = cls_sum / score_sum;

  // The box terms over every anchor, weighted by its target score (0 off the foreground), instead of
  // selecting the foreground: a selection's size is known only after reading it back from the device,
  // which would make the host wait for the GPU. Off the foreground both the prediction and the target are
  // replaced (a unit box at the anchor, zero logits), so those terms are finite whatever the head output
  // there (an fp16 overflow on a background anchor does not make the loss NaN, as with a selection) and
  // their zero weight zeroes value and gradient alike.
  const at::Tensor fg = assigned.foreground.unsqueeze(-1);                     // [B, A, 1]
  const at::Tensor weight = assigned.scores.sum(-1) * assigned.foreground;    // [B, A]
  const at::Tensor placeholder = at::cat({head.anchors - 0.5, head.anchors + 0.5}, -1).expand_as(pred_boxes);
  const at::Tensor target_boxes = at::where(fg, assigned.boxes / head.strides, placeholder);  // grid units
  const at::Tensor fg_boxes = at::where(fg, pred_boxes, placeholder);
  const at::Tensor box_sum = ((1 - complete_iou(fg_boxes.reshape({-1, 4}), target_boxes.reshape({-1, 4}))) *
                              weight.reshape({-1}))
                                 .sum();
  const at::Tensor box = box_sum / score_sum;

  const at::Tensor target_distances =
      bbox_to_distance(head.anchors.expand({batch, -1, -1}), target_boxes, static_cast<double>(bins) - 1.01);
  const at::Tensor fg_logits = at::where(fg, head.distribution, at::zeros({}, head.distribution.options()));
  const at::Tensor dfl_sum = (distribution_focal_loss(fg_logits.reshape({-1, 4, bins}), target_distances.reshape({-1, 4})) *
                              weight.reshape({-1}))
                                 .sum();
  const at::Tensor dfl = dfl_sum / score_sum;

  LossTerms terms;
  terms.total = (options_.box_gain * box + options_.cls_gain * cls + options_.dfl_gain * dfl) * static_cast<double>(batch);
  terms.unnormalized = options_.box_gain * box_sum + options_.cls_gain * cls_sum + options_.dfl_gain * dfl_sum;
  terms.score_sum = raw_score_sum.detach();
  terms.box = box.detach();
  terms.cls = cls.detach();
  terms.dfl = dfl.detach();
  return terms;
}

}  // namespace detkit::models
