// Detection metrics beyond COCO AP: per-class precision-recall curves, precision / recall / F1 as
// functions of the confidence threshold, the operating point that maximises the mean F1, and a confusion
// matrix. Torch-free; the inputs are coco_eval.h's in-memory structs (boxes xywh in pixels).
//
// What it is:
//   - compute_detection_metrics: one matching per (image, class) at a single IoU threshold (default 0.5)
//     that is exactly COCOeval's at that threshold with area range 'all' and maxDets 100: detections
//     stably sorted by score and cut to 100 per image and class, greedy in score order, each taking the
//     unmatched ground truth of highest IoU >= the threshold (of equal IoUs the later one, as pycocotools
//     does), non-ignored ground truth preferred. Crowd ground truth (and ground truth whose 'area' lies
//     outside COCO's [0, 1e10]) is ignored: detections matched to it count neither as TP nor as FP, and
//     it is not counted in the recall's denominator. From that matching:
//       * pr_curve: recall -> interpolated precision sampled at COCO's 101 recall thresholds
//         (coco_recall_thresholds(); precision envelope, searchsorted 'left', 0 past the highest recall),
//         computed with pycocotools' arithmetic, so its mean (AP50) equals COCOeval's precision[0, :, k,
//         all, 100] mean to rounding (~1e-16). The only intended difference: pycocotools counts a match to a
//         ground truth whose annotation id is 0 as unmatched (a bug kept in coco_eval); here it is a match;
//       * confidence_curves: at each confidence c of a grid of `confidence_points` values from 0 to 1
//         (np.linspace), the detections with score >= c give precision = TP / (TP + FP) (0 when there is
//         no such detection), recall = TP / number of ground truths, and F1 = 2PR / (P + R) (0 when P + R is
//         0). Exact step functions: no interpolation between detections and no smoothing. Greedy matching in
//         score order makes these exactly what matching only the detections above c would give;
//       * the grid confidence that maximises the mean F1 over the classes with ground truth (the lowest
//         such confidence on ties), and each class's precision, recall and F1 there.
//   - compute_confusion_matrix: a (C+1) x (C+1) count matrix over the C evaluated categories plus
//     background, at a confidence threshold (default 0.25) and an IoU threshold (default 0.45).
//     ORIENTATION: rows are the PREDICTED class, columns the TRUE class; index C (the last row and column)
//     is background. Per image, detections with score >= the confidence threshold are matched one-to-one to
//     non-crowd ground truth, greedily by IoU (highest first; IoU >= threshold), in two passes: first pairs
//     of the same class, then the remaining detections and ground truth across classes. Doing same-class
//     pairs first keeps a correct detection from being taken by an overlapping box of another class, so
//     the diagonal counts exactly the correct detections. Then:
//       * a detection matched to a ground truth: cell [predicted class][true class] (off the diagonal when
//         the classes differ);
//       * an unmatched detection: cell [predicted class][background] (a false positive), unless it lies on
//         a crowd region of its own class (intersection / detection area >= the IoU threshold, COCO's crowd
//         rule): then it is not counted, only tallied in `ignored_on_crowd`;
//       * an unmatched ground truth: cell [background][true class] (missed);
//       * [background][background] is always 0.
//     No per-image cap on detections here (unlike the curves): every detection above the threshold counts.
//
// Classes are the ground truth's category_ids, sorted and deduplicated (COCOeval's K). As in COCOeval,
// ground truth on images not in image_ids or of categories not in category_ids, and detections of
// categories not in category_ids, are left out; each kind is counted in `warnings`.
//
// Needs: nothing but the inputs. Every function is reentrant.
//
// Guarantees: inputs are never modified; results are deterministic (same inputs, same bits, on any
// machine with IEEE doubles). The .cpp turns off floating-point contraction so IoUs round exactly as
// pycocotools' C code (a match exactly at the threshold is decided the same way).
//
// Throws: DataError naming the record for a non-finite box, score or area, and for a detection on an image
// that is not in the ground truth's image_ids; UsageError for options out of range.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "eval/coco_eval.h"

namespace detkit {

struct DetectionMetricsOptions {
  double iou_threshold = 0.5;           // for the curves and AP; in (0, 1]
  std::size_t max_detections = 100;     // per image and class, highest scores kept (COCO: 100); 0: no cap
  std::size_t confidence_points = 1000; // grid size of the confidence curves; >= 2
  double confusion_confidence = 0.25;   // confusion matrix: detections with score >= this; in [0, 1]
  double confusion_iou = 0.45;          // confusion matrix: IoU needed for a match; in (0, 1]
};

// Precision, recall and F1 at each point of DetectionMetrics::confidence_grid.
struct ConfidenceCurves {
  std::vector<double> precision;
  std::vector<double> recall;  // all -1 when the class has no ground truth
  std::vector<double> f1;      // all -1 when the class has no ground truth
};

struct ClassDetectionMetrics {
  int64_t category_id = 0;
  std::size_t num_gt = 0;          // ground truth that counts (not crowd, not ignored)
  std::size_t num_ignored_gt = 0;  // crowd (or area outside [0, 1e10]) ground truth
  std::size_t num_detections = 0;  // detections evaluated (after the per-image cap), ignored ones included
  std::size_t num_ignored_detections = 0;  // matched to ignored ground truth (or of area outside [0, 1e10])

