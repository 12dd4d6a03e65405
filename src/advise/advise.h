// Training advice from a dataset's statistics and the detector's geometry (`detkit advise`).
//
// What it answers, each with the numbers behind it:
//   - which boxes the detector can learn at all: per stride level, the boxes that hold at least 1 and at
//     least 4 anchor centres after letterboxing to imgsz (counted exactly from each box's position);
//     boxes with no candidate at any level cannot be learned;
//   - whether to raise imgsz, add the planned stride-4 level, or train on tiles; dense scenes;
//   - batch, nominal batch, optimizer, learning rate, epochs and warmup for the data size and the device;
//   - class imbalance and what to do about rare classes (data actions);
//   - augmentations that suit the data (flips and rotation from symmetry tests on box statistics,
//     mosaic, scale jitter, multi-scale batches, mixup), each as a run-config key and value with its reason;
//   - a `detkit train` command line that uses only valid run-config keys.
//
// Torch-free. The detector's constants are replicated here (advise must not depend on the torch side):
//   - anchor points at cell centres ((x + 0.5) * s, (y + 0.5) * s) of levels with strides 8, 16, 32
//     (models/yolo.h, models/box_loss.h make_anchors); a stride-4 level is planned and evaluated as an option;
//   - the task-aligned assigner's candidates are the anchors strictly inside a box, top 10 kept per box
//     (models/assigner.h AssignerOptions::topk);
//   - letterbox: longer side scaled to imgsz, each side rounded, centred padding (augment/augment.h);
//   - parameters and GFLOPs of yolo-n/s/m (`detkit model info`), and a rough training-memory model.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/boxes.h"
#include "data/dataset.h"

