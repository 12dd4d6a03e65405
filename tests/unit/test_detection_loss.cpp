// The task-aligned assigner on hand-made cases, the detection loss (finite, zero targets, gradients,
// autocast, overfitting one batch) and post-processing (shapes, order, letterbox round trip).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>
#include <torch/optim/adam.h>

#include <chrono>

#include "augment/augment.h"
#include "core/torch/compat.h"
#include "infer/postprocess.h"
#include "models/assigner.h"
#include "models/box_loss.h"
#include "models/loss.h"
#include "models/yolo.h"
#include "test_util.h"

using namespace detkit;
using namespace detkit::models;

namespace {

// A one-image problem: anchors [A, 2], each anchor's predicted box and class scores, and the gt rows.
struct Problem {
  at::Tensor anchors, pred_boxes, scores;  // [A, 2], [A, 4], [A, C]
  at::Tensor gt_boxes, gt_labels;          // [M, 4], [M]
};

Assignment assign(const Problem& p, const AssignerOptions& options = {}) {
  const int64_t m = p.gt_boxes.size(0);
  return assign_task_aligned(p.scores.unsqueeze(0), p.pred_boxes.unsqueeze(0), p.anchors, p.gt_labels.view({1, m, 1}),
                             p.gt_boxes.unsqueeze(0), at::ones({1, m, 1}, at::kBool), options);
}

at::Tensor boxes(std::vector<float> values) {
  return at::tensor(values).view({-1, 4});
}

// Loader-style targets: rows of (image, class, x1, y1, x2, y2).
at::Tensor target_rows(std::vector<float> values) {
  return at::tensor(values).view({-1, 6});
}

std::vector<int64_t> foreground_anchors(const Assignment& a, int64_t image = 0) {
  const at::Tensor idx = a.foreground[image].nonzero().squeeze(1);
  return {idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel()};
}

YoloDetector tiny_model(int64_t classes) {
  YoloOptions options;
  options.scale = yolo_scale("yolo-n");
  options.classes = classes;
  return YoloDetector(options);
}

}  // namespace

TEST(Assigner, OneGtTakesTheAnchorInsideIt) {
  Problem p;
  p.anchors = at::tensor({5.f, 5.f, 15.f, 5.f, 25.f, 5.f}).view({3, 2});
  p.pred_boxes = boxes({0, 0, 10, 10, 10, 0, 20, 10, 20, 0, 30, 10});
  p.scores = at::full({3, 2}, 0.64f);
  p.gt_boxes = boxes({0, 0, 10, 10});
  p.gt_labels = at::tensor({int64_t{1}});
  const Assignment a = assign(p);
  EXPECT_EQ(foreground_anchors(a), (std::vector<int64_t>{0}));
  EXPECT_EQ(a.labels[0][0].item<int64_t>(), 1);
  EXPECT_EQ(a.labels[0][1].item<int64_t>(), 2) << "background carries the index C";
  EXPECT_EQ(a.gt_index[0][0].item<int64_t>(), 0);
  EXPECT_EQ(a.gt_index[0][2].item<int64_t>(), -1);
  EXPECT_TRUE(a.boxes[0][0].equal(p.gt_boxes[0]));
  EXPECT_TRUE(a.boxes[0][1].equal(at::zeros({4})));
  // The only positive is the best aligned one and its IoU is 1: its target is exactly its class, 1.
  EXPECT_NEAR(a.scores[0][0][1].item<float>(), 1.f, 1e-6);
  EXPECT_EQ(a.scores[0][0][0].item<float>(), 0.f);
  EXPECT_EQ(a.scores[0].slice(0, 1).abs().sum().item<float>(), 0.f);
}

TEST(Assigner, AnchorOutsideOrOnTheEdgeIsNeverAssigned) {
  Problem p;
  // Anchors outside, exactly on the right edge, and inside; all predict the gt box perfectly.
  p.anchors = at::tensor({12.f, 5.f, 10.f, 5.f, 9.f, 9.f}).view({3, 2});
  p.pred_boxes = boxes({0, 0, 10, 10, 0, 0, 10, 10, 0, 0, 10, 10});
  p.scores = at::tensor({0.99f, 0.99f, 0.01f}).view({3, 1});
  p.gt_boxes = boxes({0, 0, 10, 10});
  p.gt_labels = at::tensor({int64_t{0}});
  EXPECT_EQ(foreground_anchors(assign(p)), (std::vector<int64_t>{2}));
}

