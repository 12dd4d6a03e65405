// COCO bounding-box evaluation with pycocotools' semantics (COCOeval, iouType='bbox'), torch-free.
//
// What it is: a re-implementation of pycocotools 2.0's COCO.loadRes + COCOeval.evaluate / accumulate /
// summarize for boxes. For valid inputs it reproduces pycocotools' numbers, including its quirks:
//   - 10 IoU thresholds and 101 recall thresholds with exactly the values np.linspace produces
//     (e.g. the 9th IoU threshold is 0.8999999999999999, recall threshold #35 is 0.35000000000000003);
//   - area ranges all [0, 1e10], small [0, 32^2], medium [32^2, 96^2], large [96^2, 1e10], both ends
//     inclusive; a ground truth's range is decided by its 'area' field, a detection's by w*h;
//   - per image and category: detections sorted by score, highest first, ties kept in file order
//     (a stable sort), then cut to 100; matching is pycocotools' greedy loop with its tie rule (of equal
//     IoUs the later ground truth wins) and its early stop at ignored ground truth;
//   - crowd ground truth (iscrowd=1): IoU is intersection / detection area, it can absorb any number of
//     detections, it is always 'ignored', and detections matched to it count neither as TP nor FP;
//   - maxDets 1 and 10 reuse the matching made with 100 detections (as pycocotools does);
//   - a detection matched to a ground truth whose annotation id is 0 counts as unmatched, because
//     pycocotools stores the matched id and tests it for non-zero. Kept for agreement; a warning says so;
//   - means over precision / recall entries > -1 use numpy's pairwise summation, so the statistics agree
//     with np.mean to the last bit for arrays up to 8192 entries (and to ~1e-16 relative beyond).
// Where pycocotools would crash or assert, detkit decides instead (each decision is listed under "Throws"
// or "Decisions" below).
//
// Needs: nothing but the inputs; no torch, no Python. Not thread-hostile: every function is reentrant.
//
// Guarantees: inputs are never modified; results are deterministic (independent of thread count, run,
// machine with IEEE doubles). Numerics assume IEEE double arithmetic without fast-math; the .cpp turns
// off floating-point contraction (FMA) for GCC so that IoUs round exactly as pycocotools' C code.
//
// Throws: DataError for every problem with the inputs (never crashes, never asserts on input). The
// error's `where` names the file (or the in-memory source name) and the record:
//     "dt.json: detection #17: 'bbox' must be 4 numbers"
//     "gt.json: annotation #3 (id 12): 'area' must be a finite number"
// Record numbers are 0-based positions in the JSON array (`jq '.[17]'`, `jq '.annotations[3]'`).
//   - unreadable / missing file, malformed JSON (with line and column, and the record when it can be
//     located), numbers that overflow a double, a NaN / Infinity literal;
//   - wrong top-level shape (results must be an array; ground truth an object with 'images',
//     'annotations' and 'categories' arrays);
//   - missing fields or wrong types; ids must be integers (integral floats such as 7.0 are accepted, as
//     Python treats 7.0 == 7); bbox must be 4 finite numbers; score and area finite numbers;
//     iscrowd 0/1 or a boolean;
//   - duplicate ground-truth annotation ids (pycocotools silently evaluates the wrong boxes then);
//   - a detection whose image_id is not an image of the ground truth (pycocotools asserts).
//
// Decisions where pycocotools has no answer (documented so results can be explained):
//   - an empty results list evaluates as "no detections" (pycocotools raises IndexError): AP/AR are 0 for
//     categories with non-crowd ground truth, -1 where there is none;
//   - a ground-truth annotation without 'iscrowd' is not crowd (pycocotools raises KeyError);
//   - ground-truth annotations whose image is not listed in 'images' or whose category is not in
//     'categories', and detections whose category is not in 'categories', are left out exactly as
//     pycocotools leaves them out; each kind is counted and reported in `warnings`;
//   - boxes with zero or negative width/height are accepted as pycocotools accepts them (they overlap
//     nothing; a negative-area detection falls outside every area range).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace detkit {

// ---------------------------------------------------------------------------------------------------
// In-memory inputs (what the trainer builds without files). Boxes are COCO xywh in pixels.

struct CocoGtBox {
  int64_t id = 0;           // annotation id; keep it non-zero (see the id-0 quirk above)
  int64_t image_id = 0;
  int64_t category_id = 0;
  double x = 0, y = 0, w = 0, h = 0;  // bbox, xywh
  double area = 0;          // COCO 'area' (for boxes-only data, w*h); decides small/medium/large
  bool iscrowd = false;
};

struct CocoGroundTruth {
  std::vector<int64_t> image_ids;     // the images evaluated (order and duplicates do not matter)
  std::vector<int64_t> category_ids;  // the categories evaluated (order and duplicates do not matter)
  std::vector<CocoGtBox> annotations;
};

struct CocoDetection {
  int64_t image_id = 0;
  int64_t category_id = 0;
  double x = 0, y = 0, w = 0, h = 0;  // bbox, xywh
  double score = 0;
};

