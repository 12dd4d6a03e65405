// Reading what a training run directory or an evaluation output directory holds, into plain structs for
// the HTML report. Torch-free.
//
// What it reads (every file optional; names relative to the directory):
//   results.csv       per-epoch rows written by the trainer (columns found by their header names; extra
//                     columns are ignored; a value "nan"/"inf" becomes NaN)
//   events.json       the trainer's guardrail and out-of-memory events
//   metrics.json      either a run's summary (keys "epochs_completed" / "best") or an evaluation's (keys
//                     "stats" and "per_class"); the layout decides `kind`
//   val/metrics.json  an evaluation's metrics inside a run directory
//   curves.json, val/curves.json      eval/detection_metrics.h's JSON (PR, confidence curves, confusion)
//   samples.jpg, val/samples.jpg      a JPEG grid of validation images
//   data-check.json   `detkit check --json` output; data-check.txt (its text form) when the JSON is absent
//   environment.txt, config.yaml      shown as text (config.yaml must parse as YAML)
//   lr_find.json, lr-find/lr_find.json  the learning-rate range test (train/lr_find.h): `detkit lr-find`'s
//                     output directory, or a run trained with lr0: auto
//   audit.json, audit/audit.json      a label audit (audit/label_audit.h, version 1): `detkit audit`'s output
//                     directory, or a run directory holding one in audit/; the side-by-side crops it names
//                     (relative to the audit.json's directory, e.g. crops/S0001.jpg) are read as bytes
// For each of curves.json and samples.jpg, val/NAME is used when it exists, else NAME.
//
// Guarantees: nothing is written; a file that is absent leaves its field empty (std::nullopt).
//
// Throws: DataError naming the file (`where`) when a present file cannot be read or is damaged: invalid
// JSON, CSV or YAML, a missing required key or column, a value of the wrong type, a samples image or an
// audit crop that is not a JPEG (a crop that audit.json names but that is absent is not an error: its
// bytes are left empty), an audit.json of another version or naming a crop outside its directory;
// DataError when `dir` is not a directory or holds none of the files above.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace detkit::report {

namespace fs = std::filesystem;

// One row of results.csv. Columns absent from the file are NaN (numbers) or -1 (counters).
struct EpochRow {
  int64_t epoch = 0;
  double box_loss = 0, cls_loss = 0, dfl_loss = 0, lr = 0;
  double map50 = -1, map50_95 = -1;  // -1: not evaluated that epoch
  double seconds = 0, images_per_second = 0, data_wait_share = 0, peak_memory_bytes = 0;
  int64_t skipped_steps = -1, oom_events = -1, rollbacks = -1, micro_batch = -1;
};

struct TrainingEvent {
  std::string kind;  // non_finite_loss, non_finite_gradient, rollback, out_of_memory (others shown as is)
  int64_t epoch = 0, batch = 0, optimizer_steps = 0;
  std::string message;
};

using NamedValues = std::vector<std::pair<std::string, double>>;  // in file order

// metrics.json of a training run.
struct RunMetrics {
  std::string model;
  int64_t epochs_completed = 0, optimizer_steps = 0, samples_seen = 0;
  int64_t best_epoch = 0;  // 1-based; 0 when no evaluation improved
  bool has_best = false;
  NamedValues best_stats;         // the 12 COCO stats of the best epoch (AP, AP50, ...)
  NamedValues best_per_class_ap;  // class name -> AP50-95 at the best epoch
  double final_map50 = -1, final_map50_95 = -1, seconds = 0;
  int64_t skipped_steps = 0, rollbacks = 0, oom_events = 0, micro_batch = 0;
  bool stopped_early = false, interrupted = false;
};

struct ClassResult {
  int64_t category_id = 0;
  std::string name;
  int64_t ground_truth = 0, detections = 0;
  double ap = -1, ap50 = -1, precision = 0, recall = -1, f1 = -1;  // -1: no ground truth
};

// metrics.json of an evaluation (`detkit eval --model`, or a run's val/).
struct EvalMetrics {
  std::string model, split;
  int64_t imgsz = 0, images = 0, detections = 0;
  NamedValues stats;  // the 12 COCO stats
  double best_confidence = 0;
  std::vector<ClassResult> per_class;
};

