// Task-aligned label assignment (TOOD, Feng et al. 2021): which anchors learn which ground-truth box,
// and with what classification target. Used by the detection loss (models/loss.h); plain tensor code,
// no state, runs on the device of its inputs.
//
// The rule, per image and per ground-truth box g of class c:
//   1. Candidates are the anchors whose centre lies strictly inside g (more than `eps` from every side).
//   2. Each candidate a gets the alignment metric t = s^alpha * u^beta, where s is a's predicted score
//      for class c and u the IoU of a's predicted box with g. It rewards anchors that both classify and
//      localise g well, so the two tasks are trained on the same anchors.
//   3. g keeps its `topk` candidates with the largest t. A candidate whose t is 0 (its predicted box does
//      not overlap g) is not kept: as a positive its target score and loss weight would be 0 anyway, and
//      leaving it out makes the choice among such ties deterministic.
//   4. An anchor kept by several boxes goes to the one whose IoU with its predicted box is highest (the
//      first of them on a tie).
//   5. A positive anchor's classification target is one-hot on c, scaled by t / max t(g) * max u(g), the
//      maxima over g's positives: the best-aligned anchor of g aims at the best IoU any of them reached,
//      the others proportionally lower.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "core/error.h"

namespace detkit::models {

struct AssignerOptions {
  int64_t topk = 10;    // positives kept per ground-truth box (at most)
  double alpha = 0.5;   // exponent on the class score in the alignment metric
  double beta = 6.0;    // exponent on the IoU in the alignment metric
  double eps = 1e-9;    // margin for "strictly inside" and guard against division by zero
};

// The assignment for a batch of B images over A anchors and C classes.
struct Assignment {
  at::Tensor labels;     // [B, A] int64: class of the assigned box; C (the background index) where none
  at::Tensor boxes;      // [B, A, 4] float32 xyxy pixels of the assigned box; 0 where none
  at::Tensor scores;     // [B, A, C] float32 classification targets (see step 5 above); 0 where none
  at::Tensor foreground; // [B, A] bool: the anchor is assigned a box
  at::Tensor gt_index;   // [B, A] int64: index m of the assigned box in the gt tensors; -1 where none
};

// Assigns ground-truth boxes to anchors with the rule above.
// Needs (all on one device; B, A, C, M >= 0 with M the padded number of boxes per image):
//   scores      [B, A, C] predicted class probabilities (after the sigmoid), not requiring gradients;
//   pred_boxes  [B, A, 4] predicted xyxy boxes in pixels, not requiring gradients;
//   anchors     [A, 2] anchor centres (x, y) in pixels;
//   gt_labels   [B, M, 1] int64 class indices in [0, C) (any value on padding rows);
//   gt_boxes    [B, M, 4] xyxy pixels (any value on padding rows);
//   gt_mask     [B, M, 1] nonzero/true for real boxes, zero/false for padding.
// Guarantees: every output is a function of the real rows only; an image without boxes (or M == 0) gets
// no foreground. Degenerate boxes (no anchor strictly inside) get no positives. Work is done for groups of
// images at once (all of them when the batch is small), each group's [N, M, A] working tensors kept under
// about 16M elements, M being the most real boxes of an image in the batch.
// Throws UsageError for inconsistent shapes, an option out of range (topk < 1, alpha or beta < 0) or a
// real box's class outside [0, C).
// `padded_and_checked`: the caller guarantees what pad_targets(..., classes) does, every real box's class
// in [0, C) and each image's real rows first with at least one image using all M rows. The assigner then
// reads nothing back from the device (no check, no trimming), so on a GPU the host never waits for it.
// The error for real box `row` of image `image` (positions in the batch) whose class `cls` is outside
// the head's [0, classes): thrown by assign_task_aligned and by pad_targets (models/loss.h).
UsageError class_out_of_range(int64_t row, int64_t image, int64_t cls, int64_t classes);

Assignment assign_task_aligned(const at::Tensor& scores, const at::Tensor& pred_boxes, const at::Tensor& anchors,
                               const at::Tensor& gt_labels, const at::Tensor& gt_boxes, const at::Tensor& gt_mask,
                               const AssignerOptions& options = {}, bool padded_and_checked = false);

}  // namespace detkit::models
