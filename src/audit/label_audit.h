// Finding wrong labels with a trained model (`detkit audit`): every annotation is compared with what the
// model predicts on its image, and every confident prediction with the annotations, and the disagreements
// are ranked as suspects of four kinds. Torch-free: the predictions come in as plain boxes (from
// `detkit eval --model`'s predictions.json, or out-of-fold models: audit/audit_run.h).
//
// The kinds, and the evidence each is ranked by (scores are the model's confidences, 0..1):
//   wrong_class   a box whose place the model recognises as another class:
//                 score = other-class confidence x (1 - the labelled class's confidence), both at IoU >= 0.5
//   badly_placed  a box the model sees the object of, of the same class, but elsewhere or at another size:
//                 a confident same-class prediction overlapping it with IoU in [min_overlap, placement_iou)
//                 that no other box explains better and that is more confident than any same-class
//                 prediction fitting the box (else it is a neighbouring object); score = its confidence x
//                 (1 - IoU) x (1 - the confidence of any same-class prediction at IoU >= placement_iou)
//   spurious      a box where the model sees no object: score = 1 - the highest confidence of any class
//                 within IoU >= support_iou of it (or overlapping it most, by IoU >= min_overlap); reported
//                 only when that confidence is below spurious_support
//   missing       a confident prediction that no box covers (IoU < missing_iou with every box, and not the
//                 evidence of a badly placed box); one per object (class-agnostic NMS); score = confidence
//                 x how often the dataset's annotators box such predictions (the labelling policy below)
// The labelling policy: datasets leave some objects unlabelled on purpose (BCCD's annotators skip most red
// cells cut by the image edge). Among all confident predictions of the audited images, the share that a box
// covers, per class and per "touches the image edge", is the rate at which annotators label such objects;
// a missing suspect in a group they rarely label is weaker evidence than one in a group they always label.
// The image's own labelling corrects it: the share of its other confident objects of the group that are
// boxed, with the dataset's rate as a prior worth 4 objects (a deletion stands out in a carefully labelled
// image; in an image whose annotator skipped half the cells it does not).
// Each annotation is reported at most once, as its most likely kind (the highest score); each prediction
// is the evidence of at most one suspect. COCO crowd regions are not judged, and a prediction mostly
// inside one is covered (never missing).
//
// audit.json (write_audit_json), version 1:
//   {"version": 1, "model": "...", "mode": "in-sample" | "out-of-fold", "folds": K (0 in-sample),
//    "splits": ["train", ...], "images": N, "annotations": M, "predictions": P,
//    "options": {"min_score": .., "match_iou": .., "placement_iou": .., "support_iou": .., "missing_iou": ..,
//                "min_overlap": .., "spurious_support": ..},
//    "counts": {"missing": a, "spurious": b, "wrong_class": c, "badly_placed": d},
//    "labeling_policy": [{"class": "RBC", "at_edge": true, "predicted": 812, "boxed": 301, "rate": 0.371}, ...],
//    "suspects": [ {
//       "id": "S0001",                    // stable within the file: rank order over all kinds
//       "kind": "wrong_class",            // missing | spurious | wrong_class | badly_placed
//       "rank": 1,                        // 1-based rank within its kind
//       "score": 0.93,
//       "split": "train", "image_id": 12, "file": "BloodImage_00001.jpg",  // file relative to the split's images
//       "image_path": "/abs/or/relative/path/to/the/image.jpg",
//       "annotation_id": 55 | null,       // null for missing
//       "annotation_file": "..." , "line": 7 | 0,   // where the box is written (0: unknown)
//       "box": [x1, y1, x2, y2] | null,   // the annotation's box (pixels); null for missing
//       "class": "RBC" | null,            // the annotation's class; null for missing
//       "model_box": [x1, y1, x2, y2] | null,   // the prediction that is the evidence; null for spurious
//       "model_class": "WBC" | null, "model_score": 0.9 | null,
//       "label_score": 0.02,              // the model's confidence in the label as drawn (class at IoU >= match_iou)
//       "iou": 0.85 | null,               // IoU of box and model_box
//       "evidence": "one sentence", "fix": "one sentence",
//       "crop": "crops/S0001.jpg" | null  // label (left) and model (right) side by side, when written
//    }, ... ]}
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace detkit::audit {

enum class SuspectKind { missing, spurious, wrong_class, badly_placed };
const char* suspect_kind_name(SuspectKind kind);  // "missing", "spurious", "wrong_class", "badly_placed"
// The kind called `name`, or nullopt.
std::optional<SuspectKind> parse_suspect_kind(const std::string& name);

// One prediction on one image, in the image's pixels.
struct Prediction {
  std::array<double, 4> box{};  // xyxy
  double score = 0;             // confidence, 0..1
  int64_t class_index = 0;      // 0-based position in Dataset::categories
};

struct AuditOptions {
  double min_score = 0.1;      // suspects scoring less are not reported
  double match_iou = 0.5;      // a prediction supports a box's class at this IoU or more
  double placement_iou = 0.6;  // a same-class prediction below this IoU (and above min_overlap) means badly placed
  double min_overlap = 0.1;    // below this IoU a prediction is about another object
  double support_iou = 0.3;    // any prediction this close is evidence that an object is there (spurious)
  double missing_iou = 0.3;    // a prediction overlapping every box less than this is a missing box
  double spurious_support = 0.1;  // a box is spurious only when nothing near it is predicted this confidently
  bool labeling_policy = true;    // weigh missing suspects by the labelling policy learnt from the data
};

// How often confident predictions are covered by a box, per (class index, touches the image edge).
struct LabelingPolicy {
  struct Group {
    std::size_t predicted = 0;  // confident predictions (score >= min_score), one per object
    std::size_t boxed = 0;      // of which a box covers (IoU >= missing_iou)
  };
  std::map<std::pair<int64_t, bool>, Group> groups;
  // (boxed + 1) / (predicted + 2): the share annotators box, smoothed so an empty group gives 1/2.
  double rate(int64_t class_index, bool at_edge) const;
};

// True when `box` reaches within 2 pixels of the edge of `image` (whose width and height must be known;
// false when they are 0).
bool touches_edge(const ImageRecord& image, const std::array<double, 4>& box);

struct Suspect {
  SuspectKind kind = SuspectKind::missing;
  double score = 0;
  int64_t rank = 0;                         // 1-based within the kind
  std::string id;                           // "S0001": overall rank by score
  std::size_t split_index = 0;              // into Dataset::splits
  std::size_t image_index = 0;              // into the split's images
  std::optional<std::size_t> annotation_index;  // into the image's annotations; none for missing
  std::optional<Prediction> prediction;     // the evidence; none for spurious
  double label_score = 0;                   // the model's confidence in the label as drawn
  std::optional<double> iou;                // of the annotation and the prediction, when both exist
  std::string evidence, fix;                // sentences, with class names
  std::string crop;                         // relative path of the side-by-side crop ("" when none)
};

// Predictions per image: key (split index, image index).
using PredictionMap = std::map<std::pair<std::size_t, std::size_t>, std::vector<Prediction>>;

struct AuditResult {
  std::vector<Suspect> suspects;  // all kinds, by score (highest first); ids follow this order
  LabelingPolicy policy;          // learnt from the audited images (empty when options.labeling_policy is off)
  std::size_t images = 0, annotations = 0, predictions = 0;
  std::map<SuspectKind, std::size_t> counts;
};

// Scores one image: its annotations (boxes of undeclared classes and crowd regions are skipped) against
// its predictions. Suspects come back unranked, with split_index/image_index left 0. `policy` (may be
// null: every group labelled at rate 1) weighs the missing suspects.
std::vector<Suspect> audit_image(const Dataset& dataset, const ImageRecord& image, const std::vector<Prediction>& predictions,
                                 const AuditOptions& options, const LabelingPolicy* policy = nullptr);

// Positions in Dataset::splits of the splits called `names` (all splits when empty), each once, in the
// order given. Throws UsageError for an unknown name, listing the splits there are.
std::vector<std::size_t> audited_splits(const Dataset& dataset, const std::vector<std::string>& names);

// Throws UsageError for options outside [0, 1] or min_overlap >= placement_iou.
void validate_audit_options(const AuditOptions& options);

// Audits every image of the splits named in `splits` (all splits when empty; a name given twice counts once) that has an entry in
// `predictions` (images without one were not predicted and are skipped, not counted). Suspects are
// ranked and given ids. Throws UsageError for options outside [0, 1] or an unknown split.
AuditResult audit_dataset(const Dataset& dataset, const PredictionMap& predictions, const std::vector<std::string>& splits,
                          const AuditOptions& options);

// The xyxy corners of `box`, whatever its format.
std::array<double, 4> xyxy_corners(const Box& box);

// The name of the category at `index` in Dataset::categories ("class N" when there is none).
std::string category_name(const Dataset& dataset, int64_t index);

// Intersection over union of two xyxy boxes (0 when either is empty).
double box_iou(const std::array<double, 4>& a, const std::array<double, 4>& b);

}  // namespace detkit::audit
