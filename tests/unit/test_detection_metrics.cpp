// Tests for eval/detection_metrics (PR and confidence curves, best-F1 point, confusion matrix, JSON) and
// eval/detections_io (COCO results and YOLO txt writers): hand-computed cases, and AP50 against COCOeval's
// on the shared pycocotools fixtures.
#include "eval/detection_metrics.h"
#include "eval/detections_io.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "eval/coco_eval.h"
#include "test_util.h"

#ifndef DETKIT_TEST_DATA_DIR
#error "DETKIT_TEST_DATA_DIR must be defined (absolute path of tests/data)"
#endif

namespace detkit {
namespace {

using json = nlohmann::json;
using detkit::testing::TempDir;

std::string fixture_dir() { return std::string(DETKIT_TEST_DATA_DIR) + "/coco-eval/"; }

CocoGtBox gt_box(int64_t id, int64_t image, int64_t cat, double x, double y, double w, double h, bool crowd = false) {
  CocoGtBox b;
  b.id = id;
  b.image_id = image;
  b.category_id = cat;
  b.x = x;
  b.y = y;
  b.w = w;
  b.h = h;
  b.area = w * h;
  b.iscrowd = crowd;
  return b;
}

CocoDetection det(int64_t image, int64_t cat, double x, double y, double w, double h, double score) {
  CocoDetection d;
  d.image_id = image;
  d.category_id = cat;
  d.x = x;
  d.y = y;
  d.w = w;
  d.h = h;
  d.score = score;
  return d;
}

// Two images, categories 1 and 2 (positions 0 and 1); background is position 2.
CocoGroundTruth two_class_gt(std::vector<CocoGtBox> boxes) {
  CocoGroundTruth gt;
  gt.image_ids = {1, 2};
  gt.category_ids = {2, 1};  // unsorted on purpose: classes come out sorted by id
  gt.annotations = std::move(boxes);
  return gt;
}

// ------------------------------------------------------------------------------------------------
// Hand-computed cases.

TEST(DetectionMetrics, PerfectDetectionsGiveOnesAndADiagonalMatrix) {
  const CocoGroundTruth gt = two_class_gt({gt_box(1, 1, 1, 10, 10, 50, 40), gt_box(2, 1, 2, 100, 100, 30, 30),
                                           gt_box(3, 2, 1, 0, 0, 20, 20)});
  const std::vector<CocoDetection> dts = {det(1, 1, 10, 10, 50, 40, 0.9), det(1, 2, 100, 100, 30, 30, 0.8),
                                          det(2, 1, 0, 0, 20, 20, 0.7)};
  const DetectionMetrics m = compute_detection_metrics(gt, dts);

  ASSERT_EQ(m.classes.size(), 2u);
  EXPECT_EQ(m.classes[0].category_id, 1);
  EXPECT_EQ(m.classes[1].category_id, 2);
  EXPECT_EQ(m.classes[0].num_gt, 2u);
  EXPECT_EQ(m.classes[0].num_detections, 2u);
  EXPECT_EQ(m.classes[1].num_gt, 1u);
  EXPECT_EQ(m.classes[1].num_detections, 1u);
  for (const ClassDetectionMetrics& c : m.classes) {
    EXPECT_DOUBLE_EQ(c.ap, 1.0);
    EXPECT_EQ(c.precision, 1.0);
    EXPECT_EQ(c.recall, 1.0);
    EXPECT_EQ(c.f1, 1.0);
    ASSERT_EQ(c.pr_curve.size(), 101u);
  }
  EXPECT_DOUBLE_EQ(m.map, 1.0);
  EXPECT_EQ(m.mean_f1, 1.0);
  EXPECT_EQ(m.best_index, 0u);  // every confidence up to 0.7 gives F1 = 1; the first wins
  EXPECT_EQ(m.best_confidence, 0.0);
  EXPECT_EQ(m.confidence_grid.size(), 1000u);
  EXPECT_EQ(m.confidence_grid.front(), 0.0);
  EXPECT_EQ(m.confidence_grid.back(), 1.0);

  const ConfusionMatrix& cm = m.confusion;
  ASSERT_EQ(cm.size(), 3u);
  EXPECT_EQ(cm.at(0, 0), 2);
  EXPECT_EQ(cm.at(1, 1), 1);
  for (std::size_t r = 0; r < 3; ++r)
    for (std::size_t c = 0; c < 3; ++c)
      if (r != c) {
        EXPECT_EQ(cm.at(r, c), 0) << r << "," << c;
      }
  EXPECT_EQ(cm.at(2, 2), 0);
}

TEST(DetectionMetrics, ConfidenceCurvesAndPrCurveByHand) {
  // One class, two objects. Detections by score: TP (0.9), FP (0.6), TP (0.3).
  CocoGroundTruth gt;
  gt.image_ids = {1};
  gt.category_ids = {7};
  gt.annotations = {gt_box(1, 1, 7, 0, 0, 10, 10), gt_box(2, 1, 7, 50, 50, 10, 10)};
  const std::vector<CocoDetection> dts = {det(1, 7, 0, 0, 10, 10, 0.9), det(1, 7, 200, 200, 10, 10, 0.6),
                                          det(1, 7, 50, 50, 10, 10, 0.3)};
  DetectionMetricsOptions options;
  options.confidence_points = 11;  // 0, 0.1, ..., 1
  const DetectionMetrics m = compute_detection_metrics(gt, dts, options);
  const ClassDetectionMetrics& c = m.classes.at(0);
  const ConfidenceCurves& cc = c.confidence_curves;

  // c = 0.2: all three; P 2/3, R 1, F1 0.8.
  EXPECT_NEAR(cc.precision[2], 2.0 / 3.0, 1e-15);
  EXPECT_EQ(cc.recall[2], 1.0);
  EXPECT_NEAR(cc.f1[2], 0.8, 1e-15);
  // c = 0.5: 0.9 and 0.6; P 1/2, R 1/2, F1 1/2.
  EXPECT_EQ(cc.precision[5], 0.5);
  EXPECT_EQ(cc.recall[5], 0.5);
  EXPECT_EQ(cc.f1[5], 0.5);
  // c = 0.7: only 0.9; P 1, R 1/2.
  EXPECT_EQ(cc.precision[7], 1.0);
  EXPECT_EQ(cc.recall[7], 0.5);
  // c = 1: nothing left; precision 0 by convention.
  EXPECT_EQ(cc.precision[10], 0.0);
  EXPECT_EQ(cc.recall[10], 0.0);
  EXPECT_EQ(cc.f1[10], 0.0);

  // Best mean F1 (0.8) holds from 0 to 0.3; the lowest confidence wins.
  EXPECT_EQ(m.best_index, 0u);
  EXPECT_NEAR(c.f1, 0.8, 1e-15);
  EXPECT_NEAR(m.mean_f1, 0.8, 1e-15);

  // Precision envelope: recall <= 0.5 -> 1, recall > 0.5 -> 2/3 (tp / (tp + fp + eps), as pycocotools).
  for (std::size_t r = 0; r < 101; ++r) {
    const double want = m.recall_grid[r] <= 0.5 ? 1.0 : 2.0 / 3.0;
    EXPECT_NEAR(c.pr_curve[r], want, 1e-15) << "recall " << m.recall_grid[r];
  }
  EXPECT_NEAR(c.ap, (51 * 1.0 + 50 * 2.0 / 3.0) / 101.0, 1e-15);
}

TEST(DetectionMetrics, WrongClassLandsOffDiagonal) {
  // Class 1 object, predicted as class 2: row = predicted (2 -> position 1), column = true (1 -> 0).
  const CocoGroundTruth gt = two_class_gt({gt_box(1, 1, 1, 10, 10, 50, 50)});
  const std::vector<CocoDetection> dts = {det(1, 2, 12, 10, 50, 50, 0.9)};
  const ConfusionMatrix cm = compute_confusion_matrix(gt, dts);
  ASSERT_EQ(cm.size(), 3u);
  EXPECT_EQ(cm.at(1, 0), 1);
  EXPECT_EQ(cm.at(0, 0), 0);
  EXPECT_EQ(cm.at(2, 0), 0);  // not missed: it was confused
  EXPECT_EQ(cm.at(1, 2), 0);  // not a background false positive either

  // The curves count it per class: a FP for class 2, a miss for class 1.
  const DetectionMetrics m = compute_detection_metrics(gt, dts);
  EXPECT_EQ(m.classes[0].ap, 0.0);
  EXPECT_EQ(m.classes[1].ap, -1.0);  // no class-2 ground truth
  EXPECT_EQ(m.classes[1].recall, -1.0);
  EXPECT_EQ(m.classes[1].precision, 0.0);
}

TEST(DetectionMetrics, SameClassMatchesBeforeCrossClass) {
  // A correct detection with IoU ~0.82 and a wrong-class one with IoU 1: the correct one is the match; the
  // wrong-class one is then a background false positive.
  const CocoGroundTruth gt = two_class_gt({gt_box(1, 1, 1, 0, 0, 100, 100)});
  const std::vector<CocoDetection> dts = {det(1, 1, 10, 0, 100, 100, 0.6), det(1, 2, 0, 0, 100, 100, 0.9)};
  const ConfusionMatrix cm = compute_confusion_matrix(gt, dts);
  EXPECT_EQ(cm.at(0, 0), 1);
  EXPECT_EQ(cm.at(1, 0), 0);
  EXPECT_EQ(cm.at(1, 2), 1);
}

TEST(DetectionMetrics, UnmatchedGroundTruthAndDetectionsGoToBackground) {
  const CocoGroundTruth gt = two_class_gt({gt_box(1, 1, 1, 0, 0, 20, 20), gt_box(2, 2, 2, 0, 0, 20, 20),
                                           gt_box(3, 2, 1, 300, 300, 20, 20)});
  const std::vector<CocoDetection> dts = {
      det(1, 1, 0, 0, 20, 20, 0.9),      // correct
      det(2, 2, 100, 100, 20, 20, 0.8),  // nothing there: background FP of class 2
      det(2, 1, 300, 300, 20, 20, 0.1),  // would match, but below the 0.25 threshold: the object is missed
      det(2, 2, 0, 0, 20, 20, 0.2),      // below the threshold too: class 2's object is missed
  };
  const ConfusionMatrix cm = compute_confusion_matrix(gt, dts, 0.25, 0.45);
  EXPECT_EQ(cm.at(0, 0), 1);
  EXPECT_EQ(cm.at(1, 2), 1);  // predicted class 2, truly background
  EXPECT_EQ(cm.at(2, 0), 1);  // class 1 missed
  EXPECT_EQ(cm.at(2, 1), 1);  // class 2 missed
  EXPECT_EQ(cm.at(2, 2), 0);
  int64_t total = 0;
  for (int64_t v : cm.counts) total += v;
  EXPECT_EQ(total, 4);

  // With no confidence threshold everything matches.
  const ConfusionMatrix all = compute_confusion_matrix(gt, dts, 0.0, 0.45);
  EXPECT_EQ(all.at(0, 0), 2);
  EXPECT_EQ(all.at(1, 1), 1);
  EXPECT_EQ(all.at(1, 2), 1);
  EXPECT_EQ(all.at(2, 0), 0);
  EXPECT_EQ(all.at(2, 1), 0);
}

TEST(DetectionMetrics, IouThresholdOfTheConfusionMatrixIsInclusive) {
  // Detection [0,0,10,10] vs ground truth [0,0,20,10]: IoU exactly 0.5.
  const CocoGroundTruth gt = two_class_gt({gt_box(1, 1, 1, 0, 0, 20, 10)});
  const std::vector<CocoDetection> dts = {det(1, 1, 0, 0, 10, 10, 0.9)};
  EXPECT_EQ(compute_confusion_matrix(gt, dts, 0.25, 0.5).at(0, 0), 1);
  const ConfusionMatrix strict = compute_confusion_matrix(gt, dts, 0.25, 0.51);
  EXPECT_EQ(strict.at(0, 2), 1);
  EXPECT_EQ(strict.at(2, 0), 1);
}

TEST(DetectionMetrics, DetectionsOnCrowdRegionsAreIgnored) {
  const CocoGroundTruth gt = two_class_gt({gt_box(1, 1, 1, 0, 0, 200, 200, /*crowd=*/true),
                                           gt_box(2, 1, 1, 300, 300, 20, 20)});
  const std::vector<CocoDetection> dts = {det(1, 1, 10, 10, 20, 20, 0.9), det(1, 1, 300, 300, 20, 20, 0.8)};
  const DetectionMetrics m = compute_detection_metrics(gt, dts);
  const ClassDetectionMetrics& c = m.classes[0];
  EXPECT_EQ(c.num_gt, 1u);
  EXPECT_EQ(c.num_ignored_gt, 1u);
  EXPECT_EQ(c.num_detections, 2u);
  EXPECT_EQ(c.num_ignored_detections, 1u);
  EXPECT_DOUBLE_EQ(c.ap, 1.0);
  EXPECT_EQ(c.precision, 1.0);
  EXPECT_EQ(m.confusion.at(0, 0), 1);
  EXPECT_EQ(m.confusion.at(0, 2), 0);
  EXPECT_EQ(m.confusion.at(2, 0), 0);  // the crowd region is never "missed"
  EXPECT_EQ(m.confusion.ignored_on_crowd, 1u);
}

TEST(DetectionMetrics, AtMostMaxDetectionsPerImageAndClass) {
  CocoGroundTruth gt;
  gt.image_ids = {1};
  gt.category_ids = {1};
  gt.annotations = {gt_box(1, 1, 1, 0, 0, 10, 10)};
  std::vector<CocoDetection> dts;
  for (int i = 0; i < 101; ++i) dts.push_back(det(1, 1, 500 + i, 0, 10, 10, 0.5 + i * 0.001));
  dts.push_back(det(1, 1, 0, 0, 10, 10, 0.01));  // the match, but the 102nd by score
  EXPECT_EQ(compute_detection_metrics(gt, dts).classes[0].num_detections, 100u);
  EXPECT_EQ(compute_detection_metrics(gt, dts).classes[0].ap, 0.0);
  DetectionMetricsOptions uncapped;
  uncapped.max_detections = 0;
  const DetectionMetrics m = compute_detection_metrics(gt, dts, uncapped);
  EXPECT_EQ(m.classes[0].num_detections, 102u);
  EXPECT_GT(m.classes[0].ap, 0.0);
}

TEST(DetectionMetrics, LeftOutInputsAreCountedInWarnings) {
  CocoGroundTruth gt = two_class_gt({gt_box(1, 1, 1, 0, 0, 10, 10), gt_box(2, 9, 1, 0, 0, 10, 10),
                                     gt_box(3, 1, 5, 0, 0, 10, 10)});
  const std::vector<CocoDetection> dts = {det(1, 5, 0, 0, 10, 10, 0.9)};
  const DetectionMetrics m = compute_detection_metrics(gt, dts);
  EXPECT_EQ(m.warnings.size(), 3u);
  EXPECT_EQ(m.classes[0].num_gt, 1u);
}

TEST(DetectionMetrics, NoGroundTruthAtAllGivesMinusOne) {
  CocoGroundTruth gt;
  gt.image_ids = {1};
  gt.category_ids = {1};
  const DetectionMetrics m = compute_detection_metrics(gt, {det(1, 1, 0, 0, 10, 10, 0.9)});
  EXPECT_EQ(m.map, -1.0);
  EXPECT_EQ(m.mean_f1, -1.0);
  EXPECT_EQ(m.best_confidence, 0.0);
  EXPECT_EQ(m.classes[0].ap, -1.0);
  EXPECT_EQ(m.confusion.at(0, 1), 1);
}

TEST(DetectionMetrics, BadInputsAndOptionsThrow) {
  const CocoGroundTruth gt = two_class_gt({gt_box(1, 1, 1, 0, 0, 10, 10)});
  EXPECT_THROW_WITH(compute_detection_metrics(gt, {det(1, 1, 0, 0, 10, 10, std::nan(""))}), DataError,
                    "detection #0", "NaN");
  EXPECT_THROW_WITH(compute_detection_metrics(gt, {det(3, 1, 0, 0, 10, 10, 0.5)}), DataError,
                    "image_id 3 is not an image", "ground truth");
  CocoGroundTruth bad = gt;
  bad.annotations[0].w = INFINITY;
  EXPECT_THROW_WITH(compute_detection_metrics(bad, {}), DataError, "annotation #0", "fix");
  DetectionMetricsOptions options;
  options.iou_threshold = 0;
  EXPECT_THROW_WITH(compute_detection_metrics(gt, {}, options), UsageError, "IoU threshold", "0.5");
  options = {};
  options.confidence_points = 1;
  EXPECT_THROW_WITH(compute_detection_metrics(gt, {}, options), UsageError, "confidence_points", "2");
  EXPECT_THROW_WITH(compute_confusion_matrix(gt, {}, 1.5, 0.45), UsageError, "confidence threshold", "[0, 1]");
}

// ------------------------------------------------------------------------------------------------
// Against COCOeval on the shared pycocotools fixtures.

class DetectionMetricsFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(DetectionMetricsFixture, Ap50AgreesWithCocoEval) {
  const std::string dir = fixture_dir() + GetParam() + "/";
  const CocoGroundTruth gt = load_coco_ground_truth(dir + "gt.json");
  const std::vector<CocoDetection> dts = load_coco_detections(dir + "dt.json");
  const CocoEvalResult coco = evaluate_coco(gt, dts);
  const DetectionMetrics m = compute_detection_metrics(gt, dts);