TEST(Assigner, AnAnchorClaimedByTwoBoxesGoesToTheHigherIoU) {
  Problem p;
  p.anchors = at::tensor({10.f, 10.f}).view({1, 2});
  p.pred_boxes = boxes({5, 5, 29, 29});  // IoU 0.30 with the first box, 0.92 with the second
  p.scores = at::tensor({0.99f, 0.2f}).view({1, 2});  // the first box's class scores far better
  p.gt_boxes = boxes({0, 0, 20, 20, 5, 5, 30, 30});
  p.gt_labels = at::tensor({int64_t{0}, int64_t{1}});
  const Assignment a = assign(p);
  EXPECT_EQ(a.gt_index[0][0].item<int64_t>(), 1);
  EXPECT_EQ(a.labels[0][0].item<int64_t>(), 1);
  EXPECT_TRUE(a.boxes[0][0].equal(p.gt_boxes[1]));
  // The winner's only positive: normalised alignment = its IoU.
  EXPECT_NEAR(a.scores[0][0][1].item<float>(), 24.f * 24.f / (25.f * 25.f), 1e-5);
  EXPECT_EQ(a.scores[0][0][0].item<float>(), 0.f);
}

TEST(Assigner, KeepsTheTopkBestAlignedAnchorsPerBox) {
  Problem p;
  const int64_t n = 20;
  p.anchors = at::stack({at::arange(n, at::kFloat) * 5 + 2.5, at::full({n}, 50.f)}, 1);
  p.pred_boxes = boxes({0, 0, 100, 100}).expand({n, 4}).contiguous();  // IoU 1 everywhere
  p.scores = at::linspace(0.05, 0.95, n).to(at::kFloat).view({n, 1});
  p.gt_boxes = boxes({0, 0, 100, 100});
  p.gt_labels = at::tensor({int64_t{0}});
  AssignerOptions options;
  options.topk = 3;
  const Assignment a = assign(p, options);
  EXPECT_EQ(foreground_anchors(a), (std::vector<int64_t>{17, 18, 19}));
  // Targets scale with the metric (sqrt of the score here) relative to the best, whose target is max IoU = 1.
  const float best = std::sqrt(p.scores[19][0].item<float>());
  EXPECT_NEAR(a.scores[0][19][0].item<float>(), 1.f, 1e-6);
  EXPECT_NEAR(a.scores[0][17][0].item<float>(), std::sqrt(p.scores[17][0].item<float>()) / best, 1e-6);
  EXPECT_EQ(foreground_anchors(assign(p)).size(), 10u) << "topk defaults to 10";
}

TEST(Assigner, NoBoxesPaddingAndDegenerateBoxesGiveNoForeground) {
  const int64_t a = 6, c = 3;
  const at::Tensor anchors = at::stack({at::arange(a, at::kFloat) * 4 + 2, at::full({a}, 2.f)}, 1);
  const at::Tensor pred = at::tensor({0.f, 0.f, 24.f, 4.f}).expand({2, a, 4}).contiguous();
  const at::Tensor scores = at::full({2, a, c}, 0.5f);
  // M == 0 for the whole batch.
  const Assignment none = assign_task_aligned(scores, pred, anchors, at::zeros({2, 0, 1}, at::kLong),
                                              at::zeros({2, 0, 4}), at::zeros({2, 0, 1}, at::kBool));
  EXPECT_FALSE(none.foreground.any().item<bool>());
  EXPECT_TRUE(none.labels.eq(c).all().item<bool>());
  EXPECT_TRUE(none.gt_index.eq(-1).all().item<bool>());
  EXPECT_EQ(none.scores.sizes(), (std::vector<int64_t>{2, a, c}));
  EXPECT_EQ(none.scores.abs().sum().item<float>(), 0.f);
  // Image 0 has a real box and a padding row with a nonsense class; image 1 only padding; a degenerate
  // (zero-width) box in image 0 has no anchor strictly inside.
  const at::Tensor gt_boxes = at::tensor({0.f, 0.f, 24.f, 4.f, 9.f, 9.f, 9.f, 9.f, 6.f, 0.f, 6.f, 4.f,
                                          0.f, 0.f, 24.f, 4.f, 0.f, 0.f, 24.f, 4.f, 0.f, 0.f, 24.f, 4.f})
                                  .view({2, 3, 4});
  const at::Tensor gt_labels = at::tensor({int64_t{2}, int64_t{99}, int64_t{1}, int64_t{-1}, int64_t{-1}, int64_t{-1}})
                                   .view({2, 3, 1});
  const at::Tensor gt_mask = at::tensor({1.f, 0.f, 1.f, 0.f, 0.f, 0.f}).view({2, 3, 1});
  const Assignment some = assign_task_aligned(scores, pred, anchors, gt_labels, gt_boxes, gt_mask);
  EXPECT_EQ(some.foreground[0].sum().item<int64_t>(), a);
  EXPECT_TRUE(some.gt_index[0].eq(0).all().item<bool>()) << "the degenerate box (row 2) wins nothing";
  EXPECT_TRUE(some.labels[0].eq(2).all().item<bool>());
  EXPECT_FALSE(some.foreground[1].any().item<bool>());
}