namespace detkit::advise {

// ---- The detector's geometry (replicated constants; see the header comment) ---------------------------

inline constexpr std::array<int64_t, 3> kStrides{8, 16, 32};  // the detector's levels today
inline constexpr int64_t kPlannedStride = 4;                   // the planned extra level
inline constexpr int64_t kAssignerTopk = 10;                   // positives kept per box by the assigner
inline constexpr int64_t kMaxDet = 300;                        // detections kept per image (detect --max-det)
inline constexpr int64_t kCocoMaxDets = 100;                   // COCO AP counts the best 100 per image
inline constexpr double kAssignerEps = 1e-9;                   // "strictly inside" margin of the assigner

struct ModelScale {
  const char* name;
  double params_m;         // parameters in millions at 80 classes (`detkit model info`)
  double gflops_640;       // GFLOPs of one image at 640 x 640
  double train_mib_640;    // rough training memory per image at 640 with mixed precision (an estimate)
};
// yolo-n, yolo-s, yolo-m.
const std::vector<ModelScale>& model_scales();
// Throws UsageError naming the valid scales.
const ModelScale& model_scale(const std::string& name);

// Fixed part of the training-memory estimate (CUDA context, weights, optimizer state, workspace), MiB.
inline constexpr double kTrainOverheadMib = 1024;
// Share of the device memory the estimate lets a batch use.
inline constexpr double kUsableMemoryShare = 0.85;

// ---- Geometry helpers (exposed for tests) --------------------------------------------------------------

// Where a `width` x `height` image lands when letterboxed to `size` x `size`: x' = x * sx + pad_x.
struct Letterbox {
  double sx = 1, sy = 1;
  int64_t pad_x = 0, pad_y = 0;
};
Letterbox letterbox_geometry(int64_t width, int64_t height, int64_t size);
// An xyxy box of a `width` x `height` image in the letterboxed canvas of `size`.
Box letterbox_box(const Box& box, int64_t width, int64_t height, int64_t size);

// The anchor centres (k + 0.5) * stride, k in [0, cells), that lie strictly inside (lo, hi).
int64_t centres_inside(double lo, double hi, int64_t stride, int64_t cells);
// Anchor centres of a level with `stride` strictly inside an xyxy box on a `canvas` x `canvas` input.
int64_t anchor_candidates(const Box& box, int64_t stride, int64_t canvas);

// Two-sample Kolmogorov-Smirnov distance: the largest gap between the two empirical CDFs.
double ks_distance(std::vector<double> a, std::vector<double> b);
// The asymptotic probability of a distance at least `d` for samples of n and m when both come from one
// distribution (Kolmogorov's series with Stephens' small-sample correction).
double ks_p_value(double d, std::size_t n, std::size_t m);

// A sample compared with its own mirror image (y with 1 - y, log(w/h) with -log(w/h)).
struct SymmetryTest {
  int64_t n = 0;          // values
  double d = 0;           // KS distance between the values and their mirror
  double critical = 0;    // the 5 % critical distance for two samples of n
  double p_value = 1;     // asymptotic p-value (the mirror is not an independent sample: a guide, not exact)
  bool enough = false;    // n >= kMinShapeBoxes
  bool symmetric = false; // enough, and d <= max(critical, kSymmetryTolerance)
};
inline constexpr int64_t kMinShapeBoxes = 30;
inline constexpr double kSymmetryTolerance = 0.05;  // a gap under 5 % of the distribution is not worth acting on
// `values` against `mirror_of(v) = 2 * centre - v`.
SymmetryTest mirror_test(const std::vector<double>& values, double centre);

// ---- The advice ----------------------------------------------------------------------------------------

struct AdviseOptions {
  std::string data;                 // the dataset path, for the command line
  std::string data_format = "auto"; // written as data_format= when not auto
  std::string model = "yolo-n";
  std::string weights;              // fine-tuning from these weights ("": from scratch): lower lr0, shorter warmup
  int64_t imgsz = 640;              // planned training size (multiple of 32)
  int64_t max_imgsz = 1536;         // largest imgsz advise will suggest
  double target_share = 0.99;       // share of boxes that must get >= 1 candidate
  uint64_t memory_bytes = 0;        // device memory for the batch estimate (0: unknown)
  bool memory_is_gpu = true;        // false: host RAM (training on the CPU, fp32)
  int64_t rare_boxes = 50;          // a class with fewer boxes than this is rare (also: under rare_share)
  double rare_share = 0.01;
};

struct LevelCoverage {
  int64_t stride = 0;
  int64_t at_least_1 = 0, at_least_4 = 0;  // boxes with >= 1 / >= 4 anchor centres inside at this level
  double share_1 = 0, share_4 = 0;
};

struct ClassCount {
  int64_t category_id = 0;
  std::string name;
  int64_t count = 0;   // boxes of this class in the group counted
  int64_t boxes = 0;   // boxes of this class in all
  double share = 0;    // count / boxes
};

// Anchor candidates of every box at one imgsz, letterboxed.
struct Coverage {
  int64_t imgsz = 0;
  int64_t boxes = 0;
  std::vector<LevelCoverage> levels;    // strides 8, 16, 32, then the planned 4
  int64_t matched = 0;                  // >= 1 candidate at some level of 8/16/32
  double share_matched = 0;
  int64_t unmatched = 0;                // no candidate at any level: cannot be learned
  double share_unmatched = 0;
  int64_t unmatched_degenerate = 0;     // of those, boxes under 2 px on a side in the original image (labelling slips)
  int64_t below_topk = 0;               // fewer than kAssignerTopk candidates over all levels
  double median_candidates = 0;         // over all levels of 8/16/32
  std::vector<ClassCount> unmatched_by_class;  // most affected first (count > 0 only)
};

struct ImgszAdvice {
  int64_t planned = 0;
  double share_planned = 0;
  int64_t smallest_passing = 0;   // smallest multiple of 32 (<= max_imgsz) with share >= target; 0: none
  int64_t suggested = 0;          // planned when it passes; else the smallest passing size above it; else max
  double share_suggested = 0;
  bool raise = false;
  double gflops_planned = 0, gflops_suggested = 0;  // ~ (imgsz / 640)^2 x GFLOPs at 640
  double cost_ratio = 1;
  double median_long_side = 0;    // of the images, native pixels
  bool upsamples = false;         // the suggested size is above the median image's longer side
  std::vector<std::pair<int64_t, double>> curve;  // share of boxes with >= 1 candidate by imgsz
};

struct Stride4Advice {
  int64_t recovered = 0;          // boxes unmatched at 8/16/32 that a stride-4 level would match
  double share_recovered = 0;     // of the unmatched boxes
  double share_matched_with = 0;  // share of all boxes matched with the stride-4 level added
  int64_t anchors_now = 0, anchors_extra = 0;  // anchor points at the planned imgsz
  bool suggested = false;
};

struct TileAdvice {
  bool suggested = false;
  double median_long_side = 0;
  int64_t tile = 0, overlap = 0;  // native pixels; tile origins step by tile - overlap (a multiple of 32)
  double tiles_per_image = 0;     // mean
  double share_matched_tiled = 0; // >= 1 candidate at native resolution in a tile (or, longer than a tile, in the whole image)
  int64_t larger_than_tile = 0;   // boxes longer than a tile: they need the whole (letterboxed) images too
  bool overlap_capped = false;    // the overlap was capped at half a tile (some boxes are longer)
  double gflops_per_image = 0;    // tiles x GFLOPs at imgsz
  std::string reason;
};

struct DensityAdvice {
  double mean_boxes = 0;
  int64_t p95_boxes = 0, max_boxes = 0;
  int64_t images_over_coco_max_dets = 0, images_over_max_det = 0;
  int64_t small_boxes = 0;        // boxes with fewer than 4 x topk candidates (their candidates were checked)
  int64_t contested = 0;          // of those, boxes whose every candidate is also inside another box
  double share_contested = 0;
  bool dense = false;
};

struct Schedule {
  int64_t train_images = 0;
  uint64_t memory_bytes = 0;
  bool memory_is_gpu = true;
  double mib_per_image = 0;       // estimate at imgsz
  double overhead_mib = 0;
  int64_t batch_fit = 0;          // images that fit by the estimate
  int64_t batch = 0, nominal_batch = 0, accumulate = 0;
  int64_t batches_per_epoch = 0, steps_per_epoch = 0;  // micro-batches; optimizer steps
  int64_t epochs = 0, total_steps = 0;
  std::string optimizer = "sgd";
  double lr0 = 0.01;
  double warmup_epochs = 3;
  double warmup_bias_lr = 0.1;
  bool finetune = false;          // starting from `weights`: a fifth of the lr0, a shorter warmup and run
  std::string weights;
  std::vector<std::string> notes;
};

struct ClassStat {
  int64_t category_id = 0;
  std::string name;
  int64_t boxes = 0, images = 0;
  double share = 0;               // of all boxes
  bool rare = false;
  int64_t to_collect = 0;         // boxes to add to stop being rare
  double repeat_factor = 1;       // LVIS-style sqrt(0.1 / image fraction), for oversampling its images
};

struct ClassBalance {
  std::vector<ClassStat> classes;  // declared order, then undeclared ids
  double imbalance_ratio = 0;      // most / least boxes among classes with boxes
  int64_t unused = 0;              // declared classes without boxes
  int64_t rare = 0;
};

// Whether the data has an up. A box taller than half the image can only be centred near the middle, so
// only boxes up to half the image height ("free boxes") say anything about where objects sit. Failing to
// find an asymmetry is evidence of symmetry only when an asymmetry would have been found: enough free boxes
// for the test to resolve a KS distance of kOrientationResolution, from enough images, spread over the frame.
inline constexpr double kOrientationResolution = 0.1;  // smallest y asymmetry the test must be able to see
inline constexpr int64_t kMinOrientationBoxes = 369;   // 5 % critical KS distance <= 0.1: 2 (1.358 / 0.1)^2
inline constexpr int64_t kMinOrientationImages = 20;   // boxes of fewer images share a handful of scenes
inline constexpr double kMinOutsideMiddleShare = 0.2;  // free centres in the top or bottom quarter (uniform: 0.5)

enum class OrientationVerdict { free, has_up, unknown };
const char* to_string(OrientationVerdict verdict);

struct Orientation {
  SymmetryTest y;                  // box-centre y (fraction of the height) of the free boxes against 1 - y
  SymmetryTest aspect;             // log(w / h) against -log(w / h), every box
  int64_t free_boxes = 0;          // boxes no taller than half their image
  int64_t free_images = 0;         // images holding them
  double outside_middle_share = 0; // free box centres with y < 0.25 or y > 0.75
  double max_class_median_log_aspect = 0;  // the class whose median log(w/h) is farthest from 0 (>= 10 boxes)
  std::string most_upright_class;
  bool upright = false;            // that class is > 25 % taller or wider than its rotation
  OrientationVerdict verdict = OrientationVerdict::unknown;
  std::string evidence;            // why the verdict, with its numbers (the flipud reason)
  bool orientation_free = false;   // verdict == free: y symmetric with the evidence above, nothing upright
};

struct AugmentItem {
  std::string key;    // run-config key (augment.flipud, ...)
  std::string value;  // as written on the command line
  bool changed = false;  // differs from the default
  std::string reason;
};

struct Advice {
  std::string data, model;
  std::vector<std::string> splits;  // the splits analysed
  int64_t images = 0, boxes = 0, images_without_boxes = 0;
  int64_t skipped_boxes = 0;        // crowd, non-finite or empty after clipping
  int64_t images_without_size = 0;  // no declared size: their boxes are left out
  double median_box_px = 0;         // sqrt(area) at imgsz
  double box_px_p10 = 0, box_px_p90 = 0;  // 10th and 90th percentiles of sqrt(area) at imgsz
  Coverage coverage;                // at the planned imgsz
  ImgszAdvice imgsz;
  Stride4Advice stride4;
  TileAdvice tiles;
  DensityAdvice density;
  Schedule schedule;
  ClassBalance balance;
  Orientation orientation;
  std::vector<double> scale_share;  // share matched at scale jitter 1 - s for s = 0.5, 0.4, 0.3, 0.2, 0.1
  std::vector<AugmentItem> augment;
  std::vector<std::string> overrides;  // key=value for `detkit train` / `detkit config`
  std::string command;                 // the suggested `detkit train` line
};

// Throws UsageError for an unknown model or an imgsz / max_imgsz that is not a multiple of 32 (or max < imgsz).
void validate_options(const AdviseOptions& options);

// Advice for `dataset` (its "train" split when there is one, else every split). Throws UsageError for an
// unknown model or an imgsz that is not a multiple of 32, DataError when no box can be analysed.
Advice advise_training(const Dataset& dataset, const AdviseOptions& options);

// Readable text: sections, each point with its numbers, ending with the command line.
std::string format_advice(const Advice& advice);
// Every number as JSON.
std::string advice_json(const Advice& advice);

}  // namespace detkit::advise
