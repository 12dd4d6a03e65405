// Tests for eval/coco_eval: agreement with pycocotools on the shared fixtures, hand-derived cases for each
// rule of COCOeval, and error messages for malformed inputs.
#include "eval/coco_eval.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.h"
#include "core/fs.h"

#ifndef DETKIT_TEST_DATA_DIR
#error "DETKIT_TEST_DATA_DIR must be defined (absolute path of tests/data)"
#endif

namespace detkit {
namespace {

namespace stdfs = std::filesystem;
using json = nlohmann::json;

constexpr double kEps = std::numeric_limits<double>::epsilon();

std::string fixture_dir() { return std::string(DETKIT_TEST_DATA_DIR) + "/coco-eval/"; }

// A scratch directory for files written by the tests.
const stdfs::path& scratch_dir() {
  static const stdfs::path dir = [] {
    stdfs::path d = stdfs::temp_directory_path() / ("detkit-test-coco-eval-" + std::to_string(::getpid()));
    stdfs::create_directories(d);
    return d;
  }();
  return dir;
}

// Removes the scratch directory after the last test.
class ScratchCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    stdfs::remove_all(stdfs::temp_directory_path(ec) / ("detkit-test-coco-eval-" + std::to_string(::getpid())), ec);
  }
};
[[maybe_unused]] ::testing::Environment* const scratch_cleanup =
    ::testing::AddGlobalTestEnvironment(new ScratchCleanup);

std::string write_scratch(const std::string& name, const std::string& content) {
  const stdfs::path path = scratch_dir() / name;
  std::ofstream(path, std::ios::binary) << content;
  return path.string();
}

