// COCO bbox evaluation with pycocotools' semantics. See coco_eval.h for the contract.
//
// Structure: parse (nlohmann/json -> plain structs, every field checked) -> validate -> evaluate.
// The evaluation follows COCOeval's three steps, reorganised for speed but not for arithmetic:
//   evaluateImg per (category, image): detections stably sorted by score and cut to 100, IoUs as in
//     maskApi.c's bbIou, then per area range and IoU threshold the greedy matching loop;
//   accumulate per (category, area, maxDet): a stable merge of all images' detections by score, cumulative
//     TP/FP, the precision envelope and searchsorted(side='left') on the recall thresholds;
//   summarize: means over entries > -1 with numpy's pairwise summation.
// Every floating-point expression is evaluated in the same order as pycocotools / numpy.

// pycocotools computes IoUs in C without FMA; contracting a*b+c into one rounding would change the last
// bit of some IoUs and so, rarely, a match exactly at a threshold. GCC contracts across statements when
// FMA instructions are available (-march=native), so switch that off for this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "eval/coco_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"

namespace detkit {

namespace {

using json = nlohmann::json;

constexpr int T = kCocoNumIouThresholds;
constexpr int R = kCocoNumRecallThresholds;
constexpr int A = kCocoNumAreaRanges;
constexpr int M = kCocoNumMaxDets;
constexpr int kMaxDetsLast = 100;

// np.linspace(start, stop, num): arange(num) * ((stop - start) / (num - 1)) + start, last element = stop.
// The product is stored through a volatile so no compiler can fuse it with the addition.
template <std::size_t N>
std::array<double, N> numpy_linspace(double start, double stop) {
  std::array<double, N> out{};
  const double step = (stop - start) / static_cast<double>(N - 1);
  for (std::size_t i = 0; i < N; ++i) {
    volatile double scaled = static_cast<double>(i) * step;
    out[i] = scaled + start;
  }
  out[N - 1] = stop;
  return out;
}

// numpy's pairwise summation (DOUBLE_pairwise_sum, unrolled by 8, blocks of 128).
double pairwise_sum(const double* a, std::size_t n) {
  if (n < 8) {
    double res = 0.;
    for (std::size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    std::size_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  std::size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

// np.mean of a 1-D contiguous float64 array: the reduction starts from 0 and adds the pairwise sums of
// the iterator's buffer-sized chunks (8192 elements), then divides by the count.
double numpy_mean(const std::vector<double>& v) {
  constexpr std::size_t kBuffer = 8192;
  double total = 0.;
  for (std::size_t start = 0; start < v.size(); start += kBuffer)
    total += pairwise_sum(v.data() + start, std::min(kBuffer, v.size() - start));
  return total / static_cast<double>(v.size());
}

// ------------------------------------------------------------------------------------------------
// Errors.

[[noreturn]] void fail(const std::string& where, std::string what, std::string why, std::string remedy) {
  throw DataError({std::move(what), std::move(why), std::move(remedy), where});
}

// The location of a record ("gt.json: annotation #3 (id 12)"), formatted only when an error is thrown.
struct Where {
  const std::string& source;
  const char* record = nullptr;  // "detection", "annotation", ...; nullptr: the file as a whole
  std::size_t index = 0;
  bool has_id = false;
  int64_t id = 0;

  std::string str() const {
    if (record == nullptr) return source;
    std::string out = cat(source, ": ", record, " #", index);
    if (has_id) out += cat(" (id ", id, ")");
    return out;
  }
};

[[noreturn]] void fail(const Where& where, std::string what, std::string why, std::string remedy) {
  fail(where.str(), std::move(what), std::move(why), std::move(remedy));
}

std::string describe_value(const json& v) {
  std::string text = v.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return cat("it is ", v.is_number() ? "the number" : std::string("a ") + v.type_name(), " ", text);
}

// Where in a JSON text a byte position falls: the record (top-level array element for results; element
// of images / annotations / categories for ground truth). Only the text before `pos` is scanned; it is a
// valid JSON prefix because the parser got that far. Empty when the position is not inside a record.
enum class DocKind { detections, ground_truth };

std::string record_at(const std::string& text, std::size_t pos, DocKind kind) {
  struct Frame {
    bool array;
    long index;
    std::string key;
    bool expecting_key;
  };
  std::vector<Frame> stack;
  bool in_string = false, escape = false, capturing_key = false;
  std::string buffer;
  pos = std::min(pos, text.size());
  for (std::size_t i = 0; i < pos; ++i) {
    const char c = text[i];
    if (in_string) {
      if (escape) {
        escape = false;
        if (capturing_key) buffer += c;
      } else if (c == '\\') {
        escape = true;
      } else if (c == '"') {
        in_string = false;
        if (capturing_key && !stack.empty()) stack.back().key = buffer;
        capturing_key = false;
      } else if (capturing_key) {
        buffer += c;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        capturing_key = !stack.empty() && !stack.back().array && stack.back().expecting_key;
        buffer.clear();
        break;
      case '{':
        stack.push_back({false, 0, "", true});
        break;
      case '[':
        stack.push_back({true, 0, "", false});
        break;
      case '}':
      case ']':
        if (!stack.empty()) stack.pop_back();
        break;
      case ',':
        if (!stack.empty()) {
          if (stack.back().array)
            ++stack.back().index;
          else
            stack.back().expecting_key = true;
        }
        break;
      case ':':
        if (!stack.empty()) stack.back().expecting_key = false;
        break;
      default:
        break;
    }
  }
  if (kind == DocKind::detections) {
    if (stack.size() >= 2 && stack[0].array) return cat("detection #", stack[0].index);
    return {};
  }
  if (stack.size() >= 3 && !stack[0].array && stack[1].array) {
    const std::string& key = stack[0].key;
    if (key == "images") return cat("image #", stack[1].index);
    if (key == "annotations") return cat("annotation #", stack[1].index);
    if (key == "categories") return cat("category #", stack[1].index);
  }
  return {};
}

std::string join_where(const std::string& source, const std::string& record) {
  return record.empty() ? source : source + ": " + record;
}

json parse_json(const std::string& text, const std::string& source, DocKind kind) {
  const char* remedy =
      "fix or regenerate the file; JSON has no NaN or Infinity, so write only finite numbers (Python: "
      "json.dump(..., allow_nan=False) reports them where they are made)";
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    std::size_t pos = e.byte > 0 ? static_cast<std::size_t>(e.byte - 1) : 0;
    pos = std::min(pos, text.size());
    std::string why = e.what();
    const auto bracket = why.find("] ");
    if (why.rfind("[json.exception", 0) == 0 && bracket != std::string::npos) why = why.substr(bracket + 2);
    auto at = [&](std::size_t p, const char* word) { return text.compare(p, std::strlen(word), word) == 0; };
    std::string what = "not valid JSON";
    if (at(pos, "NaN") || at(pos, "Infinity") || (pos > 0 && at(pos - 1, "-Infinity")))
      what = "not valid JSON: it contains NaN or Infinity, which JSON cannot represent";
    fail(join_where(source, record_at(text, pos, kind)), what, why, remedy);
  } catch (const json::exception& e) {
    // Number overflow (out_of_range.406) carries no position; find the literal it quotes.
    std::string why = e.what();
    const auto bracket = why.find("] ");
    if (why.rfind("[json.exception", 0) == 0 && bracket != std::string::npos) why = why.substr(bracket + 2);
    std::string record;
    const auto q1 = why.find('\'');
    const auto q2 = q1 == std::string::npos ? std::string::npos : why.find('\'', q1 + 1);
    if (q2 != std::string::npos) {
      const std::string literal = why.substr(q1 + 1, q2 - q1 - 1);
      const auto found = literal.empty() ? std::string::npos : text.find(literal);
      if (found != std::string::npos) record = record_at(text, found, kind);
    }
    fail(join_where(source, record), "not valid JSON: a number does not fit a double", why, remedy);
  }
}

// ------------------------------------------------------------------------------------------------
// Field readers; each names the field in the message.

const json& require_field(const json& obj, const char* key, const Where& where, const char* remedy) {
  const auto it = obj.find(key);
  if (it == obj.end()) fail(where, cat("'", key, "' is missing"), "", remedy);
  return *it;
}

int64_t read_id(const json& obj, const char* key, const Where& where, const char* remedy) {
  const json& v = require_field(obj, key, where, remedy);
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(where, cat("'", key, "' is out of range"), cat(describe_value(v), "; ids must fit a signed 64-bit integer"),
           remedy);
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    // Python treats 7.0 == 7, so pycocotools matches such ids; accept integral values in range.
    if (std::isfinite(d) && d == std::floor(d) && d >= -9.2e18 && d <= 9.2e18) return static_cast<int64_t>(d);
  }
  fail(where, cat("'", key, "' must be an integer"), describe_value(v), remedy);
}

double read_number(const json& obj, const char* key, const Where& where, const char* remedy) {
  const json& v = require_field(obj, key, where, remedy);
  if (!v.is_number()) fail(where, cat("'", key, "' must be a finite number"), describe_value(v), remedy);
  const double d = v.get<double>();
  if (!std::isfinite(d)) fail(where, cat("'", key, "' must be a finite number"), cat("it is ", d), remedy);
  return d;
}

std::array<double, 4> read_bbox(const json& obj, const Where& where, const char* remedy) {
  const char* what = "'bbox' must be 4 numbers";
  const json& v = require_field(obj, "bbox", where, remedy);
  if (!v.is_array()) fail(where, what, describe_value(v) + " (expected [x, y, width, height])", remedy);
  if (v.size() != 4) fail(where, what, cat("it has ", v.size(), " element", v.size() == 1 ? "" : "s", " (expected [x, y, width, height])"), remedy);
  std::array<double, 4> out{};
  for (std::size_t i = 0; i < 4; ++i) {
    const json& e = v[i];
    if (!e.is_number()) fail(where, what, cat("element ", i, ": ", describe_value(e)), remedy);
    out[i] = e.get<double>();
    if (!std::isfinite(out[i])) fail(where, what, cat("element ", i, " is not finite"), remedy);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Validation shared by the parsers' outputs and in-memory inputs.

void validate_ground_truth(const CocoGroundTruth& gt, const std::string& source) {
  const char* remedy = "fix the annotation (bbox and area must be finite numbers)";
  std::unordered_map<int64_t, std::size_t> first_index;
  first_index.reserve(gt.annotations.size() * 2);
  for (std::size_t i = 0; i < gt.annotations.size(); ++i) {
    const CocoGtBox& a = gt.annotations[i];
    if (!std::isfinite(a.x) || !std::isfinite(a.y) || !std::isfinite(a.w) || !std::isfinite(a.h))
      fail(Where{source, "annotation", i, true, a.id}, "'bbox' must be 4 numbers", "an element is not finite", remedy);
    if (!std::isfinite(a.area))
      fail(Where{source, "annotation", i, true, a.id}, "'area' must be a finite number", cat("it is ", a.area), remedy);
    const auto inserted = first_index.emplace(a.id, i);
    if (!inserted.second)
      fail(Where{source, "annotation", i, true, a.id}, "duplicate annotation id",
           cat("annotation #", inserted.first->second, " has the same id; pycocotools indexes annotations by id "
               "and would silently evaluate the wrong boxes"),
           "give every annotation a unique id (renumber them 1, 2, 3, ...)");
  }
}

void validate_detections(const std::vector<CocoDetection>& dts, const std::unordered_set<int64_t>& images,
                         const std::string& source, const std::string& gt_source) {
  for (std::size_t i = 0; i < dts.size(); ++i) {
    const CocoDetection& d = dts[i];
    const Where where{source, "detection", i};
    if (!std::isfinite(d.x) || !std::isfinite(d.y) || !std::isfinite(d.w) || !std::isfinite(d.h))
      fail(where, "'bbox' must be 4 numbers", "an element is not finite",
           "drop or fix non-finite boxes before evaluating (a diverged model produces NaN boxes)");
    if (!std::isfinite(d.score))
      fail(where, "'score' must be a finite number", cat("it is ", d.score),
           "drop or fix non-finite scores before evaluating (a diverged model produces NaN scores)");
    if (images.count(d.image_id) == 0)
      fail(where, cat("image_id ", d.image_id, " is not an image of the ground truth"),
           cat("every detection must belong to an image listed in ", gt_source,
               " (pycocotools' loadRes asserts the same)"),
           "evaluate against the ground truth the detections were made for, or drop detections on other images");
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Evaluation core.

double coco_box_iou(const CocoDetection& d, const CocoGtBox& g) {
  const double da = d.w * d.h;
  const double ga = g.w * g.h;
  const double w = std::fmin(d.w + d.x, g.w + g.x) - std::fmax(d.x, g.x);
  if (w <= 0) return 0;
  const double h = std::fmin(d.h + d.y, g.h + g.y) - std::fmax(d.y, g.y);
  if (h <= 0) return 0;
  const double inter = w * h;
  const double uni = g.iscrowd ? da : da + ga - inter;
  return inter / uni;
}

namespace {

// evaluateImg's output for one (category, area range, image) that has ground truth or detections.
struct ImageEval {
  std::vector<double> scores;  // detections kept (<= 100), sorted by score, highest first
  std::vector<uint8_t> flags;  // [T][D]: bit 0 matched (to a gt with non-zero id), bit 1 ignored
  int npig = 0;                // ground truths not ignored
};

constexpr uint8_t kMatched = 1;
constexpr uint8_t kIgnored = 2;

}  // namespace

// ------------------------------------------------------------------------------------------------
// Parameters.

const std::array<double, kCocoNumIouThresholds>& coco_iou_thresholds() {
  static const auto values = numpy_linspace<kCocoNumIouThresholds>(0.5, 0.95);
  return values;
}

const std::array<double, kCocoNumRecallThresholds>& coco_recall_thresholds() {
  static const auto values = numpy_linspace<kCocoNumRecallThresholds>(0.0, 1.0);
  return values;
}

const std::array<std::array<double, 2>, kCocoNumAreaRanges>& coco_area_ranges() {
  static const std::array<std::array<double, 2>, kCocoNumAreaRanges> values = {{
      {0.0 * 0.0, 1e5 * 1e5},
      {0.0 * 0.0, 32.0 * 32.0},
      {32.0 * 32.0, 96.0 * 96.0},
      {96.0 * 96.0, 1e5 * 1e5},
  }};
  return values;
}

const std::array<int, kCocoNumMaxDets>& coco_max_dets() {
  static const std::array<int, kCocoNumMaxDets> values = {1, 10, 100};
  return values;
}

const std::array<const char*, 12>& coco_stat_names() {
  static const std::array<const char*, 12> names = {"AP",  "AP50", "AP75", "APs",   "APm", "APl",
                                                    "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};
  return names;
}

double CocoEvalResult::precision_at(int t, int r, int k, int a, int m) const {
  const std::size_t K = category_ids.size();
  return precision[(((static_cast<std::size_t>(t) * R + r) * K + k) * A + a) * M + m];
}

double CocoEvalResult::recall_at(int t, int k, int a, int m) const {
  const std::size_t K = category_ids.size();
  return recall[((static_cast<std::size_t>(t) * K + k) * A + a) * M + m];
}

// ------------------------------------------------------------------------------------------------
// Parsing.

CocoGroundTruth parse_coco_ground_truth(const std::string& json_text, const std::string& source) {
  const json doc = parse_json(json_text, source, DocKind::ground_truth);
  if (!doc.is_object()) {
    std::string why = describe_value(doc);
    if (doc.is_array()) why += "; this looks like a results (detections) file";
    fail(source, "a COCO ground-truth file must be a JSON object with 'images', 'annotations' and 'categories'",
         why, "pass the ground-truth annotation file (instances_*.json style) here");
  }
  for (const char* key : {"images", "annotations", "categories"}) {
    const auto it = doc.find(key);
    if (it == doc.end())
      fail(source, cat("'", key, "' is missing"), "a COCO ground-truth file has 'images', 'annotations' and 'categories' arrays",
           "pass a COCO ground-truth file, or add the missing array (it may be empty)");
    if (!it->is_array())
      fail(source, cat("'", key, "' must be an array"), describe_value(*it), "fix the file's top-level structure");
  }
  CocoGroundTruth gt;
  const json& images = doc["images"];
  gt.image_ids.reserve(images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    const Where where{source, "image", i};
    const json& img = images[i];
    if (!img.is_object()) fail(where, "an image must be a JSON object", describe_value(img), "fix the image entry");
    gt.image_ids.push_back(read_id(img, "id", where, "give every image an integer 'id'"));
  }
  const json& categories = doc["categories"];
  gt.category_ids.reserve(categories.size());
  for (std::size_t i = 0; i < categories.size(); ++i) {
    const Where where{source, "category", i};
    const json& c = categories[i];
    if (!c.is_object()) fail(where, "a category must be a JSON object", describe_value(c), "fix the category entry");
    gt.category_ids.push_back(read_id(c, "id", where, "give every category an integer 'id'"));
  }
  const json& anns = doc["annotations"];
  gt.annotations.reserve(anns.size());
  const char* remedy = "fix the annotation: it needs integer id, image_id, category_id, a 'bbox' [x, y, width, "
                       "height] and a numeric 'area'; 'iscrowd' is 0 or 1";
  for (std::size_t i = 0; i < anns.size(); ++i) {
    const json& a = anns[i];
    Where where{source, "annotation", i};
    if (!a.is_object()) fail(where, "an annotation must be a JSON object", describe_value(a), remedy);
    CocoGtBox box;
    box.id = read_id(a, "id", where, remedy);
    where.has_id = true;
    where.id = box.id;
    box.image_id = read_id(a, "image_id", where, remedy);
    box.category_id = read_id(a, "category_id", where, remedy);
    const auto bb = read_bbox(a, where, remedy);
    box.x = bb[0];
    box.y = bb[1];
    box.w = bb[2];
    box.h = bb[3];
    box.area = read_number(a, "area", where, remedy);
    const auto crowd = a.find("iscrowd");
    if (crowd != a.end()) {
      const json& v = *crowd;
      if (v.is_boolean()) {
        box.iscrowd = v.get<bool>();
      } else if (v.is_number() && (v.get<double>() == 0.0 || v.get<double>() == 1.0)) {
        box.iscrowd = v.get<double>() == 1.0;
      } else {
        fail(where, "'iscrowd' must be 0 or 1", describe_value(v), remedy);
      }
    }
    gt.annotations.push_back(box);
  }
  validate_ground_truth(gt, source);
  return gt;
}

std::vector<CocoDetection> parse_coco_detections(const std::string& json_text, const std::string& source) {
  const json doc = parse_json(json_text, source, DocKind::detections);
  if (!doc.is_array()) {
    std::string why = describe_value(doc);
    if (doc.is_object() && doc.contains("annotations")) why += "; this looks like a ground-truth file";
    fail(source, "a COCO results file must be a JSON array of detections", why,
         "pass a list like [{\"image_id\": 1, \"category_id\": 3, \"bbox\": [x, y, w, h], \"score\": 0.9}, ...]");
  }
  const char* remedy =
      "each detection needs integer image_id and category_id, 'bbox' [x, y, width, height] and a numeric 'score'";
  std::vector<CocoDetection> dts;
  dts.reserve(doc.size());
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const json& d = doc[i];
    const Where where{source, "detection", i};
    if (!d.is_object()) fail(where, "a detection must be a JSON object", describe_value(d), remedy);
    CocoDetection det;
    det.image_id = read_id(d, "image_id", where, remedy);
    det.category_id = read_id(d, "category_id", where, remedy);
    const auto bb = read_bbox(d, where, remedy);
    det.x = bb[0];
    det.y = bb[1];
    det.w = bb[2];
    det.h = bb[3];
    det.score = read_number(d, "score", where, remedy);
    dts.push_back(det);
  }
  return dts;
}

CocoGroundTruth load_coco_ground_truth(const std::string& path) {
  return parse_coco_ground_truth(read_file(path), path);
}

std::vector<CocoDetection> load_coco_detections(const std::string& path) {
  return parse_coco_detections(read_file(path), path);
}

// ------------------------------------------------------------------------------------------------
// Evaluation.

CocoEvalResult evaluate_coco(const CocoGroundTruth& gt, const std::vector<CocoDetection>& detections,
                             const std::string& gt_source, const std::string& dt_source) {
  const auto started = std::chrono::steady_clock::now();
  validate_ground_truth(gt, gt_source);

  // params.imgIds / catIds: sorted unique.
  std::vector<int64_t> images = gt.image_ids;
  std::sort(images.begin(), images.end());
  images.erase(std::unique(images.begin(), images.end()), images.end());
  std::vector<int64_t> cats = gt.category_ids;
  std::sort(cats.begin(), cats.end());
  cats.erase(std::unique(cats.begin(), cats.end()), cats.end());
  const std::size_t I = images.size();
  const std::size_t K = cats.size();

  std::unordered_map<int64_t, std::size_t> image_index, cat_index;
  image_index.reserve(I * 2);
  cat_index.reserve(K * 2);
  for (std::size_t i = 0; i < I; ++i) image_index.emplace(images[i], i);
  for (std::size_t k = 0; k < K; ++k) cat_index.emplace(cats[k], k);
  {
    std::unordered_set<int64_t> image_set(images.begin(), images.end());
    validate_detections(detections, image_set, dt_source, gt_source);
  }

  CocoEvalResult result;
  result.category_ids = cats;
  result.num_images = I;
  result.precision.assign(static_cast<std::size_t>(T) * R * K * A * M, -1.0);
  result.recall.assign(static_cast<std::size_t>(T) * K * A * M, -1.0);

  // Bucket annotations and detections by (category, image), keeping file order (CSR layout).
  const std::size_t buckets = K * I;
  std::vector<std::size_t> gt_start(buckets + 1, 0), dt_start(buckets + 1, 0);
  std::vector<std::size_t> gt_bucket(gt.annotations.size(), SIZE_MAX), dt_bucket(detections.size(), SIZE_MAX);
  std::size_t gt_unknown_image = 0, gt_unknown_cat = 0, dt_unknown_cat = 0, zero_id = 0;
  for (std::size_t j = 0; j < gt.annotations.size(); ++j) {
    const CocoGtBox& a = gt.annotations[j];
    const auto ii = image_index.find(a.image_id);
    if (ii == image_index.end()) {
      ++gt_unknown_image;
      continue;
    }
    const auto kk = cat_index.find(a.category_id);
    if (kk == cat_index.end()) {
      ++gt_unknown_cat;
      continue;
    }
    gt_bucket[j] = kk->second * I + ii->second;
    ++gt_start[gt_bucket[j] + 1];
    if (a.id == 0) ++zero_id;
  }
  for (std::size_t j = 0; j < detections.size(); ++j) {
    const CocoDetection& d = detections[j];
    const auto kk = cat_index.find(d.category_id);
    if (kk == cat_index.end()) {
      ++dt_unknown_cat;
      continue;
    }
    dt_bucket[j] = kk->second * I + image_index.at(d.image_id);
    ++dt_start[dt_bucket[j] + 1];
  }
  for (std::size_t b = 0; b < buckets; ++b) {
    gt_start[b + 1] += gt_start[b];
    dt_start[b + 1] += dt_start[b];
  }
  result.num_gt = gt_start[buckets];
  result.num_detections = dt_start[buckets];
  std::vector<std::size_t> gt_items(result.num_gt), dt_items(result.num_detections);
  {
    std::vector<std::size_t> gt_fill(gt_start.begin(), gt_start.end() - 1);
    std::vector<std::size_t> dt_fill(dt_start.begin(), dt_start.end() - 1);
    for (std::size_t j = 0; j < gt_bucket.size(); ++j)
      if (gt_bucket[j] != SIZE_MAX) gt_items[gt_fill[gt_bucket[j]]++] = j;
    for (std::size_t j = 0; j < dt_bucket.size(); ++j)
      if (dt_bucket[j] != SIZE_MAX) dt_items[dt_fill[dt_bucket[j]]++] = j;
  }

  if (gt_unknown_image)
    result.warnings.push_back(cat(gt_unknown_image, " ground-truth annotation(s) refer to images not listed in "
                                  "'images' and were left out (as pycocotools does)"));
  if (gt_unknown_cat)
    result.warnings.push_back(cat(gt_unknown_cat, " ground-truth annotation(s) have a category not listed in "
                                  "'categories' and were left out (as pycocotools does)"));
  if (dt_unknown_cat)
    result.warnings.push_back(cat(dt_unknown_cat, " detection(s) have a category not in the ground truth's "
                                  "'categories' and were left out (as pycocotools does)"));
  if (zero_id)
    result.warnings.push_back(cat(zero_id, " ground-truth annotation(s) have id 0; like pycocotools, detections "
                                  "matched to them count as unmatched (renumber annotation ids from 1)"));

  const auto& iou_thrs = coco_iou_thresholds();
  const auto& rec_thrs = coco_recall_thresholds();
  const auto& area_rngs = coco_area_ranges();
  const auto& max_dets = coco_max_dets();
  constexpr double kEps = std::numeric_limits<double>::epsilon();  // np.spacing(1)

  // Scratch buffers reused across buckets.
  std::vector<std::size_t> dt_sorted;
  std::vector<double> ious;
  std::vector<int> gt_order;
  std::vector<uint8_t> gt_ignored_sorted, gt_crowd_sorted, gt_matched;
  std::vector<int64_t> gt_id_sorted;
  std::vector<double> iou_sorted;

  struct Entry {
    double score;
    uint32_t eval;
    uint32_t det;
  };
  std::vector<Entry> entries;
  std::vector<double> rc, pr;
  std::vector<uint8_t> merged_flags;

  for (std::size_t k = 0; k < K; ++k) {
    // evaluateImg for every image with ground truth or detections in this category, per area range.
    std::array<std::vector<ImageEval>, A> evals;
    for (std::size_t i = 0; i < I; ++i) {
      const std::size_t b = k * I + i;
      const std::size_t g0 = gt_start[b], G = gt_start[b + 1] - g0;
      const std::size_t d0 = dt_start[b], Dall = dt_start[b + 1] - d0;
      if (G == 0 && Dall == 0) continue;  // evaluateImg returns None

      dt_sorted.assign(dt_items.begin() + d0, dt_items.begin() + d0 + Dall);
      std::stable_sort(dt_sorted.begin(), dt_sorted.end(), [&](std::size_t p, std::size_t q) {
        return detections[p].score > detections[q].score;
      });
      const std::size_t D = std::min<std::size_t>(Dall, kMaxDetsLast);

      ious.assign(D * G, 0.0);
      for (std::size_t d = 0; d < D; ++d)
        for (std::size_t g = 0; g < G; ++g)
          ious[d * G + g] = coco_box_iou(detections[dt_sorted[d]], gt.annotations[gt_items[g0 + g]]);

      std::vector<double> scores(D);
      for (std::size_t d = 0; d < D; ++d) scores[d] = detections[dt_sorted[d]].score;

      for (int a = 0; a < A; ++a) {
        const double lo = area_rngs[a][0], hi = area_rngs[a][1];
        // gt '_ignore' and the stable order that puts ignored ground truth last.
        gt_order.clear();
        for (int pass = 0; pass < 2; ++pass)
          for (std::size_t g = 0; g < G; ++g) {
            const CocoGtBox& box = gt.annotations[gt_items[g0 + g]];
            const bool ignored = box.iscrowd || box.area < lo || box.area > hi;
            if (static_cast<int>(ignored) == pass) gt_order.push_back(static_cast<int>(g));
          }
        gt_ignored_sorted.resize(G);
        gt_crowd_sorted.resize(G);
        gt_id_sorted.resize(G);
        int npig = 0;
        for (std::size_t s = 0; s < G; ++s) {
          const CocoGtBox& box = gt.annotations[gt_items[g0 + gt_order[s]]];
          gt_ignored_sorted[s] = box.iscrowd || box.area < lo || box.area > hi;
          gt_crowd_sorted[s] = box.iscrowd;
          gt_id_sorted[s] = box.id;
          if (!gt_ignored_sorted[s]) ++npig;
        }
        iou_sorted.resize(D * G);
        for (std::size_t d = 0; d < D; ++d)
          for (std::size_t s = 0; s < G; ++s) iou_sorted[d * G + s] = ious[d * G + gt_order[s]];

        ImageEval ev;
        ev.scores = scores;
        ev.npig = npig;
        ev.flags.assign(static_cast<std::size_t>(T) * D, 0);
        for (int t = 0; t < T; ++t) {
          uint8_t* flags = ev.flags.data() + static_cast<std::size_t>(t) * D;
          if (G > 0 && D > 0) {
            gt_matched.assign(G, 0);
            for (std::size_t d = 0; d < D; ++d) {
              double best = std::min(iou_thrs[t], 1 - 1e-10);
              long m = -1;
              const double* row = iou_sorted.data() + d * G;
              for (std::size_t s = 0; s < G; ++s) {
                if (gt_matched[s] && !gt_crowd_sorted[s]) continue;
                if (m > -1 && !gt_ignored_sorted[m] && gt_ignored_sorted[s]) break;
                if (row[s] < best) continue;
                best = row[s];
                m = static_cast<long>(s);
              }
              if (m == -1) continue;
              if (gt_ignored_sorted[m]) flags[d] |= kIgnored;
              if (gt_id_sorted[m] != 0) flags[d] |= kMatched;
              gt_matched[m] = 1;
            }
          }
          // Unmatched detections outside the area range are ignored (dtm == 0, so an id-0 match too).
          for (std::size_t d = 0; d < D; ++d) {
            const CocoDetection& det = detections[dt_sorted[d]];
            const double area = det.w * det.h;
            if (!(flags[d] & kMatched) && (area < lo || area > hi)) flags[d] |= kIgnored;
          }
        }
        evals[a].push_back(std::move(ev));
      }
    }

    // accumulate for this category.
    const std::size_t E = evals[0].size();
    for (int m = 0; m < M; ++m) {
      const std::size_t max_det = static_cast<std::size_t>(max_dets[m]);
      // The merged order depends only on scores, identical for every area range.
      entries.clear();
      for (std::size_t e = 0; e < E; ++e) {
        const auto& sc = evals[0][e].scores;
        const std::size_t n = std::min(sc.size(), max_det);
        for (std::size_t d = 0; d < n; ++d)
          entries.push_back({sc[d], static_cast<uint32_t>(e), static_cast<uint32_t>(d)});
      }
      std::stable_sort(entries.begin(), entries.end(),
                       [](const Entry& p, const Entry& q) { return p.score > q.score; });
      const std::size_t nd = entries.size();
      rc.resize(nd);
      pr.resize(nd);
      for (int a = 0; a < A; ++a) {
        long npig_total = 0;
        for (const ImageEval& ev : evals[a]) npig_total += ev.npig;
        if (npig_total == 0) continue;
        const double npig = static_cast<double>(npig_total);
        // Flags in merged order, one row per IoU threshold.
        merged_flags.resize(static_cast<std::size_t>(T) * nd);
        for (std::size_t j = 0; j < nd; ++j) {
          const ImageEval& ev = evals[a][entries[j].eval];
          const std::size_t D = ev.scores.size();
          for (int t = 0; t < T; ++t) merged_flags[t * nd + j] = ev.flags[t * D + entries[j].det];
        }
        for (int t = 0; t < T; ++t) {
          const uint8_t* flags = merged_flags.data() + static_cast<std::size_t>(t) * nd;
          // cumsum of TPs and FPs; rc = tp / npig, pr = tp / (fp + tp + eps). An ignored detection
          // changes neither sum, so its rc and pr repeat the previous ones (same bits, no division).
          double tp = 0, fp = 0, rc_j = 0.0 / npig, pr_j = 0.0 / (0.0 + 0.0 + kEps);
          for (std::size_t j = 0; j < nd; ++j) {
            const uint8_t f = flags[j];
            if (!(f & kIgnored)) {
              if (f & kMatched)
                tp += 1;
              else
                fp += 1;
              rc_j = tp / npig;
              pr_j = tp / (fp + tp + kEps);
            }
            rc[j] = rc_j;
            pr[j] = pr_j;
          }
          result.recall[((static_cast<std::size_t>(t) * K + k) * A + a) * M + m] = nd ? rc[nd - 1] : 0.0;
          for (std::size_t j = nd; j-- > 1;)
            if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
          // np.searchsorted(rc, recThrs, side='left'); thresholds increase, so each search starts where
          // the previous one ended.
          std::size_t idx = 0;
          for (int r = 0; r < R; ++r) {
            idx = static_cast<std::size_t>(std::lower_bound(rc.begin() + idx, rc.end(), rec_thrs[r]) - rc.begin());
            result.precision[(((static_cast<std::size_t>(t) * R + r) * K + k) * A + a) * M + m] =
                idx < nd ? pr[idx] : 0.0;
          }
        }
      }
    }
  }

  // summarize.
  std::vector<double> values;
  auto mean_valid = [&]() { return values.empty() ? -1.0 : numpy_mean(values); };
  auto ap = [&](int t_only, int a, int m) {
    values.clear();
    for (int t = 0; t < T; ++t) {
      if (t_only >= 0 && t != t_only) continue;
      for (int r = 0; r < R; ++r)
        for (std::size_t k = 0; k < K; ++k) {
          const double v = result.precision_at(t, r, static_cast<int>(k), a, m);
          if (v > -1) values.push_back(v);
        }
    }
    return mean_valid();
  };
  auto ar = [&](int a, int m) {
    values.clear();
    for (int t = 0; t < T; ++t)
      for (std::size_t k = 0; k < K; ++k) {
        const double v = result.recall_at(t, static_cast<int>(k), a, m);
        if (v > -1) values.push_back(v);
      }
    return mean_valid();
  };
  // Thresholds .5 and .75 are entries 0 and 5 of the linspace (both exact there).
  result.stats = {ap(-1, 0, 2), ap(0, 0, 2), ap(5, 0, 2), ap(-1, 1, 2), ap(-1, 2, 2), ap(-1, 3, 2),
                  ar(0, 0),     ar(0, 1),    ar(0, 2),    ar(1, 2),     ar(2, 2),     ar(3, 2)};
  for (std::size_t k = 0; k < K; ++k) {
    values.clear();
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r) {
        const double v = result.precision_at(t, r, static_cast<int>(k), 0, 2);
        if (v > -1) values.push_back(v);
      }
    result.per_category_ap.emplace_back(cats[k], mean_valid());
  }

  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

CocoEvalResult evaluate_coco_files(const std::string& gt_path, const std::string& dt_path) {
  const auto started = std::chrono::steady_clock::now();
  const CocoGroundTruth gt = load_coco_ground_truth(gt_path);
  const std::vector<CocoDetection> dts = load_coco_detections(dt_path);
  CocoEvalResult result = evaluate_coco(gt, dts, gt_path, dt_path);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

// ------------------------------------------------------------------------------------------------
// Output.

std::string format_coco_summary(const CocoEvalResult& result) {
  struct Line {
    bool ap;
    const char* iou;
    const char* area;
    int max_dets;
  };
  static const Line lines[12] = {
      {true, "0.50:0.95", "all", 100},    {true, "0.50", "all", 100},         {true, "0.75", "all", 100},
      {true, "0.50:0.95", "small", 100},  {true, "0.50:0.95", "medium", 100}, {true, "0.50:0.95", "large", 100},
      {false, "0.50:0.95", "all", 1},     {false, "0.50:0.95", "all", 10},    {false, "0.50:0.95", "all", 100},
      {false, "0.50:0.95", "small", 100}, {false, "0.50:0.95", "medium", 100}, {false, "0.50:0.95", "large", 100},
  };
  std::string out;
  char buf[160];
  for (int i = 0; i < 12; ++i) {
    const Line& l = lines[i];
    std::snprintf(buf, sizeof buf, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n",
                  l.ap ? "Average Precision" : "Average Recall", l.ap ? "(AP)" : "(AR)", l.iou, l.area,
                  l.max_dets, result.stats[i]);
    out += buf;
  }
  return out;
}

std::string coco_result_to_json(const CocoEvalResult& result) {
  nlohmann::ordered_json doc;
  nlohmann::ordered_json stats = nlohmann::ordered_json::object();
  for (int i = 0; i < 12; ++i) stats[coco_stat_names()[i]] = result.stats[i];
  nlohmann::ordered_json per_cat = nlohmann::ordered_json::object();
  for (const auto& [id, value] : result.per_category_ap) per_cat[std::to_string(id)] = value;
  doc["stats"] = std::move(stats);
  doc["per_category_AP"] = std::move(per_cat);
  return doc.dump(1) + "\n";
}

}  // namespace detkit
