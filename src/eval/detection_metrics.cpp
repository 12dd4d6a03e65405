// Detection metrics: PR and confidence curves, best-F1 operating point, confusion matrix. See
// detection_metrics.h for the contract.
//
// The curve matching mirrors coco_eval.cpp's evaluateImg / accumulate for one IoU threshold, area range
// 'all' and maxDets 100, expression for expression, so that AP from pr_curve equals COCOeval's AP50.

// IoUs must round as pycocotools' C code does (see coco_eval.cpp): no a*b+c contraction into an FMA.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "eval/detection_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"

namespace detkit {

namespace {

using ojson = nlohmann::ordered_json;

// COCO's area range 'all'.
constexpr double kAreaLo = 0;
constexpr double kAreaHi = 1e10;

void require_option(bool ok, const std::string& what, const std::string& why, const std::string& remedy) {
  if (!ok) throw UsageError({what, why, remedy});
}

bool finite_box(double x, double y, double w, double h) {
  return std::isfinite(x) && std::isfinite(y) && std::isfinite(w) && std::isfinite(h);
}

// The inputs bucketed by image (and by category within the image), with what was left out.
struct Prepared {
  std::vector<int64_t> images, cats;  // sorted unique
  std::size_t I = 0, K = 0;
  // CSR buckets b = k * I + i, items in input order.
  std::vector<std::size_t> gt_start, gt_items, dt_start, dt_items;
  std::vector<std::string> warnings;
};

Prepared prepare(const CocoGroundTruth& gt, const std::vector<CocoDetection>& detections) {
  Prepared p;
  p.images = gt.image_ids;
  std::sort(p.images.begin(), p.images.end());
  p.images.erase(std::unique(p.images.begin(), p.images.end()), p.images.end());
  p.cats = gt.category_ids;
  std::sort(p.cats.begin(), p.cats.end());
  p.cats.erase(std::unique(p.cats.begin(), p.cats.end()), p.cats.end());
  p.I = p.images.size();
  p.K = p.cats.size();

  std::unordered_map<int64_t, std::size_t> image_index, cat_index;
  image_index.reserve(p.I * 2);
  cat_index.reserve(p.K * 2);
  for (std::size_t i = 0; i < p.I; ++i) image_index.emplace(p.images[i], i);
  for (std::size_t k = 0; k < p.K; ++k) cat_index.emplace(p.cats[k], k);

  const std::size_t buckets = p.K * p.I;
  p.gt_start.assign(buckets + 1, 0);
  p.dt_start.assign(buckets + 1, 0);
  std::vector<std::size_t> gt_bucket(gt.annotations.size(), SIZE_MAX), dt_bucket(detections.size(), SIZE_MAX);
  std::size_t gt_unknown_image = 0, gt_unknown_cat = 0, dt_unknown_cat = 0;

  for (std::size_t j = 0; j < gt.annotations.size(); ++j) {
    const CocoGtBox& a = gt.annotations[j];
    if (!finite_box(a.x, a.y, a.w, a.h) || !std::isfinite(a.area))
      throw DataError({"ground-truth box or area is not a finite number", "",
                       "drop or fix the annotation before evaluating",
                       cat("ground truth: annotation #", j, " (id ", a.id, ")")});
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
    gt_bucket[j] = kk->second * p.I + ii->second;
    ++p.gt_start[gt_bucket[j] + 1];
  }
  for (std::size_t j = 0; j < detections.size(); ++j) {
    const CocoDetection& d = detections[j];
    const std::string where = cat("detections: detection #", j);
    if (!finite_box(d.x, d.y, d.w, d.h))
      throw DataError({"detection box is not 4 finite numbers", "",
                       "drop or fix non-finite boxes before evaluating (a diverged model produces NaN boxes)", where});
    if (!std::isfinite(d.score))
      throw DataError({"detection score is not a finite number", cat("it is ", d.score),
                       "drop or fix non-finite scores before evaluating (a diverged model produces NaN scores)",
                       where});
    const auto ii = image_index.find(d.image_id);
    if (ii == image_index.end())
      throw DataError({cat("image_id ", d.image_id, " is not an image of the ground truth"),
                       "every detection must belong to an image of the ground truth",
                       "evaluate against the ground truth the detections were made for, or drop detections on "
                       "other images",
                       where});
    const auto kk = cat_index.find(d.category_id);
    if (kk == cat_index.end()) {
      ++dt_unknown_cat;
      continue;
    }
    dt_bucket[j] = kk->second * p.I + ii->second;
    ++p.dt_start[dt_bucket[j] + 1];
  }
  for (std::size_t b = 0; b < buckets; ++b) {
    p.gt_start[b + 1] += p.gt_start[b];
    p.dt_start[b + 1] += p.dt_start[b];
  }
  p.gt_items.resize(p.gt_start[buckets]);
  p.dt_items.resize(p.dt_start[buckets]);
  {
    std::vector<std::size_t> gt_fill(p.gt_start.begin(), p.gt_start.end() - 1);
    std::vector<std::size_t> dt_fill(p.dt_start.begin(), p.dt_start.end() - 1);
    for (std::size_t j = 0; j < gt_bucket.size(); ++j)
      if (gt_bucket[j] != SIZE_MAX) p.gt_items[gt_fill[gt_bucket[j]]++] = j;
    for (std::size_t j = 0; j < dt_bucket.size(); ++j)
      if (dt_bucket[j] != SIZE_MAX) p.dt_items[dt_fill[dt_bucket[j]]++] = j;
  }

  if (gt_unknown_image)
    p.warnings.push_back(cat(gt_unknown_image, " ground-truth annotation(s) refer to images not in image_ids "
                                               "and were left out"));
  if (gt_unknown_cat)
    p.warnings.push_back(cat(gt_unknown_cat, " ground-truth annotation(s) have a category not in category_ids "
                                             "and were left out"));
  if (dt_unknown_cat)
    p.warnings.push_back(cat(dt_unknown_cat, " detection(s) have a category not in the ground truth's "
                                             "category_ids and were left out"));
  return p;
}

// One evaluated detection of a class, in the order COCOeval's accumulate sees it before its sort.
struct Entry {
  double score;
  uint8_t flag;  // kTp, kFp or kIgnored
};
constexpr uint8_t kTp = 0;
constexpr uint8_t kFp = 1;
constexpr uint8_t kIgnored = 2;

// The curves of class k from its matched detections.
void class_curves(const Prepared& p, std::size_t k, const CocoGroundTruth& gt,
                  const std::vector<CocoDetection>& detections, const DetectionMetricsOptions& options,
                  const std::vector<double>& recall_grid, const std::vector<double>& confidence_grid,
                  ClassDetectionMetrics& out) {
  out.category_id = p.cats[k];
  std::vector<Entry> entries;
  std::vector<std::size_t> dts, gt_order;
  std::vector<uint8_t> matched;
  const double iou_start = std::min(options.iou_threshold, 1 - 1e-10);

  for (std::size_t i = 0; i < p.I; ++i) {
    const std::size_t b = k * p.I + i;
    const std::size_t g0 = p.gt_start[b], G = p.gt_start[b + 1] - g0;
    const std::size_t d0 = p.dt_start[b], Dall = p.dt_start[b + 1] - d0;
    if (G == 0 && Dall == 0) continue;

    auto ignored_gt = [&](std::size_t item) {
      const CocoGtBox& a = gt.annotations[item];
      return a.iscrowd || a.area < kAreaLo || a.area > kAreaHi;
    };
    // Ground truth that counts first, ignored after, each in input order (pycocotools' stable argsort).
    gt_order.clear();
    for (int pass = 0; pass < 2; ++pass)
      for (std::size_t g = 0; g < G; ++g)
        if (static_cast<int>(ignored_gt(p.gt_items[g0 + g])) == pass) gt_order.push_back(p.gt_items[g0 + g]);
    for (std::size_t item : gt_order) (ignored_gt(item) ? out.num_ignored_gt : out.num_gt) += 1;

    dts.assign(p.dt_items.begin() + d0, p.dt_items.begin() + d0 + Dall);
    std::stable_sort(dts.begin(), dts.end(),
                     [&](std::size_t a, std::size_t c) { return detections[a].score > detections[c].score; });
    if (options.max_detections > 0 && dts.size() > options.max_detections) dts.resize(options.max_detections);

    matched.assign(G, 0);
    for (std::size_t di : dts) {
      const CocoDetection& det = detections[di];
      double best = iou_start;
      long m = -1;
      for (std::size_t s = 0; s < G; ++s) {
        const CocoGtBox& a = gt.annotations[gt_order[s]];
        if (matched[s] && !a.iscrowd) continue;
        // Once a counted ground truth matched, ignored ones (sorted last) cannot replace it.
        if (m > -1 && !ignored_gt(gt_order[m]) && ignored_gt(gt_order[s])) break;
        const double v = coco_box_iou(det, a);
        if (v < best) continue;
        best = v;
        m = static_cast<long>(s);
      }
      uint8_t flag;
      if (m > -1) {
        matched[m] = 1;
        flag = ignored_gt(gt_order[m]) ? kIgnored : kTp;
      } else {
        const double area = det.w * det.h;
        flag = (area < kAreaLo || area > kAreaHi) ? kIgnored : kFp;
      }
      if (flag == kIgnored) ++out.num_ignored_detections;
      entries.push_back({det.score, flag});
    }
  }
  out.num_detections = entries.size();
  // accumulate's np.argsort(-scores, kind='mergesort'): stable, images in id order before the sort.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& c) { return a.score > c.score; });

  const std::size_t R = recall_grid.size();
  const std::size_t nd = entries.size();
  if (out.num_gt == 0) {
    out.pr_curve.assign(R, -1.0);
    out.ap = -1;
  } else {
    // pycocotools' arithmetic exactly: rc = tp / npig, pr = tp / (fp + tp + eps), ignored rows repeat.
    constexpr double kEps = std::numeric_limits<double>::epsilon();
    const double npig = static_cast<double>(out.num_gt);
    std::vector<double> rc(nd), pr(nd);
    double tp = 0, fp = 0, rc_j = 0.0 / npig, pr_j = 0.0 / (0.0 + 0.0 + kEps);
    for (std::size_t j = 0; j < nd; ++j) {
      if (entries[j].flag != kIgnored) {
        if (entries[j].flag == kTp)
          tp += 1;
        else
          fp += 1;
        rc_j = tp / npig;
        pr_j = tp / (fp + tp + kEps);
      }
      rc[j] = rc_j;
      pr[j] = pr_j;
    }
    for (std::size_t j = nd; j-- > 1;)
      if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
    out.pr_curve.assign(R, 0.0);
    std::size_t idx = 0;
    double sum = 0;
    for (std::size_t r = 0; r < R; ++r) {
      idx = static_cast<std::size_t>(std::lower_bound(rc.begin() + idx, rc.end(), recall_grid[r]) - rc.begin());
      out.pr_curve[r] = idx < nd ? pr[idx] : 0.0;
      sum += out.pr_curve[r];
    }
    out.ap = sum / static_cast<double>(R);
  }

  // Confidence curves from the counted detections (scores non-increasing): cum_tp[n] = TPs among the
  // n highest.
  std::vector<double> scores;
  std::vector<std::size_t> cum_tp{0};
  for (const Entry& e : entries) {
    if (e.flag == kIgnored) continue;
    scores.push_back(e.score);
    cum_tp.push_back(cum_tp.back() + (e.flag == kTp ? 1 : 0));
  }
  const std::size_t P = confidence_grid.size();
  ConfidenceCurves& cc = out.confidence_curves;
  cc.precision.assign(P, 0.0);
  cc.recall.assign(P, -1.0);
  cc.f1.assign(P, -1.0);
  for (std::size_t j = 0; j < P; ++j) {
    const double c = confidence_grid[j];
    const std::size_t n = static_cast<std::size_t>(
        std::partition_point(scores.begin(), scores.end(), [c](double s) { return s >= c; }) - scores.begin());
    const double tp = static_cast<double>(cum_tp[n]);
    const double prec = n > 0 ? tp / static_cast<double>(n) : 0.0;
    cc.precision[j] = prec;
    if (out.num_gt > 0) {
      const double rec = tp / static_cast<double>(out.num_gt);
      cc.recall[j] = rec;
      cc.f1[j] = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0.0;
    }
  }
}

// np.linspace(0, 1, n): i * step, the last point exactly 1.
std::vector<double> linspace01(std::size_t n) {
  std::vector<double> v(n);
  const double step = 1.0 / static_cast<double>(n - 1);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<double>(i) * step;
  v[n - 1] = 1.0;
  return v;
}

ConfusionMatrix confusion_from(const Prepared& p, const CocoGroundTruth& gt,
                               const std::vector<CocoDetection>& detections, double confidence, double iou_threshold) {
  ConfusionMatrix cm;
  cm.confidence_threshold = confidence;
  cm.iou_threshold = iou_threshold;
  cm.category_ids = p.cats;
  const std::size_t C = p.K, N = C + 1;
  cm.counts.assign(N * N, 0);

  struct Item {
    std::size_t index;  // into gt.annotations or detections
    std::size_t k;      // class position
  };
  struct Pair {
    double iou;
    std::size_t d, g;  // positions in the image's dts / gts
  };
  std::vector<Item> dts, gts, crowds;
  std::vector<Pair> pairs;
  std::vector<uint8_t> d_used, g_used;

  for (std::size_t i = 0; i < p.I; ++i) {
    dts.clear();
    gts.clear();
    crowds.clear();
    for (std::size_t k = 0; k < C; ++k) {
      const std::size_t b = k * p.I + i;
      for (std::size_t j = p.gt_start[b]; j < p.gt_start[b + 1]; ++j) {
        const std::size_t item = p.gt_items[j];
        (gt.annotations[item].iscrowd ? crowds : gts).push_back({item, k});
      }
      for (std::size_t j = p.dt_start[b]; j < p.dt_start[b + 1]; ++j) {
        const std::size_t item = p.dt_items[j];
        if (detections[item].score >= confidence) dts.push_back({item, k});
      }
    }
    if (dts.empty() && gts.empty()) continue;
    d_used.assign(dts.size(), 0);
    g_used.assign(gts.size(), 0);

    for (int pass = 0; pass < 2; ++pass) {
      const bool same_class = pass == 0;
      pairs.clear();
      for (std::size_t d = 0; d < dts.size(); ++d) {
        if (d_used[d]) continue;
        for (std::size_t g = 0; g < gts.size(); ++g) {
          if (g_used[g] || (dts[d].k == gts[g].k) != same_class) continue;
          const double v = coco_box_iou(detections[dts[d].index], gt.annotations[gts[g].index]);
          if (v >= iou_threshold) pairs.push_back({v, d, g});
        }
      }
      // Highest IoU first; ties to the higher score, then input order, so the result never depends on
      // the sort implementation.
      std::sort(pairs.begin(), pairs.end(), [&](const Pair& a, const Pair& c) {
        if (a.iou != c.iou) return a.iou > c.iou;
        const double sa = detections[dts[a.d].index].score, sc = detections[dts[c.d].index].score;
        if (sa != sc) return sa > sc;
        if (dts[a.d].index != dts[c.d].index) return dts[a.d].index < dts[c.d].index;
        return gts[a.g].index < gts[c.g].index;
      });
      for (const Pair& pr : pairs) {
        if (d_used[pr.d] || g_used[pr.g]) continue;
        d_used[pr.d] = 1;
        g_used[pr.g] = 1;
        cm.counts[dts[pr.d].k * N + gts[pr.g].k] += 1;
      }
    }
    for (std::size_t g = 0; g < gts.size(); ++g)
      if (!g_used[g]) cm.counts[C * N + gts[g].k] += 1;
    for (std::size_t d = 0; d < dts.size(); ++d) {
      if (d_used[d]) continue;
      const bool on_crowd = std::any_of(crowds.begin(), crowds.end(), [&](const Item& c) {
        return c.k == dts[d].k && coco_box_iou(detections[dts[d].index], gt.annotations[c.index]) >= iou_threshold;
      });
      if (on_crowd)
        ++cm.ignored_on_crowd;
      else
        cm.counts[dts[d].k * N + C] += 1;
    }
  }
  return cm;
}

void check_confusion_thresholds(double confidence, double iou) {
  require_option(confidence >= 0 && confidence <= 1, cat("confusion-matrix confidence threshold ", confidence,
                                                          " is out of range"),
                 "it is a detection score threshold", "use a value in [0, 1] (0.25 is the usual one)");
  require_option(iou > 0 && iou <= 1, cat("confusion-matrix IoU threshold ", iou, " is out of range"),
                 "a match needs an IoU in (0, 1]", "use a value in (0, 1] (0.45 is the usual one)");
}

// Rounds a curve value to 6 decimals; -1 ("undefined") stays exact. "+ 0.0" turns -0 into 0.
double round6(double v) { return std::round(v * 1e6) / 1e6 + 0.0; }

ojson rounded(const std::vector<double>& values) {
  ojson a = ojson::array();
  for (double v : values) a.push_back(round6(v));
  return a;
}

// Pretty-prints with 1-space indentation but keeps arrays of scalars on one line: the curves have
// thousands of numbers, one per line would make the file unreadable.
void emit(const ojson& j, int indent, std::string& out) {
  const auto structured = [](const ojson& e) { return e.is_structured() && !e.empty(); };
  if (j.is_object() && !j.empty()) {
    out += "{\n";
    bool first = true;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!first) out += ",\n";
      first = false;
      out.append(static_cast<std::size_t>(indent + 1), ' ');
      out += ojson(it.key()).dump();
      out += ": ";
      emit(it.value(), indent + 1, out);
    }
    out += "\n";
    out.append(static_cast<std::size_t>(indent), ' ');
    out += "}";
  } else if (j.is_array() && std::any_of(j.begin(), j.end(), structured)) {
    out += "[\n";
    for (std::size_t e = 0; e < j.size(); ++e) {
      if (e) out += ",\n";
      out.append(static_cast<std::size_t>(indent + 1), ' ');
      emit(j[e], indent + 1, out);
    }
    out += "\n";
    out.append(static_cast<std::size_t>(indent), ' ');
    out += "]";
  } else {
    out += j.dump();
  }
}

}  // namespace