CocoGtBox gt_box(int64_t id, int64_t image, int64_t cat, double x, double y, double w, double h, bool crowd = false,
                 double area = -1) {
  CocoGtBox b;
  b.id = id;
  b.image_id = image;
  b.category_id = cat;
  b.x = x;
  b.y = y;
  b.w = w;
  b.h = h;
  b.area = area >= 0 ? area : w * h;
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

void expect_stats(const CocoEvalResult& r, const std::array<double, 12>& want, double tol = 1e-12) {
  for (int i = 0; i < 12; ++i) EXPECT_NEAR(r.stats[i], want[i], tol) << coco_stat_names()[i];
}

// The DataError thrown by f: `what` is e.what() ("WHERE: WHAT"), `full` the CLI text with why and fix.
struct ErrorText {
  std::string what;
  std::string full;
};

template <class F>
ErrorText data_error_of(F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    EXPECT_EQ(e.exit_code(), ExitCode::data);
    EXPECT_FALSE(e.remedy().empty()) << e.what();
    return {e.what(), format_error(e)};
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected DataError, got another exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected DataError, nothing was thrown";
  return {};
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// ------------------------------------------------------------------------------------------------
// Parameters.

TEST(CocoEvalParams, ThresholdsAreNumpyLinspaceBitForBit) {
  const auto& iou = coco_iou_thresholds();
  EXPECT_EQ(iou[0], 0.5);
  EXPECT_EQ(iou[1], 0.55);
  EXPECT_EQ(iou[5], 0.75);                 // summarize() finds .75 with ==
  EXPECT_EQ(iou[8], 0.8999999999999999);   // not 0.9
  EXPECT_EQ(iou[9], 0.95);
  const auto& rec = coco_recall_thresholds();
  EXPECT_EQ(rec[0], 0.0);
  EXPECT_EQ(rec[1], 0.01);
  EXPECT_EQ(rec[35], 0.35000000000000003);
  EXPECT_EQ(rec[50], 0.5);
  EXPECT_EQ(rec[70], 0.7000000000000001);
  EXPECT_EQ(rec[95], 0.9500000000000001);
  EXPECT_EQ(rec[100], 1.0);
  EXPECT_EQ(coco_area_ranges()[1][1], 1024.0);
  EXPECT_EQ(coco_area_ranges()[3][1], 1e10);
  EXPECT_EQ(coco_max_dets()[2], 100);
}

// ------------------------------------------------------------------------------------------------
// Fixtures computed by pycocotools 2.0.

class CocoEvalFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(CocoEvalFixture, MatchesPycocotools) {
  const std::string dir = fixture_dir() + GetParam() + "/";
  const json expected = json::parse(read_file(dir + "expected.json"));

  // Best of a few runs for the timing; every run must give the same numbers.
  CocoEvalResult result;
  double best = 1e9, best_eval_only = 1e9;
  for (int run = 0; run < 5; ++run) {
    CocoEvalResult r = evaluate_coco_files(dir + "gt.json", dir + "dt.json");
    if (run > 0) {
      for (int i = 0; i < 12; ++i) ASSERT_EQ(r.stats[i], result.stats[i]);
    }
    best = std::min(best, r.seconds);
    result = std::move(r);
  }
  const CocoGroundTruth gt = load_coco_ground_truth(dir + "gt.json");
  const std::vector<CocoDetection> dts = load_coco_detections(dir + "dt.json");
  for (int run = 0; run < 5; ++run) best_eval_only = std::min(best_eval_only, evaluate_coco(gt, dts).seconds);

  double max_diff = 0;
  int exact = 0, total = 0;
  for (int i = 0; i < 12; ++i) {
    const std::string name = coco_stat_names()[i];
    ASSERT_TRUE(expected["stats"].contains(name)) << name;
    const double want = expected["stats"][name].get<double>();
    EXPECT_NEAR(result.stats[i], want, 1e-6) << GetParam() << " " << name;
    max_diff = std::max(max_diff, std::fabs(result.stats[i] - want));
    exact += result.stats[i] == want;
    ++total;
  }
  const json& per_cat = expected["per_category_AP"];
  ASSERT_EQ(result.per_category_ap.size(), per_cat.size());
  for (const auto& [id, ap] : result.per_category_ap) {
    const std::string key = std::to_string(id);
    ASSERT_TRUE(per_cat.contains(key)) << "category " << key;
    const double want = per_cat[key].get<double>();
    EXPECT_NEAR(ap, want, 1e-6) << GetParam() << " category " << key;
    max_diff = std::max(max_diff, std::fabs(ap - want));
    exact += ap == want;
    ++total;
  }
  EXPECT_TRUE(result.warnings.empty());

  const double py = expected.value("pycocotools_seconds", 0.0);
  std::printf("[ timing   ] %s: detkit %.4f s (parse + eval), %.4f s (eval only); pycocotools %.3f s -> %.0fx; "
              "%d/%d values bit-identical, max |diff| %.3g\n",
              GetParam().c_str(), best, best_eval_only, py, best > 0 ? py / best : 0.0, exact, total, max_diff);
  RecordProperty("detkit_seconds", std::to_string(best));
  RecordProperty("pycocotools_seconds", std::to_string(py));
}

INSTANTIATE_TEST_SUITE_P(Shared, CocoEvalFixture, ::testing::Values("mixed-200", "ties-100", "tiny-edge"));

TEST(CocoEvalFixtures, JsonOutputHasTheExpectedLayout) {
  const std::string dir = fixture_dir() + "tiny-edge/";
  const CocoEvalResult result = evaluate_coco_files(dir + "gt.json", dir + "dt.json");
  const json out = json::parse(coco_result_to_json(result));
  const json expected = json::parse(read_file(dir + "expected.json"));
  ASSERT_TRUE(out.contains("stats"));
  ASSERT_TRUE(out.contains("per_category_AP"));
  for (const auto& [key, value] : expected["stats"].items()) {
    ASSERT_TRUE(out["stats"].contains(key)) << key;
    EXPECT_NEAR(out["stats"][key].get<double>(), value.get<double>(), 1e-6) << key;
  }
  for (const auto& [key, value] : expected["per_category_AP"].items()) {
    ASSERT_TRUE(out["per_category_AP"].contains(key)) << key;
    EXPECT_NEAR(out["per_category_AP"][key].get<double>(), value.get<double>(), 1e-6) << key;
  }
  // Full precision survives the round trip; keys keep the pycocotools order.
  EXPECT_EQ(out["stats"]["AP"].get<double>(), result.stats[0]);
  EXPECT_EQ(out["stats"].begin().key(), "AP");
}

// ------------------------------------------------------------------------------------------------
// Hand-derived cases. Each states why the numbers are what they are.

// One image, one medium box, one perfect detection: precision 1/(1+eps) at every recall threshold.
TEST(CocoEvalRules, PerfectDetection) {
  CocoGroundTruth gt{{1}, {7}, {gt_box(1, 1, 7, 10, 10, 50, 50)}};
  const auto r = evaluate_coco(gt, {det(1, 7, 10, 10, 50, 50, 0.9)});
  expect_stats(r, {1, 1, 1, -1, 1, -1, 1, 1, 1, -1, 1, -1});
  ASSERT_EQ(r.per_category_ap.size(), 1u);
  EXPECT_EQ(r.per_category_ap[0].first, 7);
  EXPECT_NEAR(r.per_category_ap[0].second, 1.0, 1e-12);
  EXPECT_EQ(r.num_gt, 1u);
  EXPECT_EQ(r.num_detections, 1u);
}

// Detections inside a crowd region match it (IoU = intersection / detection area = 1), any number of
// them, and are ignored: the only counted detection is the perfect one.
TEST(CocoEvalRules, DetectionsOnCrowdRegionAreIgnored) {
  CocoGroundTruth gt{{1}, {1},
                     {gt_box(1, 1, 1, 10, 10, 50, 50), gt_box(2, 1, 1, 100, 100, 200, 200, /*crowd=*/true)}};
  const std::vector<CocoDetection> dts = {det(1, 1, 10, 10, 50, 50, 0.9), det(1, 1, 120, 120, 20, 20, 0.95),
                                          det(1, 1, 150, 150, 30, 30, 0.5)};
  const auto crowd = evaluate_coco(gt, dts);
  // AR1 is 0: with one detection per image only the .95 one counts, and it is ignored.
  expect_stats(crowd, {1, 1, 1, -1, 1, -1, 0, 1, 1, -1, 1, -1});

  // The same boxes without the crowd flag: the region is an ordinary (large) object that the small boxes
  // do not match. Order by score: FP (.95), TP (.9), FP (.5); 2 objects. rc = [0, .5, .5],
  // pr = [0, .5, 1/3] -> envelope [.5, .5, 1/3]; recall thresholds 0...0.50 (51 of them) get .5, the rest 0.
  gt.annotations[1].iscrowd = false;
  const auto plain = evaluate_coco(gt, dts);
  const double ap = 51 * 0.5 / 101;
  // AR1: only the .95 FP counts; AR10/AR100 .5. APs: no small gt; APm: A alone, FP .95 is small (400) and
  // unmatched -> ignored in the medium range; the .5 one (900) too -> perfect. APl: region alone, no TP.
  expect_stats(plain, {ap, ap, ap, -1, 1, 0, 0, 0.5, 0.5, -1, 1, 0});
}

// A detection that matches an ordinary object stops at the first ignored (crowd) ground truth instead of
// taking the crowd region's better "IoU". IoU with the object is .62 -> TP at .50/.55/.60; from .65 on it
// matches the crowd region and is ignored (precision 0, recall 0 there).
TEST(CocoEvalRules, MatchToRegularObjectStopsBeforeCrowd) {
  CocoGroundTruth gt{{1}, {1},
                     {gt_box(1, 1, 1, 0, 0, 10, 10), gt_box(2, 1, 1, 0, 0, 100, 100, /*crowd=*/true)}};
  const auto r = evaluate_coco(gt, {det(1, 1, 0, 0, 10, 6.2, 0.8)});
  // Object area 100 and detection area 62 are small; nothing is medium or large.
  expect_stats(r, {0.3, 1, 0, 0.3, -1, -1, 0.3, 0.3, 0.3, 0.3, -1, -1});
}

// IoU exactly .5 (50 / 100) matches at the first threshold only.
TEST(CocoEvalRules, IouExactlyAtThresholdMatches) {
  CocoGroundTruth gt{{1}, {1}, {gt_box(1, 1, 1, 0, 0, 10, 10)}};
  const auto r = evaluate_coco(gt, {det(1, 1, 0, 0, 10, 5, 0.8)});
  expect_stats(r, {0.1, 1, 0, 0.1, -1, -1, 0.1, 0.1, 0.1, 0.1, -1, -1});
}

// Equal scores keep file order within an image (stable sort): TP first gives AP 1, FP first AP .5.
TEST(CocoEvalRules, EqualScoresKeepFileOrderWithinAnImage) {
  CocoGroundTruth gt{{1}, {1}, {gt_box(1, 1, 1, 0, 0, 40, 40)}};
  const CocoDetection tp = det(1, 1, 0, 0, 40, 40, 0.5), fp = det(1, 1, 200, 200, 40, 40, 0.5);
  EXPECT_NEAR(evaluate_coco(gt, {tp, fp}).stats[0], 1.0, 1e-12);
  EXPECT_NEAR(evaluate_coco(gt, {fp, tp}).stats[0], 0.5, 1e-12);
}

// Across images, equal scores are merged in image-id order (per-image lists concatenated in sorted image
// order, then a stable sort), not file order.
TEST(CocoEvalRules, EqualScoresAcrossImagesFollowImageIdOrder) {
  CocoGroundTruth gt{{2, 1}, {1}, {gt_box(1, 1, 1, 0, 0, 40, 40)}};
  const CocoDetection fp_on_2 = det(2, 1, 0, 0, 40, 40, 0.5), tp_on_1 = det(1, 1, 0, 0, 40, 40, 0.5);
  EXPECT_NEAR(evaluate_coco(gt, {fp_on_2, tp_on_1}).stats[0], 1.0, 1e-12);
  gt.image_ids = {1, 3};
  gt.annotations[0].image_id = 3;
  const CocoDetection fp_on_1 = det(1, 1, 0, 0, 40, 40, 0.5), tp_on_3 = det(3, 1, 0, 0, 40, 40, 0.5);
  EXPECT_NEAR(evaluate_coco(gt, {tp_on_3, fp_on_1}).stats[0], 0.5, 1e-12);
}

// Only the 100 best detections per image and category are evaluated; maxDets 1 and 10 cut further.
TEST(CocoEvalRules, HundredDetectionsPerImageAndCategory) {
  CocoGroundTruth gt{{1}, {1}, {gt_box(1, 1, 1, 0, 0, 50, 50)}};
  std::vector<CocoDetection> dts;
  for (int j = 0; j < 100; ++j) dts.push_back(det(1, 1, 500 + j, 500, 10, 10, 1.0 - j * 0.001));
  dts.push_back(det(1, 1, 0, 0, 50, 50, 0.01));  // the 101st best: cut
  expect_stats(evaluate_coco(gt, dts), {0, 0, 0, -1, 0, -1, 0, 0, 0, -1, 0, -1});

  dts.erase(dts.begin() + 99);  // now the TP is the 100th best: kept. Precision there is 1/100.
  const auto r = evaluate_coco(gt, dts);
  // In the medium range the 99 small FPs are unmatched and outside the range, so ignored: APm is 1.
  expect_stats(r, {0.01, 0.01, 0.01, -1, 1, -1, 0, 0, 1, -1, 1, -1});
  EXPECT_EQ(r.num_detections, 100u);
}

// No detections at all: pycocotools' accumulate gives precision 0 / recall 0 where there is non-crowd
// ground truth and -1 where there is none (a crowd-only category).
TEST(CocoEvalRules, EmptyDetections) {
  CocoGroundTruth gt{{1, 2}, {1, 2},
                     {gt_box(1, 1, 1, 0, 0, 50, 50), gt_box(2, 2, 2, 0, 0, 50, 50, /*crowd=*/true)}};
  const auto r = evaluate_coco(gt, {});
  expect_stats(r, {0, 0, 0, -1, 0, -1, 0, 0, 0, -1, 0, -1});
  ASSERT_EQ(r.per_category_ap.size(), 2u);
  EXPECT_EQ(r.per_category_ap[0].second, 0.0);
  EXPECT_EQ(r.per_category_ap[1].second, -1.0);

  // The same through files with an empty results list (pycocotools' loadRes would raise IndexError).
  const std::string gt_path = write_scratch(
      "empty-gt.json",
      R"({"images":[{"id":1},{"id":2}],"categories":[{"id":1},{"id":2}],"annotations":[
          {"id":1,"image_id":1,"category_id":1,"bbox":[0,0,50,50],"area":2500,"iscrowd":0},
          {"id":2,"image_id":2,"category_id":2,"bbox":[0,0,50,50],"area":2500,"iscrowd":1}]})");
  const std::string dt_path = write_scratch("empty-dt.json", "[]");
  const auto f = evaluate_coco_files(gt_path, dt_path);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(f.stats[i], r.stats[i]) << coco_stat_names()[i];
}