TEST(Assigner, MoreBoxesThanAnchorsAndBadClasses) {
  const at::Tensor anchors = at::tensor({5.f, 5.f, 15.f, 5.f}).view({2, 2});
  const at::Tensor pred = boxes({0, 0, 10, 10, 10, 0, 20, 10}).unsqueeze(0);
  const at::Tensor scores = at::full({1, 2, 2}, 0.5f);
  const at::Tensor gt = boxes({0, 0, 10, 10, 1, 1, 10, 10, 10, 0, 20, 10, 0, 0, 20, 10, 2, 2, 9, 9}).unsqueeze(0);
  const at::Tensor labels = at::tensor({int64_t{0}, int64_t{1}, int64_t{1}, int64_t{0}, int64_t{0}}).view({1, 5, 1});
  const Assignment a = assign_task_aligned(scores, pred, anchors, labels, gt, at::ones({1, 5, 1}));
  EXPECT_EQ(a.gt_index[0][0].item<int64_t>(), 0);  // IoU 1 beats the others
  EXPECT_EQ(a.gt_index[0][1].item<int64_t>(), 2);
  EXPECT_THROW_WITH(assign_task_aligned(scores, pred, anchors, labels + 1, gt, at::ones({1, 5, 1})), UsageError,
                    "has class 2, outside the model's 2 classes", "as many classes as the dataset");
  EXPECT_THROW_WITH(assign_task_aligned(scores, pred.squeeze(0), anchors, labels, gt, at::ones({1, 5, 1})), UsageError,
                    "predicted boxes must be [B, A, 4]", "one xyxy box per anchor");
}

TEST(Assigner, HandlesATrainingSizedBatchQuickly) {
  // B = 16 images, the 8400 anchors of a 640 input, up to 100 boxes: image by image, it stays small.
  at::manual_seed(0);
  const int64_t b = 16, m = 100, c = 80;
  const auto [grid_points, grid_strides] = make_anchors({{80, 80}, {40, 40}, {20, 20}}, {8, 16, 32});
  const at::Tensor anchors = grid_points * grid_strides;
  const int64_t a = anchors.size(0);
  const at::Tensor xy = at::rand({b, m, 2}) * 560, wh = at::rand({b, m, 2}) * 200 + 4;
  const at::Tensor gt = at::cat({xy, xy + wh}, 2);
  const at::Tensor pred = at::cat({anchors - 20, anchors + 20}, 1).unsqueeze(0).expand({b, a, 4}).contiguous();
  const auto start = std::chrono::steady_clock::now();
  const Assignment out = assign_task_aligned(at::rand({b, a, c}), pred, anchors, at::randint(c, {b, m, 1}), gt,
                                             at::rand({b, m, 1}) > 0.3);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GT(out.foreground.sum().item<int64_t>(), b * 50);
  EXPECT_LT(seconds, 20.0);
}