// ---------------------------------------------------------------------------------------------------
// Parameters (pycocotools' defaults, fixed).

constexpr int kCocoNumIouThresholds = 10;     // T
constexpr int kCocoNumRecallThresholds = 101; // R
constexpr int kCocoNumAreaRanges = 4;         // A: all, small, medium, large
constexpr int kCocoNumMaxDets = 3;            // M: 1, 10, 100

// np.linspace(.5, .95, 10) and np.linspace(0, 1, 101), bit for bit.
const std::array<double, kCocoNumIouThresholds>& coco_iou_thresholds();
const std::array<double, kCocoNumRecallThresholds>& coco_recall_thresholds();
// {lo, hi} per area range, in the order all, small, medium, large.
const std::array<std::array<double, 2>, kCocoNumAreaRanges>& coco_area_ranges();
const std::array<int, kCocoNumMaxDets>& coco_max_dets();  // {1, 10, 100}

// The names of the 12 summary statistics, in order: AP AP50 AP75 APs APm APl AR1 AR10 AR100 ARs ARm ARl.
const std::array<const char*, 12>& coco_stat_names();

// IoU of detection `d` with ground truth `g` as pycocotools' maskApi.c bbIou computes it (xywh, no +1;
// for crowd ground truth, intersection over the detection's area), rounded exactly as its C code does.
double coco_box_iou(const CocoDetection& d, const CocoGtBox& g);

// ---------------------------------------------------------------------------------------------------
// Results.

struct CocoEvalResult {
  // pycocotools' COCOeval.stats: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl.
  // -1 where no category has non-crowd ground truth in that setting.
  std::array<double, 12> stats{};
  // For each evaluated category (sorted by id): mean of precision[:, :, k, all, 100] over entries > -1,
  // or -1 when the category has no non-crowd ground truth.
  std::vector<std::pair<int64_t, double>> per_category_ap;

  // accumulate()'s arrays, for PR curves and custom summaries. -1 marks "no ground truth".
  std::vector<int64_t> category_ids;  // K evaluated categories, sorted
  std::vector<double> precision;      // [T][R][K][A][M], row-major
  std::vector<double> recall;         // [T][K][A][M], row-major
  double precision_at(int t, int r, int k, int a, int m) const;
  double recall_at(int t, int k, int a, int m) const;

  // What was evaluated.
  std::size_t num_images = 0;       // distinct ground-truth image ids
  std::size_t num_gt = 0;           // ground-truth annotations used (crowd included)
  std::size_t num_detections = 0;   // detections used (before the 100-per-image-and-category cut)
  std::vector<std::string> warnings;  // inputs left out and quirks that touched the numbers

  double seconds = 0;  // wall time: evaluation only for evaluate_coco; parse + evaluation for files
};

// ---------------------------------------------------------------------------------------------------
// Parsing. `source` names the input in error messages (normally the file path).

// Parses a COCO ground-truth document. Uses images[].id, categories[].id and, per annotation, id,
// image_id, category_id, bbox, area and iscrowd (optional); other fields are ignored.
// Throws DataError (see the header comment).
CocoGroundTruth parse_coco_ground_truth(const std::string& json_text, const std::string& source);
// Parses a COCO results list [{image_id, category_id, bbox, score}, ...]; other fields are ignored
// (as in loadRes, which recomputes area, id and iscrowd). Throws DataError.
std::vector<CocoDetection> parse_coco_detections(const std::string& json_text, const std::string& source);

// Read and parse files. Throw DataError naming the file.
CocoGroundTruth load_coco_ground_truth(const std::string& path);
std::vector<CocoDetection> load_coco_detections(const std::string& path);

// ---------------------------------------------------------------------------------------------------
// Evaluation.

// Evaluates detections against ground truth in memory. Validates both (finite boxes, unique annotation
// ids, detections only on ground-truth images) and throws DataError naming `gt_source` / `dt_source`
// and the record when they are invalid.
CocoEvalResult evaluate_coco(const CocoGroundTruth& gt, const std::vector<CocoDetection>& detections,
                             const std::string& gt_source = "ground truth",
                             const std::string& dt_source = "detections");

// Loads both files and evaluates. `seconds` covers parsing and evaluation. Throws DataError.
CocoEvalResult evaluate_coco_files(const std::string& gt_path, const std::string& dt_path);

// ---------------------------------------------------------------------------------------------------
// Output.

// The 12 lines pycocotools' summarize() prints, each ending in '\n', e.g.
//  " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.361"
std::string format_coco_summary(const CocoEvalResult& result);

// {"stats": {"AP": .., "AP50": .., ..., "ARl": ..}, "per_category_AP": {"<category id>": .., ...}}
// with full double precision (the layout of tests/data/coco-eval/*/expected.json, without its
// timing). Pretty-printed with one-space indentation.
std::string coco_result_to_json(const CocoEvalResult& result);

}  // namespace detkit