  ASSERT_EQ(m.classes.size(), coco.category_ids.size());
  // Same matching, same arithmetic: the curves agree to the last bit, the mean to summation order.
  double max_diff = 0;
  for (std::size_t k = 0; k < m.classes.size(); ++k) {
    const ClassDetectionMetrics& c = m.classes[k];
    ASSERT_EQ(c.category_id, coco.category_ids[k]);
    double sum = 0;
    int valid = 0;
    for (int r = 0; r < kCocoNumRecallThresholds; ++r) {
      const double p = coco.precision_at(0, r, static_cast<int>(k), 0, 2);
      EXPECT_EQ(c.pr_curve[r], p) << "category " << c.category_id << " recall point " << r;
      if (p > -1) {
        sum += p;
        ++valid;
      }
    }
    const double coco_ap50 = valid ? sum / valid : -1.0;
    EXPECT_NEAR(c.ap, coco_ap50, 1e-12) << "category " << c.category_id;
    max_diff = std::max(max_diff, std::fabs(c.ap - coco_ap50));
    // The PR curve is non-increasing after interpolation.
    for (std::size_t r = 1; r < c.pr_curve.size(); ++r) EXPECT_LE(c.pr_curve[r], c.pr_curve[r - 1]);
    // Recall at confidence 0 is the final recall of COCOeval at IoU 0.5 (maxDets 100).
    if (c.num_gt > 0) {
      EXPECT_NEAR(c.confidence_curves.recall[0], coco.recall_at(0, static_cast<int>(k), 0, 2), 1e-15);
    }
    // Recall can only fall as the confidence threshold rises.
    for (std::size_t j = 1; j < c.confidence_curves.recall.size(); ++j)
      EXPECT_LE(c.confidence_curves.recall[j], c.confidence_curves.recall[j - 1]);
  }
  EXPECT_NEAR(m.map, coco.stats[1], 1e-12);  // stats[1] is AP50
  std::printf("[ metrics  ] %s: mAP50 %.6f (COCOeval %.6f), best confidence %.3f, mean F1 %.4f, max |AP diff| %.3g\n",
              GetParam().c_str(), m.map, coco.stats[1], m.best_confidence, m.mean_f1, max_diff);