TEST(DetectionLoss, PadTargetsGroupsRowsPerImageInOrder) {
  const at::Tensor targets = target_rows({1, 0, 1, 1, 2, 2, 0, 3, 5, 5, 6, 6, 1, 2, 7, 7, 8, 8});
  const PaddedTargets p = pad_targets(targets, 3);
  EXPECT_EQ(p.boxes.sizes(), (std::vector<int64_t>{3, 2, 4}));
  EXPECT_EQ(p.mask.view(-1).to(at::kLong).sum().item<int64_t>(), 3);
  EXPECT_TRUE(p.mask[2].logical_not().all().item<bool>());
  EXPECT_EQ(p.labels[1][0][0].item<int64_t>(), 0);
  EXPECT_EQ(p.labels[1][1][0].item<int64_t>(), 2);
  EXPECT_EQ(p.boxes[1][1][0].item<float>(), 7.f);
  EXPECT_EQ(p.labels[0][0][0].item<int64_t>(), 3);
  EXPECT_EQ(pad_targets(at::zeros({0, 6}), 4).boxes.sizes(), (std::vector<int64_t>{4, 0, 4}));
  EXPECT_THROW_WITH(pad_targets(targets, 1), UsageError, "targets name images 0..1 but the batch has 1", "position in the batch");
  EXPECT_THROW_WITH(pad_targets(at::zeros({2, 5}), 1), UsageError, "targets must be [N, 6]", "Batch::targets");
}

namespace {

// Random head outputs of a 64 x 96 input (grids 8x12, 4x6, 2x3: 126 anchors) that require gradients,
// listed in `leaves` as box, class, box, class, ...
std::vector<LevelOutput> random_outputs(int64_t batch, int64_t classes, std::vector<at::Tensor>* leaves = nullptr) {
  std::vector<LevelOutput> out;
  const int64_t strides[] = {8, 16, 32};
  for (int64_t s : strides) {
    LevelOutput level;
    level.box = at::randn({batch, 64, 64 / s, 96 / s}).requires_grad_();
    level.cls = (at::randn({batch, classes, 64 / s, 96 / s}) - 4).requires_grad_();
    level.stride = s;
    if (leaves != nullptr) {
      leaves->push_back(level.box);
      leaves->push_back(level.cls);
    }
    out.push_back(level);
  }
  return out;
}

at::Tensor some_targets() {
  return target_rows({0, 1, 10, 10, 40, 30, 0, 0, 50, 20, 90, 60, 2, 2, 0, 0, 64, 64});
}

}  // namespace

TEST(DetectionLoss, IsFiniteAndCombinesItsTermsWithTheGains) {
  at::manual_seed(1);
  std::vector<at::Tensor> leaves;
  const auto outputs = random_outputs(3, 4, &leaves);
  const LossTerms t = DetectionLoss{}(outputs, some_targets(), 3);
  for (const at::Tensor& term : {t.total, t.box, t.cls, t.dfl}) {
    EXPECT_EQ(term.dim(), 0);
    EXPECT_TRUE(std::isfinite(term.item<float>()));
    EXPECT_GT(term.item<float>(), 0.f);
  }
  EXPECT_NEAR(t.total.item<float>(), (7.5f * t.box.item<float>() + 0.5f * t.cls.item<float>() + 1.5f * t.dfl.item<float>()) * 3,
              1e-3f * t.total.item<float>());
  EXPECT_FALSE(t.box.requires_grad());
  // Gradients reach every level's class outputs (every anchor learns its class target) and the box
  // outputs (only foreground anchors learn boxes, so a level may have none).
  t.total.backward();
  float box_gradient = 0;
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    ASSERT_TRUE(leaves[i].grad().defined());
    EXPECT_TRUE(leaves[i].grad().isfinite().all().item<bool>());
    const float size = leaves[i].grad().abs().sum().item<float>();
    if (i % 2 == 1) EXPECT_GT(size, 0.f) << "class output of level " << i / 2;
    else box_gradient += size;
  }
  EXPECT_GT(box_gradient, 0.f);
}

TEST(DetectionLoss, WithoutTargetsOnlyTheClassTermRemains) {
  at::manual_seed(2);
  std::vector<at::Tensor> leaves;
  const LossTerms t = DetectionLoss{}(random_outputs(2, 3, &leaves), at::zeros({0, 6}), 2);
  EXPECT_TRUE(std::isfinite(t.total.item<float>()));
  EXPECT_EQ(t.box.item<float>(), 0.f);
  EXPECT_EQ(t.dfl.item<float>(), 0.f);
  EXPECT_GT(t.cls.item<float>(), 0.f);
  t.total.backward();
  EXPECT_GT(leaves[1].grad().abs().sum().item<float>(), 0.f);  // class logits are pushed down
}