TEST(CocoEvalRules, NoCategoriesOrNoImagesGiveMinusOne) {
  const auto none = evaluate_coco(CocoGroundTruth{{1}, {}, {}}, {});
  for (double s : none.stats) EXPECT_EQ(s, -1.0);
  EXPECT_TRUE(none.per_category_ap.empty());
  const auto no_images = evaluate_coco(CocoGroundTruth{{}, {1}, {}}, {});
  for (double s : no_images.stats) EXPECT_EQ(s, -1.0);
}

// Unmatched detections outside an area range are ignored there; matched ones follow their ground truth.
TEST(CocoEvalRules, AreaRangesUseGtAreaFieldAndDetectionBoxArea) {
  // The object's box is 50x50 but its 'area' says 900 (small): it is evaluated as small.
  CocoGroundTruth gt{{1}, {1}, {gt_box(1, 1, 1, 0, 0, 50, 50, false, 900)}};
  const auto r = evaluate_coco(gt, {det(1, 1, 0, 0, 50, 50, 0.9), det(1, 1, 300, 300, 100, 100, 0.95)});
  // all: FP (.95) then TP -> AP .5 (see EqualScoresKeepFileOrderWithinAnImage). small: the 100x100 FP is
  // outside [0, 1024] and ignored -> 1. AR1 (all): only the FP -> 0.
  expect_stats(r, {0.5, 0.5, 0.5, 1, -1, -1, 0, 1, 1, 1, -1, -1});
}