  // Interpolated precision at DetectionMetrics::recall_grid (101 values); all -1 when num_gt == 0.
  std::vector<double> pr_curve;
  double ap = -1;  // mean of pr_curve (AP at the IoU threshold, i.e. AP50 by default); -1 when num_gt == 0
  ConfidenceCurves confidence_curves;

  // At DetectionMetrics::best_confidence. recall and f1 are -1 when num_gt == 0.
  double precision = 0, recall = -1, f1 = -1;
};

struct ConfusionMatrix {
  double confidence_threshold = 0.25;
  double iou_threshold = 0.45;
  std::vector<int64_t> category_ids;  // C categories; row / column c is category_ids[c], C is background
  // (C+1) x (C+1), row-major: counts[predicted * (C+1) + truth]. Rows predicted, columns true.
  std::vector<int64_t> counts;
  std::size_t ignored_on_crowd = 0;  // unmatched detections on a crowd region of their class (not counted)

  std::size_t size() const { return category_ids.size() + 1; }  // C + 1
  std::size_t background() const { return category_ids.size(); }
  int64_t at(std::size_t predicted, std::size_t truth) const { return counts[predicted * size() + truth]; }
};

struct DetectionMetrics {
  DetectionMetricsOptions options;
  std::vector<double> recall_grid;      // coco_recall_thresholds(): 0, 0.01, ..., 1
  std::vector<double> confidence_grid;  // np.linspace(0, 1, options.confidence_points)
  std::vector<ClassDetectionMetrics> classes;  // one per category, sorted by category id

  // Means over the classes with ground truth; -1 when no class has any.
  double map = -1;              // mean AP at the IoU threshold (mAP50 by default)
  std::size_t best_index = 0;   // into confidence_grid: the first maximum of the mean F1
  double best_confidence = 0;   // confidence_grid[best_index]
  double mean_precision = -1, mean_recall = -1, mean_f1 = -1;  // at best_confidence

  ConfusionMatrix confusion;

  std::size_t num_images = 0;         // distinct ground-truth image ids
  std::vector<std::string> warnings;  // inputs left out
};

// Computes everything above. Throws DataError (bad inputs) or UsageError (bad options).
DetectionMetrics compute_detection_metrics(const CocoGroundTruth& gt, const std::vector<CocoDetection>& detections,
                                           const DetectionMetricsOptions& options = {});

// The confusion matrix alone (see the header comment for its rules and orientation). Throws DataError
// (bad inputs) or UsageError (a threshold out of range).
ConfusionMatrix compute_confusion_matrix(const CocoGroundTruth& gt, const std::vector<CocoDetection>& detections,
                                         double confidence_threshold = 0.25, double iou_threshold = 0.45);

// The metrics as JSON text (ordered keys, 1-space indentation, arrays of numbers on one line; curve values
// rounded to 6 decimals, scalars at full precision; -1 marks "undefined: no ground truth"):
// {
//  "format": "detkit-detection-metrics/1",
//  "iou_threshold": 0.5, "max_detections": 100, "num_images": N,
//  "summary": {"mAP": .., "best_confidence": .., "precision": .., "recall": .., "f1": ..},
//  "classes": [{"index": 0, "category_id": 1, "name": "cat", "num_gt": .., "num_ignored_gt": ..,
//               "num_detections": .., "num_ignored_detections": .., "AP": .., "precision": .., "recall": ..,
//               "f1": ..}, ...],
//  "pr_curve": {"recall": [101 values], "precision": [[101 values per class, in "classes" order], ...]},
//  "confidence_curves": {"confidence": [grid], "precision": [[per class]], "recall": [[...]], "f1": [[...]]},
//  "confusion_matrix": {"rows": "predicted", "columns": "true", "confidence_threshold": 0.25,
//                       "iou_threshold": 0.45, "labels": ["cat", ..., "background"],
//                       "category_ids": [1, ..., null], "matrix": [[row 0], ...], "ignored_on_crowd": n},
//  "warnings": [...]
// }
// "AP" / "mAP" are at "iou_threshold" (AP50 by default). `class_names` maps category id -> name; a
// category without a name is written as its id ("7"), so a metrics file is never lost for a missing name.
std::string detection_metrics_to_json(const DetectionMetrics& metrics,
                                      const std::map<int64_t, std::string>& class_names);

// Writes detection_metrics_to_json atomically (write_file_atomic). Throws RunError when it cannot.
void write_detection_metrics_json(const std::filesystem::path& path, const DetectionMetrics& metrics,
                                  const std::map<int64_t, std::string>& class_names);

}  // namespace detkit
