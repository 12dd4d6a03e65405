// The detector's training loss: task-aligned assignment (models/assigner.h) of the loader's targets to
// anchors, then three terms as YOLOv8 defines them:
//   cls: binary cross-entropy of every anchor's class logits against its assigned target scores (zero
//        for background), summed and divided by S = max(sum of all target scores, 1);
//   box: (1 - CIoU) between each foreground anchor's decoded box and its assigned box, weighted by the
//        anchor's target score, summed and divided by S;
//   dfl: distribution focal loss of each foreground anchor's distance bins against the distances to its
//        assigned box (grid units, clamped to [0, reg_max - 1.01]), weighted and divided the same way.
// total = (box_gain * box + cls_gain * cls + dfl_gain * dfl) * batch size, the value to backpropagate.
// Boxes are decoded in grid units (distances from the anchor in units of the level's stride) and scaled
// by the stride to pixels for the assignment, which compares them with pixel ground truth.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "models/assigner.h"

namespace detkit::models {

struct LevelOutput;  // models/yolo.h

// The head outputs of every level flattened into one anchor axis, level by level, row-major (the order of
// make_anchors), always in float32 so the loss and decoding are exact under autocast.
struct FlatHead {
  at::Tensor distribution;  // [B, A, 4 * reg_max] distance-bin logits (left, top, right, bottom)
  at::Tensor logits;        // [B, A, C] class logits
  at::Tensor anchors;       // [A, 2] anchor centres in grid units of their level
  at::Tensor strides;       // [A, 1] each anchor's stride in pixels
};

// Needs: at least one level; every level's box [B, 4 * reg_max, H, W] and cls [B, C, H, W] with the same
// B and C throughout and a positive stride. Throws UsageError otherwise. Gradients flow through.
FlatHead flatten_head(const std::vector<LevelOutput>& outputs, int64_t reg_max);

// The loader's targets (float [N, 6]: image index in the batch, 0-based class, x1, y1, x2, y2 in pixels)
// padded per image to M = the largest number of boxes of one image (M = 0 when N = 0).
struct PaddedTargets {
  at::Tensor labels;  // [B, M, 1] int64 (0 on padding)
  at::Tensor boxes;   // [B, M, 4] float32 xyxy pixels (0 on padding)
  at::Tensor mask;    // [B, M, 1] bool, true for real boxes
};

// Needs targets [N, 6] with image indices in [0, batch_size) and, when `classes` > 0, class indices in
// [0, classes). Throws UsageError otherwise. Rows of an image keep their original order. The padding is
// done on the host (targets on a GPU are read back first: a synchronisation) and the result copied to
// `device` (the targets' own device when none is given) without waiting: from pinned memory to a GPU.
PaddedTargets pad_targets(const at::Tensor& targets, int64_t batch_size, int64_t classes = 0,
                          std::optional<c10::Device> device = std::nullopt);

struct LossOptions {
  double box_gain = 7.5;  // YOLOv8's defaults
  double cls_gain = 0.5;
  double dfl_gain = 1.5;
  int64_t reg_max = 16;   // distance bins per box side, as the head was built
  AssignerOptions assigner;
};

struct LossTerms {
  at::Tensor total;  // scalar to backpropagate (see above)
  at::Tensor box;    // detached scalars, before their gains, for logging
  at::Tensor cls;
  at::Tensor dfl;
  // The same loss before normalisation: gains . (box, cls, dfl sums over the assigned targets), so that
  // total == unnormalized / max(score_sum, 1) * images. Distributed training backpropagates this and
  // divides by the score sum of the global batch (a constant: the assignment does not take gradients).
  at::Tensor unnormalized;
  at::Tensor score_sum;  // detached sum of the assigned target scores (the normaliser, before clamping)
};

class DetectionLoss {
 public:
  // Throws UsageError for a negative gain.
  explicit DetectionLoss(LossOptions options = {});

  // The loss of one batch. Needs the raw head outputs (flatten_head's requirements), targets [N, 6] as
  // the loader delivers them (any device, best on the CPU: then the loss never waits for the GPU; N may be
  // 0: then only the cls term is non-zero) and the batch
  // size, which must equal the outputs' B. Guarantees a finite result for finite outputs, in float32
  // whatever the outputs' dtype. Throws UsageError for inconsistent shapes or a class index outside the
  // head's classes.
  LossTerms operator()(const std::vector<LevelOutput>& outputs, const at::Tensor& targets, int64_t batch_size) const;

  const LossOptions& options() const { return options_; }

 private:
  LossOptions options_;
};

}  // namespace detkit::models