// pycocotools stores the matched gt id and tests it for non-zero, so a match to id 0 counts as a FP.
TEST(CocoEvalRules, GroundTruthIdZeroQuirkIsReplicatedAndReported) {
  CocoGroundTruth gt{{1}, {1}, {gt_box(0, 1, 1, 0, 0, 50, 50)}};
  const auto r = evaluate_coco(gt, {det(1, 1, 0, 0, 50, 50, 0.9)});
  expect_stats(r, {0, 0, 0, -1, 0, -1, 0, 0, 0, -1, 0, -1});
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_TRUE(contains(r.warnings[0], "id 0"));
}

TEST(CocoEvalRules, UnknownCategoriesAndImagesAreLeftOutWithWarnings) {
  CocoGroundTruth gt{{1}, {1},
                     {gt_box(1, 1, 1, 0, 0, 50, 50), gt_box(2, 9, 1, 0, 0, 50, 50), gt_box(3, 1, 5, 0, 0, 5, 5)}};
  const auto r = evaluate_coco(gt, {det(1, 1, 0, 0, 50, 50, 0.9), det(1, 4, 0, 0, 50, 50, 0.99)});
  EXPECT_NEAR(r.stats[0], 1.0, 1e-12);
  EXPECT_EQ(r.num_gt, 1u);
  EXPECT_EQ(r.num_detections, 1u);
  EXPECT_EQ(r.warnings.size(), 3u);
}