// curves.json (eval/detection_metrics.h).
struct Curves {
  std::vector<std::string> class_names;  // one per evaluated class
  std::vector<double> class_ap50;        // per class; -1 without ground truth
  std::vector<double> recall;                   // the 101 recall thresholds
  std::vector<std::vector<double>> precision;   // per class, at `recall`; all -1 without ground truth
  std::vector<double> confidence;               // the confidence grid
  std::vector<std::vector<double>> f1;          // per class, at `confidence`; all -1 without ground truth
  double best_confidence = 0;
  // Confusion matrix: rows predicted, columns true; the last label is "background".
  std::vector<std::string> confusion_labels;
  std::vector<std::vector<double>> confusion;
  double confusion_confidence = 0, confusion_iou = 0;
};

// data-check.json (`detkit check --json`).
struct DataCheck {
  std::string format, root;
  int64_t errors = 0, warnings = 0, infos = 0;
  int64_t images = 0, annotations = 0, empty_images = 0, imgsz = 0, tiny_boxes = 0;
  double imbalance_ratio = 0;
  std::vector<std::pair<std::string, int64_t>> images_per_split, boxes_per_class, box_size_histogram;
};

// lr_find.json (train/lr_find.h).
struct LrFind {
  std::string model, optimizer, device;
  int64_t imgsz = 0, batch = 0, accumulate = 1, steps_planned = 0, steps_run = 0, images = 0;
  double start = 0, end = 0, seconds = 0;
  double suggested_lr = 0, min_loss_lr = 0, steepest_lr = 0, diverged_lr = 0;
  bool diverged = false, interrupted = false;
  std::vector<std::string> notes;
  std::vector<double> lr, loss, smoothed;  // per step; NaN where the loss was not finite
};

// One suspect of audit.json; JSON nulls become std::nullopt (numbers, boxes) or "" (texts).
struct AuditSuspect {
  std::string id;    // "S0001": the overall rank by score
  std::string kind;  // missing, spurious, wrong_class or badly_placed
  int64_t rank = 0;  // 1-based within the kind
  double score = 0;
  std::string split, file;        // file: the image, relative to the split's images
  std::string annotation_file;    // where the box is written ("" when unknown)
  int64_t line = 0;               // its line there (0: unknown)
  std::optional<std::array<double, 4>> box;        // the annotation's xyxy box; none for missing
  std::string class_name;                          // the annotation's class; "" for missing
  std::optional<std::array<double, 4>> model_box;  // the prediction that is the evidence; none for spurious
  std::string model_class;                         // "" for spurious
  std::optional<double> model_score;
  double label_score = 0;                          // the model's confidence in the label as drawn
  std::optional<double> iou;                       // of box and model_box, when both exist
  std::string evidence, fix;
  std::string crop;                        // as written in audit.json ("" when none)
  std::optional<std::string> crop_jpeg;    // its bytes, when the file is there
};

// audit.json (audit/label_audit.h, version 1).
struct Audit {
  std::string model, mode;  // mode: "in-sample" or "out-of-fold"
  int64_t folds = 0;        // 0 in-sample
  std::vector<std::string> splits;
  int64_t images = 0, annotations = 0, predictions = 0;
  std::vector<std::pair<std::string, int64_t>> counts;  // suspects per kind, in file order
  std::vector<AuditSuspect> suspects;                   // in file order (by score, highest first)
};

struct RunFiles {
  enum class Kind { training_run, evaluation };
  fs::path dir;
  Kind kind = Kind::training_run;  // evaluation: metrics.json has the evaluation layout
  std::optional<std::vector<EpochRow>> results;
  std::optional<std::vector<TrainingEvent>> events;
  std::optional<RunMetrics> run;
  std::optional<EvalMetrics> eval;
  std::string eval_metrics_file;  // where `eval` came from ("val/metrics.json" or "metrics.json")
  std::optional<Curves> curves;
  std::string curves_file;  // "val/curves.json" or "curves.json" (the one read, or the one looked for)
  std::optional<std::string> samples_jpeg;  // the bytes
  std::string samples_file;
  std::optional<DataCheck> data_check;
  std::optional<std::string> data_check_text;  // data-check.txt, read only when data-check.json is absent
  std::optional<std::string> environment, config;
  std::string config_model;  // the `model` key of config.yaml, when it has one
  std::optional<LrFind> lr_find;
  std::string lr_find_file;  // "lr_find.json" or "lr-find/lr_find.json"
  std::optional<Audit> audit;
  std::string audit_file;  // "audit.json" or "audit/audit.json"
};

RunFiles read_run_files(const fs::path& dir);

}  // namespace detkit::report