  // The confusion matrix accounts for every ground truth that is not crowd exactly once (matched or missed).
  ASSERT_TRUE(m.warnings.empty());
  std::size_t non_crowd = 0;
  for (const CocoGtBox& a : gt.annotations) non_crowd += !a.iscrowd;
  int64_t in_class_columns = 0;
  for (std::size_t r = 0; r < m.confusion.size(); ++r)
    for (std::size_t col = 0; col < m.confusion.background(); ++col) in_class_columns += m.confusion.at(r, col);
  EXPECT_EQ(static_cast<std::size_t>(in_class_columns), non_crowd);
}

INSTANTIATE_TEST_SUITE_P(Shared, DetectionMetricsFixture, ::testing::Values("mixed-200", "ties-100", "tiny-edge"));

// ------------------------------------------------------------------------------------------------
// JSON output.

TEST(DetectionMetricsJson, LayoutIsSelfDescribing) {
  const CocoGroundTruth gt = two_class_gt({gt_box(1, 1, 1, 10, 10, 50, 50), gt_box(2, 2, 2, 0, 0, 20, 20)});
  const std::vector<CocoDetection> dts = {det(1, 2, 12, 10, 50, 50, 0.9), det(2, 2, 0, 0, 20, 20, 0.8)};
  const DetectionMetrics m = compute_detection_metrics(gt, dts);
  TempDir tmp;
  const auto path = tmp / "out" / "metrics.json";
  write_detection_metrics_json(path, m, {{1, "cat"}});  // no name for category 2: written as "2"
  const json j = json::parse(read_file(path));

  EXPECT_EQ(j["format"], "detkit-detection-metrics/1");
  EXPECT_EQ(j["iou_threshold"], 0.5);
  EXPECT_EQ(j["num_images"], 2);
  EXPECT_DOUBLE_EQ(j["summary"]["mAP"].get<double>(), m.map);
  ASSERT_EQ(j["classes"].size(), 2u);
  EXPECT_EQ(j["classes"][0]["name"], "cat");
  EXPECT_EQ(j["classes"][1]["name"], "2");
  EXPECT_EQ(j["classes"][1]["category_id"], 2);
  EXPECT_EQ(j["classes"][1]["num_gt"], 1);
  EXPECT_EQ(j["classes"][1]["num_detections"], 2);
  EXPECT_EQ(j["pr_curve"]["recall"].size(), 101u);
  EXPECT_EQ(j["pr_curve"]["precision"].size(), 2u);
  EXPECT_EQ(j["pr_curve"]["precision"][1].size(), 101u);
  EXPECT_EQ(j["confidence_curves"]["confidence"].size(), 1000u);
  EXPECT_EQ(j["confidence_curves"]["f1"][0].size(), 1000u);

  const json& cm = j["confusion_matrix"];
  EXPECT_EQ(cm["rows"], "predicted");
  EXPECT_EQ(cm["columns"], "true");
  EXPECT_EQ(cm["labels"], json({"cat", "2", "background"}));
  EXPECT_EQ(cm["category_ids"], json({1, 2, nullptr}));
  EXPECT_EQ(cm["matrix"], json({{0, 0, 0}, {1, 1, 0}, {0, 0, 0}}));
  EXPECT_TRUE(j["warnings"].empty());

  // Readable: arrays of numbers stay on one line.
  const std::string text = read_file(path);
  EXPECT_LT(std::count(text.begin(), text.end(), '\n'), 100);
}

// ------------------------------------------------------------------------------------------------
// Writers.

TEST(DetectionsIo, CocoResultsRoundTripThroughTheReader) {
  const std::vector<CocoDetection> dts = {det(1, 3, 10.123456, -0.0001, 50.5, 40.25, 0.123456789),
                                          det(42, 7, 0, 0, 1e-4, 3, 1e-7), det(1, 3, 1.5, 2.5, 3.5, 4.5, 1.0)};
  TempDir tmp;
  const auto path = tmp / "results.json";
  write_coco_results(path, dts);
  const std::vector<CocoDetection> back = load_coco_detections(path.string());
  ASSERT_EQ(back.size(), dts.size());
  for (std::size_t i = 0; i < dts.size(); ++i) {
    EXPECT_EQ(back[i].image_id, dts[i].image_id);
    EXPECT_EQ(back[i].category_id, dts[i].category_id);
    EXPECT_NEAR(back[i].x, dts[i].x, 5e-4);
    EXPECT_NEAR(back[i].y, dts[i].y, 5e-4);
    EXPECT_NEAR(back[i].w, dts[i].w, 5e-4);
    EXPECT_NEAR(back[i].h, dts[i].h, 5e-4);
    EXPECT_NEAR(back[i].score, dts[i].score, 5e-6 * dts[i].score);
  }
  EXPECT_EQ(back[0].x, 10.123);
  EXPECT_EQ(back[0].y, 0.0);
  EXPECT_FALSE(std::signbit(back[0].y));
  EXPECT_EQ(back[0].score, 0.123457);
  EXPECT_EQ(back[1].score, 1e-7);
  EXPECT_NE(read_file(path).find("\"bbox\":[10.123,0.0,50.5,40.25]"), std::string::npos);  // no "-0.0"

  write_coco_results(path, {});
  EXPECT_TRUE(load_coco_detections(path.string()).empty());

  EXPECT_THROW_WITH(coco_results_to_json({det(1, 1, 0, 0, NAN, 1, 0.5)}), DataError, "detection #0", "NaN");
}

TEST(DetectionsIo, RewrittenFixtureEvaluatesIdentically) {
  // The fixtures' results already have 3 decimals and 6-digit scores: rewriting them changes nothing.
  const std::string dir = fixture_dir() + "mixed-200/";
  const std::vector<CocoDetection> dts = load_coco_detections(dir + "dt.json");
  TempDir tmp;
  write_coco_results(tmp / "dt.json", dts);
  const CocoEvalResult original = evaluate_coco_files(dir + "gt.json", dir + "dt.json");
  const CocoEvalResult rewritten = evaluate_coco_files(dir + "gt.json", (tmp / "dt.json").string());
  for (int i = 0; i < 12; ++i) EXPECT_EQ(rewritten.stats[i], original.stats[i]) << coco_stat_names()[i];
}

TEST(DetectionsIo, YoloTxtPerImage) {
  const std::vector<YoloImageInfo> images = {{1, "train/000001.jpg", 200, 100}, {2, "000002.png", 640, 480}};
  const std::vector<CocoDetection> dts = {det(1, 5, 10, 20, 50, 40, 0.5), det(1, 9, 0, 0, 200, 100, 0.75)};
  TempDir tmp;
  write_yolo_detections(tmp / "labels", dts, images, {{5, 0}, {9, 3}});
  EXPECT_EQ(read_file(tmp / "labels" / "000001.txt"),
            "3 0.500000 0.500000 1.000000 1.000000 0.750000\n"
            "0 0.175000 0.400000 0.250000 0.400000 0.500000\n");
  EXPECT_EQ(read_file(tmp / "labels" / "000002.txt"), "");
}

TEST(DetectionsIo, YoloErrorsNameTheRecordAndWriteNothing) {
  TempDir tmp;
  const auto out = tmp / "labels";
  const std::vector<YoloImageInfo> images = {{1, "a.jpg", 100, 100}, {2, "b.jpg", 100, 100}};
  EXPECT_THROW_WITH(write_yolo_detections(out, {det(1, 4, 0, 0, 1, 1, 0.5)}, images, {{5, 0}}), DataError,
                    "category_id 4 has no YOLO class index", "mapping");
  EXPECT_THROW_WITH(write_yolo_detections(out, {det(3, 5, 0, 0, 1, 1, 0.5)}, images, {{5, 0}}), DataError,
                    "image_id 3", "pass every image");
  EXPECT_THROW_WITH(write_yolo_detections(out, {}, {{1, "x/a.jpg", 10, 10}, {2, "y/a.png", 10, 10}}, {}),
                    DataError, "a.txt", "rename");
  EXPECT_THROW_WITH(write_yolo_detections(out, {}, {{1, "a.jpg", 0, 10}}, {}), DataError, "image #0", "size");
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace detkit