TEST(CocoEvalOutput, SummaryTextIsPycocotoolsFormat) {
  CocoEvalResult r;
  r.stats = {0.3612, 0.618, 0.3714, -1, 0.4531, 0.644, 0.165, 0.396, 0.42, 0.144, 0.526, 0.712};
  const std::string text = format_coco_summary(r);
  const std::string want =
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.361\n"
      " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.618\n"
      " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.371\n"
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000\n"
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.453\n"
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.644\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.165\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.396\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.420\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.144\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.526\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.712\n";
  EXPECT_EQ(text, want);
}

TEST(CocoEvalOutput, PrecisionAndRecallArraysAreExposed) {
  CocoGroundTruth gt{{1}, {3, 8}, {gt_box(1, 1, 8, 10, 10, 50, 50)}};
  const auto r = evaluate_coco(gt, {det(1, 8, 10, 10, 50, 50, 0.9)});
  ASSERT_EQ(r.category_ids, (std::vector<int64_t>{3, 8}));
  EXPECT_EQ(r.precision.size(), 10u * 101 * 2 * 4 * 3);
  EXPECT_EQ(r.recall.size(), 10u * 2 * 4 * 3);
  EXPECT_EQ(r.precision_at(0, 0, 0, 0, 2), -1.0);                  // category 3: no ground truth
  EXPECT_NEAR(r.precision_at(9, 100, 1, 0, 2), 1.0 / (1.0 + kEps), 0);  // category 8: tp / (tp + fp + eps)
  EXPECT_EQ(r.recall_at(9, 1, 0, 0), 1.0);
}