TEST(DetectionLoss, RejectsMismatchedInputs) {
  const auto outputs = random_outputs(2, 3);
  EXPECT_THROW_WITH(DetectionLoss{}(outputs, some_targets(), 2), UsageError, "targets name images 0..2 but the batch has 2", "0-based");
  EXPECT_THROW_WITH(DetectionLoss{}(outputs, at::zeros({0, 6}), 3), UsageError, "batch size 3 does not match", "number of images");
  LossOptions options;
  options.reg_max = 8;
  EXPECT_THROW_WITH(DetectionLoss{options}(outputs, at::zeros({0, 6}), 2), UsageError, "box output must be [2, 32, 8, 12]", "reg_max");
  const at::Tensor bad_class = target_rows({0, 3, 1, 1, 20, 20});
  EXPECT_THROW_WITH(DetectionLoss{}(outputs, bad_class, 2), UsageError, "has class 3, outside the model's 3 classes", "classes");
}

TEST(DetectionLoss, StaysFloat32UnderAutocast) {
  at::manual_seed(3);
  YoloDetector net = tiny_model(3);
  compat::set_autocast(/*cuda=*/false, true);
  std::vector<LevelOutput> outputs;
  try {
    outputs = net->forward(at::rand({2, 3, 64, 64}));
  } catch (...) {
    compat::set_autocast(false, false);
    throw;
  }
  const LossTerms t = DetectionLoss{}(outputs, some_targets().slice(0, 0, 2), 2);
  compat::set_autocast(false, false);
  EXPECT_EQ(t.total.scalar_type(), at::kFloat);
  EXPECT_TRUE(std::isfinite(t.total.item<float>()));
  t.total.backward();
}

TEST(DetectionLoss, DecreasesWhenOverfittingOneBatch) {
  at::manual_seed(4);
  YoloDetector net = tiny_model(3);
  net->train();
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(2e-3));
  const at::Tensor images = at::rand({2, 3, 64, 64});
  const at::Tensor targets = target_rows({0, 0, 8, 8, 40, 36, 0, 2, 30, 30, 60, 62, 1, 1, 4, 20, 28, 60});
  const DetectionLoss loss;
  std::vector<float> history;
  for (int step = 0; step < 30; ++step) {
    optimizer.zero_grad();
    const LossTerms t = loss(net->forward(images), targets, 2);
    t.total.backward();
    optimizer.step();
    history.push_back(t.total.item<float>());
  }
  const float first = (history[0] + history[1] + history[2]) / 3, last = (history[27] + history[28] + history[29]) / 3;
  EXPECT_LT(last, 0.7f * first) << "first " << first << ", last " << last;
}

namespace {

// Outputs whose every box decodes to the anchor's cell +/- `half` grid units (uniform bins give the mean
// distance (reg_max - 1) / 2, so a peaked bin is used instead) and whose class logits are `logit`.
std::vector<LevelOutput> peaked_outputs(int64_t batch, int64_t classes, int64_t bin, float logit) {
  std::vector<LevelOutput> out;
  for (int64_t s : {8, 16, 32}) {
    LevelOutput level;
    level.box = at::full({batch, 4, 16, 64 / s, 64 / s}, -30.f);
    level.box.select(2, bin).fill_(30.f);
    level.box = level.box.view({batch, 64, 64 / s, 64 / s});
    level.cls = at::full({batch, classes, 64 / s, 64 / s}, logit);
    level.stride = s;
    out.push_back(level);
  }
  return out;
}

}  // namespace

TEST(Postprocess, DecodesBoxesInPixelsAroundTheAnchors) {
  const DecodedPredictions d = decode_predictions(peaked_outputs(1, 2, 1, 0.f));
  EXPECT_EQ(d.boxes.sizes(), (std::vector<int64_t>{1, 64 + 16 + 4, 4}));
  EXPECT_EQ(d.probabilities.sizes(), (std::vector<int64_t>{1, 84, 2}));
  // The first anchor of stride 8 sits at (4, 4) px; distance 1 grid unit = 8 px each side.
  EXPECT_TRUE(d.boxes[0][0].allclose(at::tensor({-4.f, -4.f, 12.f, 12.f}), 1e-4, 1e-4));
  // The first anchor of stride 32 (index 80) sits at (16, 16) px.
  EXPECT_TRUE(d.boxes[0][80].allclose(at::tensor({-16.f, -16.f, 48.f, 48.f}), 1e-4, 1e-4));
  EXPECT_NEAR(d.probabilities[0][0][0].item<float>(), 0.5f, 1e-6);
}