ConfusionMatrix compute_confusion_matrix(const CocoGroundTruth& gt, const std::vector<CocoDetection>& detections,
                                         double confidence_threshold, double iou_threshold) {
  check_confusion_thresholds(confidence_threshold, iou_threshold);
  const Prepared p = prepare(gt, detections);
  return confusion_from(p, gt, detections, confidence_threshold, iou_threshold);
}

DetectionMetrics compute_detection_metrics(const CocoGroundTruth& gt, const std::vector<CocoDetection>& detections,
                                           const DetectionMetricsOptions& options) {
  require_option(options.iou_threshold > 0 && options.iou_threshold <= 1,
                 cat("IoU threshold ", options.iou_threshold, " is out of range"), "a match needs an IoU in (0, 1]",
                 "use a value in (0, 1] (0.5 for AP50)");
  require_option(options.confidence_points >= 2, cat("confidence_points is ", options.confidence_points),
                 "a confidence curve needs at least its two ends, 0 and 1", "use 2 or more (1000 is the usual)");
  check_confusion_thresholds(options.confusion_confidence, options.confusion_iou);

  const Prepared p = prepare(gt, detections);
  DetectionMetrics m;
  m.options = options;
  m.num_images = p.I;
  m.warnings = p.warnings;
  const auto& rec = coco_recall_thresholds();
  m.recall_grid.assign(rec.begin(), rec.end());
  m.confidence_grid = linspace01(options.confidence_points);

  m.classes.resize(p.K);
  for (std::size_t k = 0; k < p.K; ++k)
    class_curves(p, k, gt, detections, options, m.recall_grid, m.confidence_grid, m.classes[k]);

  std::size_t with_gt = 0;
  double ap_sum = 0;
  for (const ClassDetectionMetrics& c : m.classes)
    if (c.num_gt > 0) {
      ++with_gt;
      ap_sum += c.ap;
    }
  if (with_gt > 0) {
    m.map = ap_sum / static_cast<double>(with_gt);
    double best = -1;
    for (std::size_t j = 0; j < m.confidence_grid.size(); ++j) {
      double f1 = 0;
      for (const ClassDetectionMetrics& c : m.classes)
        if (c.num_gt > 0) f1 += c.confidence_curves.f1[j];
      f1 /= static_cast<double>(with_gt);
      if (f1 > best) {
        best = f1;
        m.best_index = j;
      }
    }
  }
  m.best_confidence = m.confidence_grid[m.best_index];

  double sp = 0, sr = 0, sf = 0;
  for (ClassDetectionMetrics& c : m.classes) {
    c.precision = c.confidence_curves.precision[m.best_index];
    c.recall = c.confidence_curves.recall[m.best_index];
    c.f1 = c.confidence_curves.f1[m.best_index];
    if (c.num_gt > 0) {
      sp += c.precision;
      sr += c.recall;
      sf += c.f1;
    }
  }
  if (with_gt > 0) {
    const double n = static_cast<double>(with_gt);
    m.mean_precision = sp / n;
    m.mean_recall = sr / n;
    m.mean_f1 = sf / n;
  }

  m.confusion = confusion_from(p, gt, detections, options.confusion_confidence, options.confusion_iou);
  return m;
}