// ------------------------------------------------------------------------------------------------
// Errors: every malformed input is a DataError naming the file and the record.

const char* kGoodGt =
    R"({"images":[{"id":1},{"id":2}],"categories":[{"id":1}],"annotations":[
        {"id":1,"image_id":1,"category_id":1,"bbox":[0,0,50,50],"area":2500,"iscrowd":0},
        {"id":2,"image_id":2,"category_id":1,"bbox":[5,5,20,20],"area":400}]})";

std::string det_json(int image, const std::string& bbox, const std::string& score = "0.5") {
  return R"({"image_id":)" + std::to_string(image) + R"(,"category_id":1,"bbox":)" + bbox + R"(,"score":)" + score +
         "}";
}

std::string dt_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ",\n " : "") + items[i];
  return out + "]";
}

TEST(CocoEvalErrors, BboxWithThreeNumbersNamesFileAndRecord) {
  std::vector<std::string> items(17, det_json(1, "[0,0,10,10]"));
  items.push_back(det_json(1, "[1,2,3]"));
  const std::string gt = write_scratch("gt.json", kGoodGt);
  const std::string dt = write_scratch("dt.json", dt_list(items));
  const ErrorText err = data_error_of([&] { evaluate_coco_files(gt, dt); });
  EXPECT_EQ(err.what, dt + ": detection #17: 'bbox' must be 4 numbers");
  EXPECT_TRUE(contains(err.full, "why: it has 3 elements")) << err.full;
}

TEST(CocoEvalErrors, DetectionFieldErrors) {
  struct Case {
    std::string item;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {det_json(1, R"([0,"a",10,10])"), "detection #1: 'bbox' must be 4 numbers"},
      {det_json(1, R"("0,0,10,10")"), "detection #1: 'bbox' must be 4 numbers"},
      {det_json(1, "[0,0,10,10,5]"), "detection #1: 'bbox' must be 4 numbers"},
      {R"({"image_id":1,"category_id":1,"bbox":[0,0,10,10]})", "detection #1: 'score' is missing"},
      {det_json(1, "[0,0,10,10]", R"("high")"), "detection #1: 'score' must be a finite number"},
      {det_json(1, "[0,0,10,10]", "null"), "detection #1: 'score' must be a finite number"},
      {R"({"image_id":"img1","category_id":1,"bbox":[0,0,10,10],"score":0.5})",
       "detection #1: 'image_id' must be an integer"},
      {R"({"image_id":1.5,"category_id":1,"bbox":[0,0,10,10],"score":0.5})",
       "detection #1: 'image_id' must be an integer"},
      {R"({"image_id":1,"category_id":true,"bbox":[0,0,10,10],"score":0.5})",
       "detection #1: 'category_id' must be an integer"},
      {R"({"category_id":1,"bbox":[0,0,10,10],"score":0.5})", "detection #1: 'image_id' is missing"},
      {"[1,2,3,4]", "detection #1: a detection must be a JSON object"},
      {det_json(99, "[0,0,10,10]"), "detection #1: image_id 99 is not an image of the ground truth"},
  };
  const std::string gt = write_scratch("gt.json", kGoodGt);
  for (const Case& c : cases) {
    const std::string dt = write_scratch("dt.json", dt_list({det_json(1, "[0,0,10,10]"), c.item}));
    const ErrorText err = data_error_of([&] { evaluate_coco_files(gt, dt); });
    EXPECT_EQ(err.what.rfind(dt + ": ", 0), 0u) << err.what;
    EXPECT_TRUE(contains(err.what, c.expected)) << "got: " << err.what << "\nwanted: " << c.expected;
  }
}