TEST(Postprocess, KeepsSortedClassAwareDetectionsPerImage) {
  at::manual_seed(5);
  auto outputs = random_outputs(2, 3);
  for (auto& level : outputs) {
    level.box = level.box.detach();
    level.cls = level.cls.detach() + 2;
  }
  const std::vector<Detections> all = postprocess(outputs);
  ASSERT_EQ(all.size(), 2u);
  for (const Detections& d : all) {
    const int64_t k = d.scores.size(0);
    EXPECT_GT(k, 0);
    EXPECT_LE(k, 300);
    EXPECT_EQ(d.boxes.sizes(), (std::vector<int64_t>{k, 4}));
    EXPECT_EQ(d.classes.scalar_type(), at::kLong);
    EXPECT_EQ(d.boxes.scalar_type(), at::kFloat);
    EXPECT_TRUE(d.classes.ge(0).logical_and(d.classes.lt(3)).all().item<bool>());
    EXPECT_TRUE((d.scores.slice(0, 1) <= d.scores.slice(0, 0, k - 1)).all().item<bool>()) << "sorted by score";
  }
  PostprocessOptions one;
  one.multi_label = false;
  one.iou_threshold = 1.0;  // nothing suppressed: count the candidates themselves
  one.max_det = 100000;
  EXPECT_EQ(postprocess(outputs, one)[0].scores.size(0), 126) << "best class only: one per anchor";
  one.multi_label = true;
  EXPECT_EQ(postprocess(outputs, one)[0].scores.size(0), 126 * 3) << "every class above the threshold";
  one.max_candidates = 50;
  EXPECT_EQ(postprocess(outputs, one)[0].scores.size(0), 50);
  one.max_det = 7;
  EXPECT_EQ(postprocess(outputs, one)[1].scores.size(0), 7);
  one.conf_threshold = 1.0;
  EXPECT_EQ(postprocess(outputs, one)[1].scores.size(0), 0);
  one.conf_threshold = 1.5;
  EXPECT_THROW_WITH(postprocess(outputs, one), UsageError, "confidence threshold must be in [0, 1]", "0.25");
}

TEST(Postprocess, SuppressesOverlapsOfTheSameClassOnly) {
  // Every anchor of stride 32 predicts a box of the same size around its cell, so neighbours overlap;
  // one class strongly on, one off.
  auto outputs = peaked_outputs(1, 2, 15, -10.f);
  for (auto& level : outputs) level.cls.select(1, 0).fill_(5.f);
  PostprocessOptions options;
  options.iou_threshold = 0.5;
  const Detections d = postprocess(outputs, options)[0];
  EXPECT_TRUE(d.classes.eq(0).all().item<bool>());
  EXPECT_LT(d.scores.size(0), 84);
  EXPECT_GT(d.scores.size(0), 0);
}

TEST(Postprocess, UnletterboxInvertsTheLetterbox) {
  for (const auto& [w, h] : std::vector<std::pair<int64_t, int64_t>>{{100, 37}, {37, 100}, {640, 480}, {63, 64}}) {
    const at::Tensor original = at::tensor({0.f, 0.f, static_cast<float>(w), static_cast<float>(h), 3.5f, 7.25f, 20.f,
                                            30.f, 1.f, 2.f, 3.f, 5.f})
                                    .view({3, 4});
    const augment::Sample sample =
        augment::make_sample(at::zeros({3, h, w}, at::kByte), original, at::zeros({3}, at::kLong));
    const augment::Letterboxed lb = augment::letterbox(sample, 64);
    const at::Tensor back = unletterbox(lb.sample.boxes, lb.scale, lb.pad_x, lb.pad_y, w, h);
    EXPECT_TRUE(back.allclose(original, 0, 1e-3)) << w << "x" << h << ": " << back;
  }
  // Boxes reaching into the padding are clipped to the image.
  const at::Tensor clipped = unletterbox(at::tensor({-5.f, -5.f, 70.f, 70.f}).view({1, 4}), 0.64, 0, 10, 100, 37);
  EXPECT_TRUE(clipped.equal(at::tensor({0.f, 0.f, 100.f, 37.f}).view({1, 4})));
  EXPECT_THROW_WITH(unletterbox(at::zeros({1, 4}), 0, 0, 0, 10, 10), UsageError, "positive scale", "augment::letterbox");
}