std::string detection_metrics_to_json(const DetectionMetrics& metrics,
                                      const std::map<int64_t, std::string>& class_names) {
  auto name_of = [&](int64_t id) {
    const auto it = class_names.find(id);
    return it != class_names.end() ? it->second : std::to_string(id);
  };

  ojson j;
  j["format"] = "detkit-detection-metrics/1";
  j["iou_threshold"] = metrics.options.iou_threshold;
  j["max_detections"] = metrics.options.max_detections;
  j["num_images"] = metrics.num_images;

  ojson summary;
  summary["mAP"] = metrics.map;
  summary["best_confidence"] = metrics.best_confidence;
  summary["precision"] = metrics.mean_precision;
  summary["recall"] = metrics.mean_recall;
  summary["f1"] = metrics.mean_f1;
  j["summary"] = std::move(summary);

  ojson classes = ojson::array();
  ojson pr = ojson::array(), cp = ojson::array(), cr = ojson::array(), cf = ojson::array();
  for (std::size_t k = 0; k < metrics.classes.size(); ++k) {
    const ClassDetectionMetrics& c = metrics.classes[k];
    ojson o;
    o["index"] = k;
    o["category_id"] = c.category_id;
    o["name"] = name_of(c.category_id);
    o["num_gt"] = c.num_gt;
    o["num_ignored_gt"] = c.num_ignored_gt;
    o["num_detections"] = c.num_detections;
    o["num_ignored_detections"] = c.num_ignored_detections;
    o["AP"] = c.ap;
    o["precision"] = c.precision;
    o["recall"] = c.recall;
    o["f1"] = c.f1;
    classes.push_back(std::move(o));
    pr.push_back(rounded(c.pr_curve));
    cp.push_back(rounded(c.confidence_curves.precision));
    cr.push_back(rounded(c.confidence_curves.recall));
    cf.push_back(rounded(c.confidence_curves.f1));
  }
  j["classes"] = std::move(classes);

  ojson prc;
  prc["recall"] = rounded(metrics.recall_grid);
  prc["precision"] = std::move(pr);
  j["pr_curve"] = std::move(prc);

  ojson conf;
  conf["confidence"] = rounded(metrics.confidence_grid);
  conf["precision"] = std::move(cp);
  conf["recall"] = std::move(cr);
  conf["f1"] = std::move(cf);
  j["confidence_curves"] = std::move(conf);

  const ConfusionMatrix& cm = metrics.confusion;
  ojson cmj;
  cmj["rows"] = "predicted";
  cmj["columns"] = "true";
  cmj["confidence_threshold"] = cm.confidence_threshold;
  cmj["iou_threshold"] = cm.iou_threshold;
  ojson labels = ojson::array(), ids = ojson::array();
  for (int64_t id : cm.category_ids) {
    labels.push_back(name_of(id));
    ids.push_back(id);
  }
  labels.push_back("background");
  ids.push_back(nullptr);
  cmj["labels"] = std::move(labels);
  cmj["category_ids"] = std::move(ids);
  ojson matrix = ojson::array();
  for (std::size_t r = 0; r < cm.size(); ++r) {
    ojson row = ojson::array();
    for (std::size_t c = 0; c < cm.size(); ++c) row.push_back(cm.at(r, c));
    matrix.push_back(std::move(row));
  }
  cmj["matrix"] = std::move(matrix);
  cmj["ignored_on_crowd"] = cm.ignored_on_crowd;
  j["confusion_matrix"] = std::move(cmj);
  j["warnings"] = metrics.warnings;

  std::string out;
  emit(j, 0, out);
  out += "\n";
  return out;
}

void write_detection_metrics_json(const std::filesystem::path& path, const DetectionMetrics& metrics,
                                  const std::map<int64_t, std::string>& class_names) {
  write_file_atomic(path, detection_metrics_to_json(metrics, class_names));
}

}  // namespace detkit