TEST(CocoEvalErrors, IntegralFloatIdsAreAccepted) {
  const std::string gt = write_scratch("gt.json", kGoodGt);
  const std::string dt =
      write_scratch("dt.json", R"([{"image_id":1.0,"category_id":1,"bbox":[0,0,50,50],"score":0.5}])");
  const auto r = evaluate_coco_files(gt, dt);
  EXPECT_EQ(r.num_detections, 1u);
}

TEST(CocoEvalErrors, MalformedJsonNamesTheRecord) {
  const std::string gt = write_scratch("gt.json", kGoodGt);
  struct Case {
    std::string text;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {dt_list({det_json(1, "[0,0,10,10]"), det_json(1, "[NaN,0,10,10]")}), {"detection #1", "NaN"}},
      {dt_list({det_json(1, "[0,0,10,10]"), det_json(1, "[-Infinity,0,10,10]")}), {"detection #1", "Infinity"}},
      {dt_list({det_json(1, "[0,0,10,10]"), det_json(1, "[0,0,10,10]", "1e400")}),
       {"detection #1", "does not fit a double"}},
      {R"([{"image_id":1,"category_id":1,"bbox":[0,0,10,10],"score":0.5},{"image_id":1,"bbox":[1,2)",
       {"detection #1", "not valid JSON", "line"}},
      {"", {"not valid JSON"}},
      {"{\"stats\": 1}", {"must be a JSON array"}},
      {"{\"annotations\": []}", {"looks like a ground-truth file"}},
  };
  for (const Case& c : cases) {
    const std::string dt = write_scratch("dt.json", c.text);
    const ErrorText err = data_error_of([&] { evaluate_coco_files(gt, dt); });
    EXPECT_EQ(err.what.rfind(dt, 0), 0u) << err.what;
    for (const std::string& part : c.expected)
      EXPECT_TRUE(contains(err.full, part)) << "got: " << err.full << "\nwanted: " << part;
  }
}

TEST(CocoEvalErrors, GroundTruthErrors) {
  struct Case {
    std::string text;
    std::string expected;
  };
  const std::string ann_ok = R"({"id":1,"image_id":1,"category_id":1,"bbox":[0,0,5,5],"area":25})";
  auto doc = [](const std::string& anns) {
    return R"({"images":[{"id":1}],"categories":[{"id":1}],"annotations":[)" + anns + "]}";
  };
  const std::vector<Case> cases = {
      {doc(ann_ok + R"(,{"id":2,"image_id":1,"category_id":1,"bbox":[0,0,5,5]})"),
       "annotation #1 (id 2): 'area' is missing"},
      {doc(ann_ok + R"(,{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,5,5],"area":25})"),
       "annotation #1 (id 1): duplicate annotation id"},
      {doc(ann_ok + R"(,{"id":3,"image_id":1,"category_id":1,"bbox":[0,0,5,5],"area":25,"iscrowd":2})"),
       "annotation #1 (id 3): 'iscrowd' must be 0 or 1"},
      {doc(ann_ok + R"(,{"id":3,"image_id":1,"category_id":1,"bbox":[0,0,5],"area":25})"),
       "annotation #1 (id 3): 'bbox' must be 4 numbers"},
      {doc(ann_ok + R"(,{"image_id":1,"category_id":1,"bbox":[0,0,5,5],"area":25})"), "annotation #1: 'id' is missing"},
      {doc(ann_ok + R"(,{"id":4,"image_id":1,"category_id":1,"bbox":[0,0,5,5],"area":NaN})"),
       "annotation #1: not valid JSON"},
      {R"({"images":[{"id":1},{"name":"x"}],"categories":[],"annotations":[]})", "image #1: 'id' is missing"},
      {R"({"images":[],"categories":[{"id":"cat"}],"annotations":[]})", "category #0: 'id' must be an integer"},
      {R"({"categories":[],"annotations":[]})", "'images' is missing"},
      {R"({"images":{},"categories":[],"annotations":[]})", "'images' must be an array"},
      {"[]", "looks like a results (detections) file"},
  };
  const std::string dt = write_scratch("dt.json", "[]");
  for (const Case& c : cases) {
    const std::string gt = write_scratch("gt.json", c.text);
    const ErrorText err = data_error_of([&] { evaluate_coco_files(gt, dt); });
    EXPECT_EQ(err.what.rfind(gt, 0), 0u) << err.what;
    EXPECT_TRUE(contains(err.full, c.expected)) << "got: " << err.full << "\nwanted: " << c.expected;
  }
}

