#include "infer/postprocess.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/text.h"
#include "infer/nms.h"
#include "models/box_loss.h"
#include "models/loss.h"

namespace detkit {

namespace {

void require(bool ok, const std::string& what, const std::string& fix) {
  if (!ok) throw UsageError({what, "", fix});
}

Detections detect_image(const at::Tensor& boxes, const at::Tensor& probabilities, const PostprocessOptions& options) {
  at::Tensor anchor, classes, scores;
  if (options.multi_label) {
    const at::Tensor pairs = (probabilities > options.conf_threshold).nonzero();  // [K, 2]: anchor, class
    anchor = pairs.select(1, 0);
    classes = pairs.select(1, 1);
    scores = probabilities.index({anchor, classes});
  } else {
    auto [best, best_class] = probabilities.max(1);
    anchor = (best > options.conf_threshold).nonzero().squeeze(1);
    classes = best_class.index_select(0, anchor);
    scores = best.index_select(0, anchor);
  }
  if (scores.size(0) > options.max_candidates) {
    const at::Tensor best = std::get<1>(scores.topk(options.max_candidates));
    anchor = anchor.index_select(0, best);
    classes = classes.index_select(0, best);
    scores = scores.index_select(0, best);
  }
  const at::Tensor candidate_boxes = boxes.index_select(0, anchor).cpu();
  scores = scores.cpu();
  classes = classes.cpu();
  const at::Tensor keep = batched_nms(candidate_boxes, scores, classes, options.iou_threshold).slice(0, 0, options.max_det);
  return {candidate_boxes.index_select(0, keep), scores.index_select(0, keep), classes.index_select(0, keep)};
}

}  // namespace

DecodedPredictions decode_predictions(const std::vector<models::LevelOutput>& outputs, int64_t reg_max) {
  const models::FlatHead head = models::flatten_head(outputs, reg_max);
  const at::Tensor distances = models::decode_distribution(head.distribution, reg_max);
  return {models::distance_to_bbox(distances, head.anchors) * head.strides, head.logits.sigmoid()};
}

std::vector<Detections> postprocess(const std::vector<models::LevelOutput>& outputs, const PostprocessOptions& options) {
  return postprocess(decode_predictions(outputs, options.reg_max), options);
}

std::vector<Detections> postprocess(const DecodedPredictions& decoded, const PostprocessOptions& options) {
  require(options.conf_threshold >= 0 && options.conf_threshold <= 1,
          cat("confidence threshold must be in [0, 1]; got ", options.conf_threshold), "use e.g. 0.001 for evaluation, 0.25 for display");
  require(options.iou_threshold >= 0 && options.iou_threshold <= 1,
          cat("NMS IoU threshold must be in [0, 1]; got ", options.iou_threshold), "use e.g. 0.7");
  require(options.max_det >= 1, cat("max_det must be at least 1; got ", options.max_det), "use e.g. 300");
  require(options.max_candidates >= 1, cat("max_candidates must be at least 1; got ", options.max_candidates),
          "use e.g. 30000");
  const at::Tensor& boxes = decoded.boxes;
  const at::Tensor& probabilities = decoded.probabilities;
  require(boxes.dim() == 3 && boxes.size(2) == 4 && probabilities.dim() == 3 &&
              probabilities.size(0) == boxes.size(0) && probabilities.size(1) == boxes.size(1),
          cat("decoded predictions must be boxes [B, A, 4] and probabilities [B, A, C]; got ", boxes.sizes(), " and ",
              probabilities.sizes()),
          "pass decode_predictions' result");
  at::NoGradGuard no_grad;
  std::vector<Detections> out;
  out.reserve(static_cast<std::size_t>(boxes.size(0)));
  for (int64_t b = 0; b < boxes.size(0); ++b)
    out.push_back(detect_image(boxes[b].detach().to(at::kFloat), probabilities[b].detach().to(at::kFloat), options));
  return out;
}

at::Tensor unletterbox(const at::Tensor& boxes, double scale, int64_t pad_x, int64_t pad_y, int64_t orig_w,
                       int64_t orig_h) {
  require(boxes.dim() == 2 && boxes.size(1) == 4, cat("unletterbox needs boxes [K, 4]; got ", boxes.sizes()),
          "pass xyxy boxes, one per row");
  require(scale > 0 && std::isfinite(scale) && orig_w > 0 && orig_h > 0,
          cat("unletterbox needs a positive scale and image size; got scale ", scale, ", size ", orig_w, "x", orig_h),
          "pass the scale of augment::letterbox and the original image's width and height");
  // The same rounding as augment::letterbox, which scales boxes by resized / original size per axis.
  const int64_t resized_w = std::max<int64_t>(1, std::llround(static_cast<double>(orig_w) * scale));
  const int64_t resized_h = std::max<int64_t>(1, std::llround(static_cast<double>(orig_h) * scale));
  const double sx = static_cast<double>(resized_w) / static_cast<double>(orig_w);
  const double sy = static_cast<double>(resized_h) / static_cast<double>(orig_h);
  const auto options = boxes.options().dtype(at::kDouble);
  const at::Tensor shift = at::tensor({static_cast<double>(pad_x), static_cast<double>(pad_y),
                                       static_cast<double>(pad_x), static_cast<double>(pad_y)}, options);
  const at::Tensor factor = at::tensor({sx, sy, sx, sy}, options);
  const at::Tensor limit = at::tensor({static_cast<double>(orig_w), static_cast<double>(orig_h),
                                       static_cast<double>(orig_w), static_cast<double>(orig_h)}, options);
  const at::Tensor original = (boxes.to(at::kDouble) - shift) / factor;
  return at::minimum(original.clamp_min(0), limit).to(at::kFloat);
}

}  // namespace detkit
