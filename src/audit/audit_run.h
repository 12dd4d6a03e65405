// `detkit audit`: predictions for every image of a dataset, from a trained model (in-sample) or from K
// models each trained without one fold of the images (out-of-fold, so no model grades labels it learned),
// scored by audit/label_audit.h; then audit.json, side-by-side crops of the top suspects, and on request a
// corrected copy of the dataset. Torch-free itself: training and prediction go through the LibTorch plugin
// (core/torch_plugin.h), whose outputs (fold runs, predictions.json) stay in the output directory.
//
// Output directory (AuditRequest::out_dir), created when missing:
//   audit.json               label_audit.h's format
//   crops/SXXXX.jpg          the label (left, yellow box) and the model (right, cyan box) side by side
//   predictions/SPLIT/       in-sample: `detkit eval --model` outputs per audited split
//   folds/folds.json         out-of-fold: which image went to which fold (seeded; reused on a rerun)
//   folds/fold-K/            the fold's training run (on the other folds and every split not audited);
//                            fold-K/holdout/ its predictions on the held-out fold
// A rerun with the same out_dir continues: finished folds are reused, an interrupted fold's training
// resumes from its last checkpoint.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "audit/label_audit.h"
#include "data/formats_read.h"

namespace detkit::audit {

struct AuditRequest {
  const DatasetSource* source = nullptr;  // read by the caller; must stay alive during the call
  std::string data_path;                  // where `source` was read from (the fold runs' config.data)
  std::string model;                      // in-sample: a run directory or checkpoint; out-of-fold: a run
                                          // directory whose config.yaml is the recipe ("" : config_file/defaults)
  std::string config_file;                // out-of-fold: the recipe as a YAML file (instead of a run's)
  std::vector<std::string> overrides;     // out-of-fold: key=value changes to the recipe (epochs=30, ...)
  std::vector<std::string> splits;        // splits to audit (empty: all)
  int64_t folds = 0;                      // 0: in-sample; >= 2: out-of-fold with this many folds
  int64_t seed = 0;                       // fold assignment
  AuditOptions options;
  double conf = 0.01;                     // prediction confidence threshold
  double iou = 0.7;                       // NMS IoU threshold of the predictions
  int64_t imgsz = 0;                      // 0: the model's training size
  int64_t batch = 16;
  std::string device = "auto";
  std::string out_dir;
  int64_t crops_per_kind = 12;            // side-by-side crops written for the top suspects of each kind
  std::string environment_report;         // saved into the fold runs
};

struct AuditRunResult {
  AuditResult audit;
  std::string mode;                       // "in-sample" or "out-of-fold"
  std::vector<std::string> splits;        // audited
  std::string json_path;                  // OUT/audit.json
  std::vector<std::string> fold_runs;     // out-of-fold: the fold training runs
  std::size_t crops = 0;
  double seconds = 0;
};

// Predicts and audits, writes OUT/audit.json and the crops. Images the model could not read are logged and
// left out (not scored). Throws UsageError for a bad request (bad options, no model for in-sample,
// folds = 1, fewer than 2 x folds images, an out_dir holding folds of other images or another recipe),
// InterruptedError when Ctrl-C stopped a fold's training (a rerun continues), and what the plugin throws.
AuditRunResult run_audit(const AuditRequest& request);

// The audit.json text for a result (label_audit.h describes it).
std::string audit_json(const Dataset& dataset, const AuditRunResult& run, const std::string& model, int64_t folds,
                       const AuditOptions& options);

// The readable summary: counts, then the top `top` suspects of each kind with file, line, classes,
// evidence and fix.
std::string format_audit(const Dataset& dataset, const AuditRunResult& run, std::size_t top);

// What `--fix` accepts: suspects of the listed kinds (empty: all) that are named in `ids`, or when `ids`
// is empty, that score at least min_score.
struct FixSelection {
  double min_score = 0.5;
  std::set<SuspectKind> kinds;
  std::set<std::string> ids;
};

struct AuditFixResult {
  std::size_t applied = 0, classes_changed = 0, boxes_moved = 0, boxes_removed = 0, boxes_added = 0;
  std::string changes_file;               // OUT/audit-changes.json
  std::vector<std::string> notes;         // what the copy could not hold (images left out, and why)
};

// Writes the dataset with the accepted suspects applied (class changed to the model's, box replaced by the
// model's, spurious box removed, missing box added) to `out_dir` in the source's layout, with
// OUT/audit-changes.json listing each change (before and after). The input is never modified. Needs
// `audit` made by audit_dataset on source.dataset (its indices point into it). Throws
// UsageError for a non-empty out_dir or an id in `selection.ids` that is not a suspect; RunError on
// write failures.
AuditFixResult write_audit_fix(const DatasetSource& source, const AuditResult& audit, const FixSelection& selection,
                               const std::string& out_dir);

}  // namespace detkit::audit