TEST(CocoEvalErrors, MissingFileIsDataErrorNamingIt) {
  const std::string gt = write_scratch("gt.json", kGoodGt);
  const std::string missing = (scratch_dir() / "no-such-dt.json").string();
  const ErrorText err = data_error_of([&] { evaluate_coco_files(gt, missing); });
  EXPECT_TRUE(contains(err.what, missing)) << err.what;
}

TEST(CocoEvalErrors, InMemoryNonFiniteValuesAreDataErrors) {
  CocoGroundTruth gt{{1}, {1}, {gt_box(1, 1, 1, 0, 0, 50, 50)}};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(data_error_of([&] { evaluate_coco(gt, {det(1, 1, nan, 0, 5, 5, 0.5)}); }).what,
            "detections: detection #0: 'bbox' must be 4 numbers");
  EXPECT_TRUE(contains(data_error_of([&] { evaluate_coco(gt, {det(1, 1, 0, 0, 5, 5, 0.5), det(1, 1, 0, 0, 5, 5, nan)}); }).what,
                       "detections: detection #1: 'score' must be a finite number"));
  EXPECT_TRUE(contains(data_error_of([&] { evaluate_coco(gt, {det(2, 1, 0, 0, 5, 5, 0.5)}, "gt", "preds"); }).what,
                       "preds: detection #0: image_id 2 is not an image of the ground truth"));
  gt.annotations[0].area = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(contains(data_error_of([&] { evaluate_coco(gt, {}); }).what, "ground truth: annotation #0 (id 1): 'area'"));
}

// Every truncation and many random corruptions of valid files either evaluate or throw DataError.
TEST(CocoEvalErrors, CorruptedInputsNeverCrash) {
  const std::string dir = fixture_dir() + "tiny-edge/";
  const std::string gt_text = read_file(dir + "gt.json");
  const std::string dt_text = read_file(dir + "dt.json");
  const CocoGroundTruth gt = parse_coco_ground_truth(gt_text, "gt.json");
  int errors = 0, ok = 0;
  auto try_dt = [&](const std::string& text) {
    try {
      evaluate_coco(gt, parse_coco_detections(text, "dt.json"));
      ++ok;
    } catch (const DataError&) {
      ++errors;
    }
  };
  auto try_gt = [&](const std::string& text) {
    try {
      parse_coco_ground_truth(text, "gt.json");
      ++ok;
    } catch (const DataError&) {
      ++errors;
    }
  };
  for (std::size_t n = 0; n < dt_text.size(); n += 3) try_dt(dt_text.substr(0, n));
  for (std::size_t n = 0; n < gt_text.size(); n += 3) try_gt(gt_text.substr(0, n));
  std::mt19937 rng(12345);
  const std::string alphabet = "[]{}\",:0123456789.-eE aNIfnulltrue";
  for (int i = 0; i < 3000; ++i) {
    std::string text = (i % 2) ? dt_text : gt_text;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) text[rng() % text.size()] = alphabet[rng() % alphabet.size()];
    if (i % 2)
      try_dt(text);
    else
      try_gt(text);
  }
  EXPECT_GT(errors, 0);
  EXPECT_GT(ok, 0);
}

}  // namespace
}  // namespace detkit
