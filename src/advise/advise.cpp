#include "advise/advise.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/run_config.h"
#include "core/text.h"

namespace detkit::advise {

const std::vector<ModelScale>& model_scales() {
  // Parameters and GFLOPs as `detkit model info` gives them (80 classes, 640 x 640). Training memory per
  // image is a rough estimate for mixed precision (activations kept for the backward pass, the loss and the
  // assigner's per-image tensors); `detkit plan` measures the real figure.
  static const std::vector<ModelScale> scales{
      {"yolo-n", 3.157200, 8.7, 150},
      {"yolo-s", 11.166560, 28.6, 260},
      {"yolo-m", 25.902640, 79.0, 480},
  };
  return scales;
}

const ModelScale& model_scale(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& s : model_scales()) {
    if (name == s.name) return s;
    names.emplace_back(s.name);
  }
  throw UsageError({cat("unknown model '", name, "'"), "", cat("use one of ", join(names, ", "))});
}

// ---- Geometry -------------------------------------------------------------------------------------------

Letterbox letterbox_geometry(int64_t width, int64_t height, int64_t size) {
  DETKIT_ASSERT(width > 0 && height > 0 && size > 0, "letterbox needs positive sizes");
  const double w = static_cast<double>(width), h = static_cast<double>(height);
  const double r = static_cast<double>(size) / std::max(w, h);
  const int64_t nw = std::clamp<int64_t>(std::llround(w * r), 1, size);
  const int64_t nh = std::clamp<int64_t>(std::llround(h * r), 1, size);
  Letterbox lb;
  lb.sx = static_cast<double>(nw) / w;  // as augment::resize scales boxes: new size / old size per axis
  lb.sy = static_cast<double>(nh) / h;
  lb.pad_x = (size - nw) / 2;
  lb.pad_y = (size - nh) / 2;
  return lb;
}

Box letterbox_box(const Box& box, int64_t width, int64_t height, int64_t size) {
  const Letterbox lb = letterbox_geometry(width, height, size);
  const Box b = box.convert(BoxFormat::xyxy);
  const double px = static_cast<double>(lb.pad_x), py = static_cast<double>(lb.pad_y);
  return make_xyxy(b.a * lb.sx + px, b.b * lb.sy + py, b.c * lb.sx + px, b.d * lb.sy + py);
}

int64_t centres_inside(double lo, double hi, int64_t stride, int64_t cells) {
  if (!(hi > lo) || cells <= 0) return 0;
  const double s = static_cast<double>(stride);
  // (k + 0.5) s - lo > eps  <=>  k > (lo + eps) / s - 0.5;   hi - (k + 0.5) s > eps  <=>  k < (hi - eps) / s - 0.5
  const double first = (lo + kAssignerEps) / s - 0.5, last = (hi - kAssignerEps) / s - 0.5;
  int64_t k0 = static_cast<int64_t>(std::floor(first)) + 1;
  int64_t k1 = static_cast<int64_t>(std::ceil(last)) - 1;
  k0 = std::max<int64_t>(k0, 0);
  k1 = std::min<int64_t>(k1, cells - 1);
  return std::max<int64_t>(0, k1 - k0 + 1);
}

int64_t anchor_candidates(const Box& box, int64_t stride, int64_t canvas) {
  const Box b = box.convert(BoxFormat::xyxy);
  const int64_t cells = canvas / stride;
  return centres_inside(b.a, b.c, stride, cells) * centres_inside(b.b, b.d, stride, cells);
}

// ---- Statistics -----------------------------------------------------------------------------------------

double ks_distance(std::vector<double> a, std::vector<double> b) {
  if (a.empty() || b.empty()) return 0;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  const double n = static_cast<double>(a.size()), m = static_cast<double>(b.size());
  std::size_t i = 0, j = 0;
  double d = 0;
  while (i < a.size() && j < b.size()) {
    const double v = std::min(a[i], b[j]);
    while (i < a.size() && a[i] <= v) ++i;
    while (j < b.size() && b[j] <= v) ++j;
    d = std::max(d, std::abs(static_cast<double>(i) / n - static_cast<double>(j) / m));
  }
  return d;
}

double ks_p_value(double d, std::size_t n, std::size_t m) {
  if (n == 0 || m == 0) return 1;
  const double ne = static_cast<double>(n) * static_cast<double>(m) / static_cast<double>(n + m);
  const double lambda = (std::sqrt(ne) + 0.12 + 0.11 / std::sqrt(ne)) * d;
  if (lambda < 1e-3) return 1;
  double sum = 0, sign = 1;
  for (int k = 1; k <= 100; ++k) {
    const double term = sign * std::exp(-2.0 * k * k * lambda * lambda);
    sum += term;
    if (std::abs(term) < 1e-12) break;
    sign = -sign;
  }
  return std::clamp(2 * sum, 0.0, 1.0);
}

const char* to_string(OrientationVerdict verdict) {
  switch (verdict) {
    case OrientationVerdict::free: return "free";
    case OrientationVerdict::has_up: return "has_up";
    case OrientationVerdict::unknown: return "unknown";
  }
  return "unknown";
}

SymmetryTest mirror_test(const std::vector<double>& values, double centre) {
  SymmetryTest t;
  t.n = static_cast<int64_t>(values.size());
  if (values.empty()) return t;
  // Values and mirrors on a 1e-9 grid, so that pixel-exact data and its mirror compare equal despite rounding
  // (1 - 0.9 is not 0.1 in binary).
  const auto snap = [](double v) { return std::round(v * 1e9) / 1e9; };
  std::vector<double> snapped(values.size()), mirror(values.size());
  std::transform(values.begin(), values.end(), snapped.begin(), snap);
  std::transform(values.begin(), values.end(), mirror.begin(), [&](double v) { return snap(2 * centre - v); });
  t.d = ks_distance(snapped, mirror);
  t.critical = 1.358 * std::sqrt(2.0 / static_cast<double>(values.size()));
  t.p_value = ks_p_value(t.d, values.size(), values.size());
  t.enough = t.n >= kMinShapeBoxes;
  t.symmetric = t.enough && t.d <= std::max(t.critical, kSymmetryTolerance);
  return t;
}

namespace {

struct Record {
  Box box;  // xyxy native pixels, clipped
  int64_t width = 0, height = 0;
  int64_t image = 0;
  int64_t cls = 0;
};

constexpr double kPi = 3.14159265358979323846;
constexpr double kLogUpright = 0.22314355131420976;  // log(1.25)

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())) - 1));
  return v[i];
}

int64_t pow2_floor(int64_t v) {
  int64_t p = 1;
  while (p * 2 <= v) p *= 2;
  return v < 1 ? 1 : p;
}

int64_t round_up(int64_t v, int64_t multiple) { return (v + multiple - 1) / multiple * multiple; }

double share(int64_t part, int64_t whole) { return whole > 0 ? static_cast<double>(part) / static_cast<double>(whole) : 0; }

// The box in the letterboxed canvas, scaled by `factor` about the canvas centre.
Box canvas_box(const Record& r, int64_t size, double factor) {
  Box b = letterbox_box(r.box, r.width, r.height, size);
  if (factor != 1) {
    const double c = static_cast<double>(size) / 2;
    b = make_xyxy(c + (b.a - c) * factor, c + (b.b - c) * factor, c + (b.c - c) * factor, c + (b.d - c) * factor);
  }
  return b;
}

// Candidates at 8/16/32 summed, per box.
int64_t total_candidates(const Box& b, int64_t size) {
  int64_t total = 0;
  for (int64_t s : kStrides) total += anchor_candidates(b, s, size);
  return total;
}

double matched_share(const std::vector<Record>& records, int64_t size, double factor) {
  int64_t matched = 0;
  for (const auto& r : records) {
    const Box b = canvas_box(r, size, factor);
    for (int64_t s : kStrides)
      if (anchor_candidates(b, s, size) > 0) {
        ++matched;
        break;
      }
  }
  return share(matched, static_cast<int64_t>(records.size()));
}

Coverage coverage_at(const std::vector<Record>& records, const std::vector<ClassStat>& classes, int64_t size) {
  Coverage cov;
  cov.imgsz = size;
  cov.boxes = static_cast<int64_t>(records.size());
  std::vector<int64_t> strides(kStrides.begin(), kStrides.end());
  strides.push_back(kPlannedStride);
  for (int64_t s : strides) cov.levels.push_back(LevelCoverage{s});
  std::vector<int64_t> unmatched_by_class(classes.size(), 0);
  std::vector<double> totals;
  totals.reserve(records.size());
  for (const auto& r : records) {
    const Box b = canvas_box(r, size, 1);
    int64_t total = 0;
    for (std::size_t l = 0; l < strides.size(); ++l) {
      const int64_t n = anchor_candidates(b, strides[l], size);
      if (n >= 1) ++cov.levels[l].at_least_1;
      if (n >= 4) ++cov.levels[l].at_least_4;
      if (l < kStrides.size()) total += n;
    }
    totals.push_back(static_cast<double>(total));
    if (total > 0) {
      ++cov.matched;
    } else {
      ++unmatched_by_class[static_cast<std::size_t>(r.cls)];
      if (std::min(r.box.width(), r.box.height()) < 2) ++cov.unmatched_degenerate;
    }
    if (total < kAssignerTopk) ++cov.below_topk;
  }
  for (auto& l : cov.levels) {
    l.share_1 = share(l.at_least_1, cov.boxes);
    l.share_4 = share(l.at_least_4, cov.boxes);
  }
  cov.share_matched = share(cov.matched, cov.boxes);
  cov.unmatched = cov.boxes - cov.matched;
  cov.share_unmatched = share(cov.unmatched, cov.boxes);
  cov.median_candidates = median(totals);
  for (std::size_t c = 0; c < classes.size(); ++c)
    if (unmatched_by_class[c] > 0)
      cov.unmatched_by_class.push_back(ClassCount{classes[c].category_id, classes[c].name, unmatched_by_class[c],
                                                  classes[c].boxes, share(unmatched_by_class[c], classes[c].boxes)});
  std::stable_sort(cov.unmatched_by_class.begin(), cov.unmatched_by_class.end(),
                   [](const ClassCount& a, const ClassCount& b) { return a.count > b.count; });
  return cov;
}

std::string num(double v) {
  std::ostringstream out;
  out << std::setprecision(6) << v;
  return out.str();
}

std::string pct(double v) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(v > 0 && v < 0.001 ? 3 : 1) << 100 * v << "%";
  return out.str();
}

std::string fixed(double v, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << v;
  return out.str();
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

// ---- The advice -----------------------------------------------------------------------------------------

void validate_options(const AdviseOptions& options) {
  model_scale(options.model);
  if (!options.weights.empty() && !fs::exists(options.weights))
    throw UsageError({cat("--weights: ", options.weights, " does not exist"), "", "give the weights file you will train from"});
  if (options.imgsz < 32 || options.imgsz % 32 != 0)
    throw UsageError({cat("--imgsz must be a positive multiple of 32 (the largest stride); got ", options.imgsz), "",
                      cat("use --imgsz ", std::max<int64_t>(32, round_up(options.imgsz, 32)))});
  if (options.max_imgsz < options.imgsz || options.max_imgsz % 32 != 0)
    throw UsageError({cat("--max-imgsz must be a multiple of 32 and at least --imgsz; got ", options.max_imgsz), "",
                      cat("use --max-imgsz ", std::max(round_up(options.max_imgsz, 32), options.imgsz))});
}

namespace {

// The analysis behind advise_training, one step per section of the advice. Steps run in order and each
// fills its part of `a` from the records and the earlier parts.
struct Advisor {
  const AdviseOptions& options;
  const ModelScale& scale;
  Advice& a;
  ClassBalance& bal;
  ImgszAdvice& isz;
  std::vector<const Split*> splits;
  std::vector<Record> records;                           // every analysed box
  std::vector<double> long_sides, boxes_per_image;       // per analysed image
  std::vector<std::vector<std::size_t>> image_records;   // per analysed image: its records
  int64_t analysed_images = 0;

  Advisor(const AdviseOptions& o, Advice& advice)
      : options(o), scale(model_scale(o.model)), a(advice), bal(advice.balance), isz(advice.imgsz) {}

  double gflops_at(int64_t s) const { return scale.gflops_640 * std::pow(static_cast<double>(s) / 640.0, 2); }

  // The splits, classes and boxes to analyse.
  void collect(const Dataset& dataset) {
    // Which splits: the training split when there is one (what the model learns from), else all.
    for (const auto& s : dataset.splits)
      if (s.name == "train") splits.push_back(&s);
    if (splits.empty())
      for (const auto& s : dataset.splits) splits.push_back(&s);
    for (const auto* s : splits) a.splits.push_back(s->name);

    // Classes: declared ones in order, then ids the annotations use without declaring them.
    std::map<int64_t, std::size_t> class_of;
    for (const auto& c : dataset.categories) {
      class_of[c.id] = bal.classes.size();
      bal.classes.push_back(ClassStat{c.id, c.name});
    }
    auto class_index = [&](int64_t id) {
      const auto it = class_of.find(id);
      if (it != class_of.end()) return it->second;
      std::string name = cat("id ", id);
      for (const auto& u : dataset.undeclared)
        if (u.id == id) name = u.name;
      class_of[id] = bal.classes.size();
      bal.classes.push_back(ClassStat{id, name});
      return bal.classes.size() - 1;
    };

    for (const auto* split : splits)
      for (const auto& img : split->images) {
        ++a.images;
        if (img.width <= 0 || img.height <= 0) {
          ++a.images_without_size;
          continue;
        }
        const int64_t index = static_cast<int64_t>(long_sides.size());
        long_sides.push_back(static_cast<double>(std::max(img.width, img.height)));
        image_records.emplace_back();
        std::vector<bool> seen(bal.classes.size() + img.annotations.size(), false);
        int64_t n = 0;
        for (const auto& ann : img.annotations) {
          const Box box = ann.box.convert(BoxFormat::xyxy);
          if (ann.iscrowd || !box.is_finite()) {
            ++a.skipped_boxes;
            continue;
          }
          const Box clipped = clip(box, static_cast<double>(img.width), static_cast<double>(img.height));
          if (!(clipped.width() > 0 && clipped.height() > 0)) {
            ++a.skipped_boxes;
            continue;
          }
          const std::size_t c = class_index(ann.category_id);
          if (c >= seen.size()) seen.resize(c + 1, false);
          ++bal.classes[c].boxes;
          if (!seen[c]) {
            seen[c] = true;
            ++bal.classes[c].images;
          }
          image_records.back().push_back(records.size());
          records.push_back(Record{clipped, img.width, img.height, index, static_cast<int64_t>(c)});
          ++n;
        }
        boxes_per_image.push_back(static_cast<double>(n));
        if (n == 0) ++a.images_without_boxes;
      }
    a.boxes = static_cast<int64_t>(records.size());
    if (records.empty())
      throw DataError({cat("no box to analyse in split(s) ", join(a.splits, ", ")),
                       a.images_without_size > 0 ? cat(a.images_without_size, " images have no declared size") : "",
                       "run 'detkit check' on the dataset"});
    analysed_images = static_cast<int64_t>(long_sides.size());
  }

  // Classes
  void classes() {
    int64_t most = 0, least = 0;
    for (auto& c : bal.classes) {
      c.share = share(c.boxes, a.boxes);
      if (c.boxes == 0) {
        ++bal.unused;
        continue;
      }
      most = std::max(most, c.boxes);
      least = least == 0 ? c.boxes : std::min(least, c.boxes);
      c.rare = c.boxes < options.rare_boxes || c.share < options.rare_share;
      if (c.rare) {
        ++bal.rare;
        const int64_t target = std::max<int64_t>(
            options.rare_boxes, static_cast<int64_t>(std::ceil(options.rare_share * static_cast<double>(a.boxes))));
        c.to_collect = std::max<int64_t>(0, target - c.boxes);
      }
      const double image_fraction = share(c.images, analysed_images);
      c.repeat_factor = image_fraction > 0 ? std::max(1.0, std::sqrt(0.1 / image_fraction)) : 1.0;
    }
    bal.imbalance_ratio = least > 0 ? static_cast<double>(most) / static_cast<double>(least) : 0;
  }

  // Geometry at the planned size
  void geometry() {
    std::vector<double> px;
    px.reserve(records.size());
    for (const auto& r : records) {
      const Box b = letterbox_box(r.box, r.width, r.height, options.imgsz);
      px.push_back(std::sqrt(b.width() * b.height()));
    }
    a.median_box_px = median(px);
    a.box_px_p10 = quantile(px, 0.1);
    a.box_px_p90 = quantile(px, 0.9);
    a.coverage = coverage_at(records, bal.classes, options.imgsz);
  }

  // imgsz
  void image_size() {
    isz.planned = options.imgsz;
    isz.share_planned = a.coverage.share_matched;
    for (int64_t s = 32; s <= options.max_imgsz; s += 32) {
      const double sh = s == options.imgsz ? isz.share_planned : matched_share(records, s, 1);
      isz.curve.emplace_back(s, sh);
      if (isz.smallest_passing == 0 && sh >= options.target_share) isz.smallest_passing = s;
    }
    isz.suggested = options.imgsz;
    isz.share_suggested = isz.share_planned;
    if (isz.share_planned < options.target_share) {
      // The smallest size above the planned one that passes; else the size (up to the cap) that matches most.
      int64_t best = options.imgsz;
      double best_share = isz.share_planned;
      for (const auto& [s, sh] : isz.curve) {
        if (s <= options.imgsz) continue;
        if (sh >= options.target_share) {
          best = s;
          best_share = sh;
          break;
        }
        if (sh > best_share + 1e-12) {
          best = s;
          best_share = sh;
        }
      }
      isz.suggested = best;
      isz.share_suggested = best_share;
      isz.raise = best != options.imgsz;
    }
    isz.gflops_planned = gflops_at(isz.planned);
    isz.gflops_suggested = gflops_at(isz.suggested);
    isz.cost_ratio = isz.gflops_suggested / isz.gflops_planned;
    isz.median_long_side = median(long_sides);
    isz.upsamples = static_cast<double>(isz.suggested) > isz.median_long_side;
  }

  // Stride 4
  void stride4() {
    Stride4Advice& s4 = a.stride4;
    for (const auto& r : records) {
      const Box b = canvas_box(r, options.imgsz, 1);
      if (total_candidates(b, options.imgsz) == 0 && anchor_candidates(b, kPlannedStride, options.imgsz) > 0)
        ++s4.recovered;
    }
    s4.share_recovered = share(s4.recovered, a.coverage.unmatched);
    s4.share_matched_with = share(a.coverage.matched + s4.recovered, a.boxes);
    for (int64_t s : kStrides) s4.anchors_now += (options.imgsz / s) * (options.imgsz / s);
    s4.anchors_extra = (options.imgsz / kPlannedStride) * (options.imgsz / kPlannedStride);
    s4.suggested = a.coverage.share_matched < options.target_share && s4.recovered > 0 &&
                   s4.share_matched_with > a.coverage.share_matched;
  }

  // Tiles: images much larger than imgsz with tiny boxes
  void tiles() {
    TileAdvice& t = a.tiles;
    t.median_long_side = isz.median_long_side;
    const bool large = t.median_long_side >= 2.0 * static_cast<double>(options.imgsz);
    const bool tiny = a.coverage.share_matched < options.target_share || a.median_box_px < 16;
    if (large && tiny) {
      std::vector<double> sides;
      for (const auto& r : records) sides.push_back(std::max(r.box.width(), r.box.height()));
      t.tile = options.imgsz;
      const int64_t wanted = round_up(static_cast<int64_t>(std::ceil(quantile(sides, 0.95))), 32);
      t.overlap = std::clamp<int64_t>(wanted, 32, t.tile / 2);
      t.overlap_capped = wanted > t.overlap;
      const int64_t step = t.tile - t.overlap;  // a multiple of 32: every tile's anchors sit on one global grid
      double tiles = 0;
      std::vector<bool> counted(long_sides.size(), false);
      for (const auto* split : splits)
        for (const auto& img : split->images) {
          if (img.width <= 0 || img.height <= 0) continue;
          const auto along = [&](int64_t side) {
            return std::max<int64_t>(1, (std::max<int64_t>(side - t.overlap, 1) + step - 1) / step);
          };
          tiles += static_cast<double>(along(img.width) * along(img.height));
        }
      t.tiles_per_image = tiles / static_cast<double>(analysed_images);
      int64_t matched = 0;
      for (const auto& r : records) {
        if (std::max(r.box.width(), r.box.height()) > static_cast<double>(t.tile)) {
          // Seen whole only in the letterboxed whole image, which the training set keeps beside the tiles.
          ++t.larger_than_tile;
          if (total_candidates(canvas_box(r, options.imgsz, 1), options.imgsz) > 0) ++matched;
          continue;
        }
        const int64_t canvas = round_up(std::max(r.width, r.height), 32) + 32;
        if (total_candidates(r.box, canvas) > 0) ++matched;
      }
      t.share_matched_tiled = share(matched, a.boxes);
      t.gflops_per_image = t.tiles_per_image * gflops_at(options.imgsz);
      t.suggested = t.share_matched_tiled > a.coverage.share_matched;
      t.reason = cat("the images' median longer side is ", t.median_long_side, " px, ",
                     fixed(t.median_long_side / static_cast<double>(options.imgsz), 1), "x imgsz, and the boxes are tiny");
    }
  }

  // Density
  void density() {
    DensityAdvice& d = a.density;
    d.mean_boxes = static_cast<double>(a.boxes) / static_cast<double>(std::max<int64_t>(1, analysed_images));
    d.p95_boxes = static_cast<int64_t>(quantile(boxes_per_image, 0.95));
    for (double n : boxes_per_image) {
      d.max_boxes = std::max(d.max_boxes, static_cast<int64_t>(n));
      if (n > kCocoMaxDets) ++d.images_over_coco_max_dets;
      if (n > kMaxDet) ++d.images_over_max_det;
    }
    // Small boxes compete for few anchors: those whose every candidate also lies inside another box of the
    // image can lose all of them to a neighbour (an anchor goes to the box its prediction overlaps most).
    const int64_t size = options.imgsz;
    for (const auto& recs : image_records) {
      std::vector<Box> canvas;
      for (std::size_t i : recs) canvas.push_back(canvas_box(records[i], size, 1));
      for (std::size_t i = 0; i < canvas.size(); ++i) {
        const Box& b = canvas[i];
        const int64_t total = total_candidates(b, size);
        if (total == 0 || total >= 4 * kAssignerTopk) continue;
        ++d.small_boxes;
        bool all_shared = true;
        for (int64_t s : kStrides) {
          const double st = static_cast<double>(s);
          const int64_t cells = size / s;
          for (int64_t ky = 0; ky < cells && all_shared; ++ky) {
            const double cy = (static_cast<double>(ky) + 0.5) * st;
            if (!(cy - b.b > kAssignerEps && b.d - cy > kAssignerEps)) continue;
            for (int64_t kx = 0; kx < cells && all_shared; ++kx) {
              const double cx = (static_cast<double>(kx) + 0.5) * st;
              if (!(cx - b.a > kAssignerEps && b.c - cx > kAssignerEps)) continue;
              bool shared = false;
              for (std::size_t j = 0; j < canvas.size() && !shared; ++j)
                shared = j != i && cx - canvas[j].a > kAssignerEps && canvas[j].c - cx > kAssignerEps &&
                         cy - canvas[j].b > kAssignerEps && canvas[j].d - cy > kAssignerEps;
              all_shared = shared;
            }
          }
        }
        if (all_shared) ++d.contested;
      }
    }
    d.share_contested = share(d.contested, d.small_boxes);
    d.dense = d.p95_boxes >= 50 || d.max_boxes > kCocoMaxDets;
  }

  // Schedule
  void schedule() {
    Schedule& s = a.schedule;
    s.train_images = a.images;
    s.memory_bytes = options.memory_bytes;
    s.memory_is_gpu = options.memory_is_gpu;
    const double area = std::pow(static_cast<double>(isz.suggested) / 640.0, 2);
    s.mib_per_image = scale.train_mib_640 * area * (options.memory_is_gpu ? 1.0 : 2.0);  // CPU: fp32, no AMP
    s.overhead_mib = options.memory_is_gpu ? kTrainOverheadMib : kTrainOverheadMib / 2;
    s.nominal_batch = a.images >= 512 ? 64 : std::clamp<int64_t>(pow2_floor(a.images / 8), 8, 64);
    if (options.memory_bytes > 0) {
      const double usable = static_cast<double>(options.memory_bytes) / (1024.0 * 1024.0) * kUsableMemoryShare;
      s.batch_fit = static_cast<int64_t>(std::floor((usable - s.overhead_mib) / s.mib_per_image));
      s.batch = pow2_floor(std::max<int64_t>(1, std::min(s.batch_fit, s.nominal_batch)));
      if (s.batch_fit < 1)
        s.notes.push_back(cat("by the estimate not even 1 image fits in ", format_bytes(options.memory_bytes),
                              ": use a smaller model or imgsz, or measure with 'detkit plan'"));
    } else {
      s.batch = std::min<int64_t>(16, s.nominal_batch);
      s.notes.push_back("no device memory given (--gpu-mem): batch 16 assumed");
    }
    s.accumulate = (s.nominal_batch + s.batch - 1) / s.batch;
    s.batches_per_epoch = (a.images + s.batch - 1) / s.batch;
    s.steps_per_epoch = (s.batches_per_epoch + s.accumulate - 1) / s.accumulate;
    const bool small = a.images < 500;
    constexpr int64_t kTargetSteps = 3000;
    const int64_t wanted = round_up((kTargetSteps + s.steps_per_epoch - 1) / s.steps_per_epoch, 10);
    s.epochs = std::clamp<int64_t>(wanted, small ? 200 : 100, 300);
    s.total_steps = s.epochs * s.steps_per_epoch;
    const int64_t used_classes = std::max<int64_t>(1, static_cast<int64_t>(bal.classes.size()) - bal.unused);
    if (small) {
      s.optimizer = "adamw";
      // Ultralytics' rule for AdamW on small data, 0.002 x 5 / (4 + classes), kept within 0.001..0.002.
      s.lr0 = std::clamp(std::round(0.002 * 5.0 / (4.0 + static_cast<double>(used_classes)) * 1e5) / 1e5, 0.001, 0.002);
      s.warmup_bias_lr = 0.0;  // a bias learning rate of 0.1 is far too high for Adam
    }
    s.warmup_epochs = std::max<double>(3, std::ceil(100.0 / static_cast<double>(s.batches_per_epoch)));
    s.warmup_epochs = std::min(s.warmup_epochs, std::max(1.0, std::floor(static_cast<double>(s.epochs) / 10)));
    if (!options.weights.empty()) {
      // Fine-tuning: trained features are there to keep. A fifth of the from-scratch rate (as train's own
      // default, kFinetuneLr0 against 0.01), a warmup of ~30 batches (at least one epoch) instead of ~100,
      // and a third of the steps: the run starts near a good solution.
      s.finetune = true;
      s.weights = options.weights;
      s.lr0 = std::round(s.lr0 * (kFinetuneLr0 / RunConfig{}.lr0) * 1e6) / 1e6;
      s.warmup_epochs = std::min(s.warmup_epochs, std::max(1.0, std::ceil(30.0 / static_cast<double>(s.batches_per_epoch))));
      s.epochs = std::clamp<int64_t>(round_up((kTargetSteps / 3 + s.steps_per_epoch - 1) / s.steps_per_epoch, 10), 30, 100);
      s.total_steps = s.epochs * s.steps_per_epoch;
    }
  }

  // Orientation (from box statistics, native pixels)
  void orientation() {
    Orientation& o = a.orientation;
    std::vector<double> ys, logs;
    std::vector<std::vector<double>> logs_by_class(bal.classes.size());
    std::set<int64_t> free_images;
    int64_t outside_middle = 0;
    for (const auto& r : records) {
      const double la = std::log(r.box.width() / r.box.height());
      logs.push_back(la);
      logs_by_class[static_cast<std::size_t>(r.cls)].push_back(la);
      if (r.box.height() > 0.5 * static_cast<double>(r.height)) continue;
      const double y = (r.box.b + r.box.d) / 2 / static_cast<double>(r.height);
      ys.push_back(y);
      free_images.insert(r.image);
      if (y < 0.25 || y > 0.75) ++outside_middle;
    }
    o.y = mirror_test(ys, 0.5);
    o.aspect = mirror_test(logs, 0.0);
    o.free_boxes = static_cast<int64_t>(ys.size());
    o.free_images = static_cast<int64_t>(free_images.size());
    o.outside_middle_share = ys.empty() ? 0.0 : static_cast<double>(outside_middle) / static_cast<double>(ys.size());
    for (std::size_t c = 0; c < bal.classes.size(); ++c) {
      if (logs_by_class[c].size() < 10) continue;
      const double m = median(logs_by_class[c]);
      if (o.most_upright_class.empty() || std::abs(m) > std::abs(o.max_class_median_log_aspect)) {
        o.max_class_median_log_aspect = m;
        o.most_upright_class = bal.classes[c].name;
      }
    }
    o.upright = std::abs(o.max_class_median_log_aspect) > kLogUpright;
    judge_orientation(o);
    o.orientation_free = o.verdict == OrientationVerdict::free;
  }

  // The verdict and its evidence: an up is shown by an upright class or a y asymmetry the test resolves;
  // no up only by a symmetric y that the test could have seen to be asymmetric.
  static void judge_orientation(Orientation& o) {
    const std::string tolerance = fixed(std::max(o.y.critical, kSymmetryTolerance), 3);
    const std::string cannot_tell = "the data cannot tell whether it has an up: ";
    const std::string keep =
        "; flipud stays 0. If the images truly have no up (microscopy, aerial or satellite views, scans at any angle), "
        "set augment.flipud=0.5 yourself";
    if (o.upright) {
      o.verdict = OrientationVerdict::has_up;
      o.evidence = cat("class ", o.most_upright_class, " is upright (median w/h ", fixed(std::exp(o.max_class_median_log_aspect), 2),
                       "): upside-down copies would not look like the data");
    } else if (!o.y.enough) {
      o.verdict = OrientationVerdict::unknown;
      o.evidence = cat(cannot_tell, "only ", o.free_boxes, " boxes are at most half the image height (needs ", kMinShapeBoxes,
                       "); a box taller than that can only sit near the middle", keep);
    } else if (!o.y.symmetric) {
      o.verdict = OrientationVerdict::has_up;
      o.evidence = cat("the objects have an up: box-centre y is not symmetric (KS distance to its mirror ", fixed(o.y.d, 3), " > ",
                       tolerance, ", p = ", num(o.y.p_value), "), as in photos where objects stand low in the frame");
    } else if (o.free_boxes < kMinOrientationBoxes || o.free_images < kMinOrientationImages) {
      o.verdict = OrientationVerdict::unknown;
      o.evidence = cat(cannot_tell, "box-centre y looks symmetric (KS ", fixed(o.y.d, 3), "), but ", o.free_boxes,
                       " boxes of at most half the image height from ", o.free_images, " images are too few for that to mean "
                       "anything: an asymmetry of ", fixed(o.y.critical, 2), " would go unseen (needs ", kMinOrientationBoxes,
                       " boxes from ", kMinOrientationImages, " images to see ", fixed(kOrientationResolution, 1), ")", keep);
    } else if (o.outside_middle_share < kMinOutsideMiddleShare) {
      o.verdict = OrientationVerdict::unknown;
      o.evidence = cat(cannot_tell, "box-centre y looks symmetric (KS ", fixed(o.y.d, 3), "), but only ",
                       fixed(100 * o.outside_middle_share, 0), "% of the box centres lie in the top or bottom quarter (needs ",
                       fixed(100 * kMinOutsideMiddleShare, 0), "%): objects kept to a band across the middle (a road, a "
                       "horizon, a shelf) show no up or down either way", keep);
    } else {
      o.verdict = OrientationVerdict::free;
      o.evidence = cat("the data looks orientation-free: the centres of ", o.free_boxes, " boxes from ", o.free_images,
                       " images spread over the frame (", fixed(100 * o.outside_middle_share, 0),
                       "% in the top or bottom quarter) and are symmetric about the middle (KS distance to their mirror ",
                       fixed(o.y.d, 3), " <= ", tolerance, ", p = ", fixed(o.y.p_value, 2),
                       "), and no class is upright (largest class median w/h ", fixed(std::exp(o.max_class_median_log_aspect), 2),
                       ", ", o.most_upright_class, ")");
    }
  }

  // Augmentations
  void augmentations() {
    const Orientation& o = a.orientation;
    auto item = [&](const std::string& key, const std::string& value, const std::string& def, const std::string& reason) {
      a.augment.push_back(AugmentItem{key, value, value != def, reason});
    };
    // Vertical flip.
    item("augment.flipud", o.orientation_free ? "0.5" : "0", "0", o.evidence);
    // Rotation.
    if (o.orientation_free) {
      const int deg = o.aspect.symmetric ? 10 : 5;
      item("augment.degrees", std::to_string(deg), "0",
           cat("orientation-free data; rotated boxes are the bounds of the rotated corners and grow by up to cos+sin (",
               fixed(std::cos(deg * kPi / 180) + std::sin(deg * kPi / 180), 2), "x at ", deg, " degrees), so keep it small",
               o.aspect.symmetric ? "" : cat("; log(w/h) is not symmetric under w<->h (KS ", fixed(o.aspect.d, 3),
                                            "), so shapes are not rotation-free beyond small angles")));
    } else {
      item("augment.degrees", "0", "0",
           o.verdict == OrientationVerdict::has_up ? "the data has an up (see flipud): keep objects upright"
                                                   : "not known to be orientation-free (see flipud): keep objects upright");
    }
    item("augment.fliplr", "0.5", "0.5", "no box statistic argues against a left-right mirror (mirrored text or handed objects would)");
    // Scale jitter: the smallest scale the jitter draws is 1 - scale; boxes must keep a candidate there.
    const std::array<double, 5> scales{0.5, 0.4, 0.3, 0.2, 0.1};
    const double at_full = isz.share_suggested;
    double chosen = 0.1;
    for (double s : scales) {
      const double sh = matched_share(records, isz.suggested, 1 - s);
      a.scale_share.push_back(sh);
    }
    bool found = false;
    for (std::size_t i = 0; i < scales.size(); ++i)
      if (at_full - a.scale_share[i] <= 0.02) {
        chosen = scales[i];
        found = true;
        break;
      }
    if (!found) chosen = 0.1;
    const std::size_t ci = static_cast<std::size_t>(std::llround((0.5 - chosen) * 10));
    item("augment.scale", num(chosen), "0.5",
         chosen == 0.5
             ? cat("at the smallest jitter scale (0.5) ", pct(a.scale_share[0]), " of boxes still get a candidate (", pct(at_full),
                   " at full size)")
             : cat("at scale 0.5 only ", pct(a.scale_share[0]), " of boxes keep an anchor candidate (", pct(at_full),
                   " at full size); at ", num(1 - chosen), " ", pct(a.scale_share[ci]), ": shrink less"));
    // Multi-scale batches where object sizes vary a lot, as far as shrinking keeps the small ones learnable
    // (the same limit as the scale jitter above).
    const double spread = a.box_px_p10 > 0 ? a.box_px_p90 / a.box_px_p10 : 0;
    const std::string span = cat("box sizes span ", fixed(spread, 1), "x (10th to 90th percentile: ", fixed(a.box_px_p10, 0),
                                 " to ", fixed(a.box_px_p90, 0), " px at imgsz ", isz.suggested, ")");
    if (spread >= 8 && chosen >= 0.3)
      item("augment.multi_scale", num(chosen), "0",
           cat(span, ": training each batch at imgsz x [", num(1 - chosen), ", ", num(1 + chosen),
               "] shows every object at more scales (validation stays at imgsz)"));
    else if (spread >= 8)
      item("augment.multi_scale", "0", "0",
           cat(span, ", but shrinking batches would cost small boxes their anchor candidates (see augment.scale)"));
    else
      item("augment.multi_scale", "0", "0", cat(span, ": one training scale covers them"));
    item("augment.mosaic", "1", "1",
         cat("mosaic keeps object scale and shows 4 images' objects (", fixed(a.density.mean_boxes, 1),
             " boxes per image here) in new contexts per sample", a.median_box_px < 32 ? ": it helps small objects most" : "",
             a.images < 1000 ? "; on a small dataset it is the strongest regulariser" : ""));
    if (a.images >= 10000 && options.model == "yolo-m")
      item("augment.mixup", "0.1", "0", cat(a.images, " images and a medium model: a little mixup regularises"));
    else
      item("augment.mixup", "0", "0",
           cat(a.images, " images", a.images < 1000 ? ": mixup blurs the few examples a small dataset has" : " and a small model: mixup is not worth it"));
  }

  // Command line
  void command_line() {
    const Schedule& s = a.schedule;
    auto& o = a.overrides;
    o.push_back("data=" + options.data);
    if (options.data_format != "auto") o.push_back("data_format=" + options.data_format);
    o.push_back("model=" + options.model);
    if (!options.weights.empty()) o.push_back("weights=" + options.weights);
    o.push_back(cat("imgsz=", isz.suggested));
    o.push_back(cat("batch=", s.batch));
    o.push_back(cat("nominal_batch=", s.nominal_batch));
    o.push_back(cat("epochs=", s.epochs));
    if (s.optimizer != "sgd") o.push_back("optimizer=" + s.optimizer);
    o.push_back("lr0=" + num(s.lr0));
    if (s.warmup_epochs != 3 || s.finetune) o.push_back("warmup_epochs=" + num(s.warmup_epochs));
    if (s.warmup_bias_lr != 0.1) o.push_back("warmup_bias_lr=" + num(s.warmup_bias_lr));
    if (!s.memory_is_gpu && s.memory_bytes > 0) o.push_back("device=cpu");
    for (const auto& it : a.augment)
      if (it.changed) o.push_back(it.key + "=" + it.value);
    std::vector<std::string> quoted;
    for (const auto& x : o) quoted.push_back(shell_quote(x));
    a.command = "detkit train " + join(quoted, " ");
  }
};

}  // namespace

Advice advise_training(const Dataset& dataset, const AdviseOptions& options) {
  validate_options(options);
  Advice a;
  a.data = options.data;
  a.model = options.model;
  Advisor advisor(options, a);
  advisor.collect(dataset);
  advisor.classes();
  advisor.geometry();
  advisor.image_size();
  advisor.stride4();
  advisor.tiles();
  advisor.density();
  advisor.schedule();
  advisor.orientation();
  advisor.augmentations();
  advisor.command_line();
  return a;
}

// ---- Rendering ------------------------------------------------------------------------------------------

std::string format_advice(const Advice& a) {
  std::ostringstream out;
  const Coverage& cov = a.coverage;
  out << "detkit advise: " << a.data << " (split " << join(a.splits, ", ") << "): " << a.images << " images, " << a.boxes
      << " boxes; model " << a.model << ", imgsz " << a.imgsz.planned << "\n";
  if (a.skipped_boxes || a.images_without_size)
    out << "  left out: " << a.skipped_boxes << " crowd/degenerate boxes, " << a.images_without_size
        << " images without a declared size\n";

  out << "\n1. Anchor candidates at imgsz " << cov.imgsz << " (letterboxed; median box " << fixed(a.median_box_px, 1)
      << " px; candidates = anchor centres strictly inside the box, the assigner keeps the best " << kAssignerTopk << ")\n";
  for (const auto& l : cov.levels)
    out << "   stride " << std::setw(2) << l.stride << (l.stride == kPlannedStride ? " (planned)" : "          ") << "  >=1: "
        << std::setw(6) << pct(l.share_1) << " (" << l.at_least_1 << ")   >=4: " << std::setw(6) << pct(l.share_4) << " ("
        << l.at_least_4 << ")\n";
  out << "   any level of 8/16/32: " << pct(cov.share_matched) << " (" << cov.matched << " of " << cov.boxes
      << "); median " << fixed(cov.median_candidates, 0) << " candidates per box; boxes with fewer than "
      << kAssignerTopk << ": " << cov.below_topk << "\n";
  if (cov.unmatched == 0) {
    out << "   every box has a candidate: all can be learned\n";
  } else {
    out << "   " << cov.unmatched << " boxes (" << pct(cov.share_unmatched)
        << ") have no candidate at any level: they cannot be learned. Most affected classes:\n";
    for (std::size_t i = 0; i < cov.unmatched_by_class.size() && i < 5; ++i) {
      const auto& c = cov.unmatched_by_class[i];
      out << "     " << c.name << ": " << c.count << " of " << c.boxes << " (" << pct(c.share) << ")\n";
    }
    if (cov.unmatched_degenerate > 0)
      out << "   " << cov.unmatched_degenerate << " of them are under 2 px on a side in the original image: likely labelling "
          << "slips ('detkit check' reports them as degenerate_box; --fix removes them)\n";
  }

  const ImgszAdvice& isz = a.imgsz;
  out << "\n2. Image size, stride-4 level, tiles, density\n";
  if (!isz.raise) {
    out << "   imgsz " << isz.planned << " is enough: " << pct(isz.share_planned) << " of boxes get >= 1 candidate (target 99%)";
    if (isz.smallest_passing > 0 && isz.smallest_passing < isz.planned)
      out << "; the smallest size that reaches it is " << isz.smallest_passing << " (~"
          << fixed(std::pow(static_cast<double>(isz.smallest_passing) / static_cast<double>(isz.planned), 2) * isz.gflops_planned, 1)
          << " GFLOPs/image instead of " << fixed(isz.gflops_planned, 1) << ", but small details get coarser)";
    else if (isz.share_planned < 0.99)
      out << "; no larger size up to the cap does better";
    out << "\n";
  } else {
    out << "   raise imgsz to " << isz.suggested << ": " << pct(isz.share_suggested) << " of boxes get >= 1 candidate (now "
        << pct(isz.share_planned) << ")" << (isz.share_suggested < 0.99 ? ", the most any size up to the cap reaches" : "")
        << "; cost ~" << fixed(isz.cost_ratio, 2) << "x compute (" << fixed(isz.gflops_suggested, 1) << " GFLOPs/image vs "
        << fixed(isz.gflops_planned, 1) << ")\n";
    if (isz.upsamples)
      out << "   note: " << isz.suggested << " is above the median image's longer side (" << fixed(isz.median_long_side, 0)
          << " px): the images are upsampled, which spreads anchors over small objects but adds no detail\n";
  }
  const Stride4Advice& s4 = a.stride4;
  if (cov.unmatched == 0)
    out << "   stride-4 level (planned): not needed, nothing to recover (it would add " << s4.anchors_extra
        << " anchors to the " << s4.anchors_now << " of today)\n";
  else
    out << "   stride-4 level (planned): would recover " << s4.recovered << " of the " << cov.unmatched << " unmatched boxes ("
        << pct(s4.share_recovered) << "), " << pct(s4.share_matched_with) << " matched in all; it adds " << s4.anchors_extra
        << " anchors to the " << s4.anchors_now << " of today (" << fixed(static_cast<double>(s4.anchors_extra) / static_cast<double>(s4.anchors_now), 1)
        << "x more for the assigner and the loss)\n";
  const TileAdvice& t = a.tiles;
  if (t.tile > 0)
    out << "   tiles: " << t.reason << ": " << (t.suggested ? "cut" : "cutting") << " the images into " << t.tile << " px tiles with "
        << t.overlap << " px overlap (" << (t.overlap_capped ? "half a tile; 5% of boxes are longer" : "95% of boxes are at most that long")
        << ") gives " << fixed(t.tiles_per_image, 1) << " tiles per image and " << pct(t.share_matched_tiled)
        << " of boxes matched (at native resolution in a tile, or in the whole image when longer than a tile), for ~" << fixed(t.gflops_per_image, 1) << " GFLOPs per image"
        << (t.suggested ? "" : " (no better than letterboxing)")
        << ". Tiling is a data step (detkit does not tile yet): write the tiles as a new dataset, then train at imgsz "
        << t.tile << "\n";
  if (t.larger_than_tile > 0)
    out << "     " << t.larger_than_tile << " boxes are longer than a tile: keep the whole images (letterboxed) in the "
        << "training set too, or those objects are never seen whole\n";
  else
    out << "   tiles: not needed (median image longer side " << fixed(t.median_long_side, 0) << " px vs imgsz " << isz.planned
        << ")\n";
  const DensityAdvice& d = a.density;
  out << "   boxes per image: mean " << fixed(d.mean_boxes, 1) << ", 95th percentile " << d.p95_boxes << ", max " << d.max_boxes;
  if (d.dense) {
    out << ": a dense scene\n";
    if (d.images_over_coco_max_dets)
      out << "     " << d.images_over_coco_max_dets << " images have more than " << kCocoMaxDets
          << " boxes: COCO AP counts only the best " << kCocoMaxDets << " detections per image, so their recall is capped\n";
    if (d.images_over_max_det)
      out << "     " << d.images_over_max_det << " images have more than " << kMaxDet << " boxes: raise 'detkit detect --max-det'\n";
  } else {
    out << "\n";
  }
  if (d.small_boxes > 0)
    out << "   of " << d.small_boxes << " boxes with fewer than " << 4 * kAssignerTopk << " candidates, " << d.contested << " ("
        << pct(d.share_contested) << ") share every candidate with another box: the assigner gives a shared anchor to one box "
        << "only, so those can lose all their positives" << (d.share_contested > 0.1 ? " (raise imgsz to separate them)" : "")
        << "\n";

  const Schedule& s = a.schedule;
  out << "\n3. Batch, learning rate, epochs\n";
  if (s.memory_bytes > 0)
    out << "   " << (s.memory_is_gpu ? "GPU memory " : "RAM (CPU training, fp32) ") << format_bytes(s.memory_bytes)
        << ": by a rough estimate " << a.model << " at imgsz " << a.imgsz.suggested << " needs ~" << fixed(s.mib_per_image, 0)
        << " MiB per image + ~" << fixed(s.overhead_mib, 0) << " MiB fixed, so ~" << std::max<int64_t>(0, s.batch_fit)
        << " images fit in " << pct(kUsableMemoryShare) << " of it (an estimate: 'detkit plan' measures it)\n";
  for (const auto& n : s.notes) out << "   note: " << n << "\n";
  out << "   batch " << s.batch << ", nominal_batch " << s.nominal_batch << " (accumulate " << s.accumulate << " micro-batches)";
  if (s.nominal_batch != 64) out << ": " << s.train_images << " images are too few for 64, which would give only "
                                 << (s.train_images + 63) / 64 << " optimizer steps per epoch";
  out << "\n   " << s.steps_per_epoch << " optimizer steps per epoch x " << s.epochs << " epochs = " << s.total_steps
      << " steps (aiming at ~3000, within 100..300 epochs" << (s.train_images < 500 ? ", at least 200 for small data" : "") << ")\n";
  if (s.optimizer == "adamw")
    out << "   optimizer adamw, lr0 " << num(s.lr0) << ": with " << s.train_images
        << " (< 500) images AdamW converges more reliably than SGD at 0.01; warmup_bias_lr 0 (0.1 is too high for Adam)\n";
  else
    out << "   optimizer sgd, lr0 " << num(s.lr0) << " (the default for nominal batch 64)\n";
  if (s.finetune)
    out << "   fine-tuning from " << s.weights << ": lr0 is a fifth of the from-scratch rate, warmup_epochs "
        << num(s.warmup_epochs) << " (" << static_cast<int64_t>(s.warmup_epochs) * s.batches_per_epoch
        << " batches) and " << s.epochs << " epochs: a from-scratch rate and warmup would wash out the trained features\n";
  else
    out << "   warmup_epochs " << num(s.warmup_epochs) << " (" << static_cast<int64_t>(s.warmup_epochs) * s.batches_per_epoch
        << " batches; at least ~100 batches of warmup, at most a tenth of the run)\n";

  const ClassBalance& b = a.balance;
  out << "\n4. Classes\n   ";
  std::vector<std::string> parts;
  for (const auto& c : b.classes) parts.push_back(cat(c.name, " ", c.boxes, " (", pct(c.share), ")"));
  out << join(parts, ", ") << "\n   imbalance ratio " << fixed(b.imbalance_ratio, 1) << " (most / least boxes)\n";
  const int64_t used = static_cast<int64_t>(b.classes.size()) - b.unused;
  const bool all_rare = used > 1 && b.rare == used;
  if (all_rare) {
    int64_t floor_boxes = 0;
    for (const auto& c : b.classes) floor_boxes = std::max(floor_boxes, c.boxes + c.to_collect);
    out << "   every class is rare: the dataset is small rather than unbalanced; collect more of every class (at least "
        << floor_boxes << " boxes each)\n";
  }
  for (const auto& c : b.classes) {
    if (c.boxes == 0) {
      out << "   " << c.name << " has no box in " << join(a.splits, ", ") << ": the model cannot learn it\n";
    } else if (c.rare && !all_rare) {
      out << "   rare: " << c.name << " " << c.boxes << " boxes in " << c.images << " images (" << pct(c.share) << "): collect ~"
          << c.to_collect << " more boxes;";
      if (c.repeat_factor > 1.05)
        out << " meanwhile oversample its images ~" << fixed(c.repeat_factor, 1)
            << "x (list them that many times in the training list);";
      out << " check its labels, since with few examples each wrong one weighs more\n";
    }
  }
  if (b.rare == 0 && b.unused == 0) out << "   no rare class (each has >= 1% of the boxes and enough of them)\n";
  else if (b.imbalance_ratio > 10)
    out << "   the imbalance is large: judge the model by per-class AP ('detkit eval' prints it), not only mAP\n";

  const Orientation& o = a.orientation;
  out << "\n5. Augmentation (centre y of " << o.free_boxes << " boxes of at most half the image height, from " << o.free_images
      << " images, vs its mirror: KS " << fixed(o.y.d, 3) << ", 5% critical " << fixed(o.y.critical, 3) << ", p "
      << num(o.y.p_value) << ", " << fixed(100 * o.outside_middle_share, 0) << "% in the top or bottom quarter; log(w/h) vs "
      << "its inverse: KS " << fixed(o.aspect.d, 3) << ", critical " << fixed(o.aspect.critical, 3) << "; up: "
      << to_string(o.verdict) << ")\n";
  for (const auto& it : a.augment)
    out << "   " << it.key << "=" << it.value << (it.changed ? "  (changed)" : "  (default)") << ": " << it.reason << "\n";

  out << "\n6. Suggested command\n   " << a.command << "\n";
  return out.str();
}

std::string advice_json(const Advice& a) {
  using J = nlohmann::ordered_json;
  J j;
  j["data"] = a.data;
  j["model"] = a.model;
  j["splits"] = a.splits;
  j["images"] = a.images;
  j["boxes"] = a.boxes;
  j["images_without_boxes"] = a.images_without_boxes;
  j["skipped_boxes"] = a.skipped_boxes;
  j["images_without_size"] = a.images_without_size;
  j["median_box_px"] = a.median_box_px;
  j["box_px_p10"] = a.box_px_p10;
  j["box_px_p90"] = a.box_px_p90;
  const Coverage& c = a.coverage;
  J cov;
  cov["imgsz"] = c.imgsz;
  cov["boxes"] = c.boxes;
  J levels = J::array();
  for (const auto& l : c.levels)
    levels.push_back({{"stride", l.stride}, {"planned", l.stride == kPlannedStride}, {"at_least_1", l.at_least_1},
                      {"share_1", l.share_1}, {"at_least_4", l.at_least_4}, {"share_4", l.share_4}});
  cov["levels"] = levels;
  cov["matched"] = c.matched;
  cov["share_matched"] = c.share_matched;
  cov["unmatched"] = c.unmatched;
  cov["share_unmatched"] = c.share_unmatched;
  cov["unmatched_degenerate"] = c.unmatched_degenerate;
  cov["below_topk"] = c.below_topk;
  cov["topk"] = kAssignerTopk;
  cov["median_candidates"] = c.median_candidates;
  J by = J::array();
  for (const auto& x : c.unmatched_by_class)
    by.push_back({{"category_id", x.category_id}, {"name", x.name}, {"unmatched", x.count}, {"boxes", x.boxes}, {"share", x.share}});
  cov["unmatched_by_class"] = by;
  j["coverage"] = cov;
  const ImgszAdvice& i = a.imgsz;
  J curve = J::array();
  for (const auto& [s, sh] : i.curve) curve.push_back({{"imgsz", s}, {"share_matched", sh}});
  j["imgsz"] = {{"planned", i.planned},           {"share_planned", i.share_planned}, {"smallest_passing", i.smallest_passing},
                {"suggested", i.suggested},       {"share_suggested", i.share_suggested}, {"raise", i.raise},
                {"gflops_planned", i.gflops_planned}, {"gflops_suggested", i.gflops_suggested}, {"cost_ratio", i.cost_ratio},
                {"median_long_side", i.median_long_side}, {"upsamples", i.upsamples}, {"curve", curve}};
  const Stride4Advice& s4 = a.stride4;
  j["stride4"] = {{"recovered", s4.recovered},         {"share_recovered", s4.share_recovered},
                  {"share_matched_with", s4.share_matched_with}, {"anchors_now", s4.anchors_now},
                  {"anchors_extra", s4.anchors_extra},  {"suggested", s4.suggested}};
  const TileAdvice& t = a.tiles;
  j["tiles"] = {{"suggested", t.suggested}, {"median_long_side", t.median_long_side}, {"tile", t.tile}, {"overlap", t.overlap},
                {"overlap_capped", t.overlap_capped}, {"tiles_per_image", t.tiles_per_image},
                {"share_matched_tiled", t.share_matched_tiled}, {"larger_than_tile", t.larger_than_tile},
                {"gflops_per_image", t.gflops_per_image}, {"reason", t.reason}};
  const DensityAdvice& d = a.density;
  j["density"] = {{"mean_boxes", d.mean_boxes}, {"p95_boxes", d.p95_boxes}, {"max_boxes", d.max_boxes},
                  {"images_over_coco_max_dets", d.images_over_coco_max_dets}, {"coco_max_dets", kCocoMaxDets},
                  {"images_over_max_det", d.images_over_max_det}, {"max_det", kMaxDet}, {"small_boxes", d.small_boxes},
                  {"contested", d.contested}, {"share_contested", d.share_contested}, {"dense", d.dense}};
  const Schedule& s = a.schedule;
  j["schedule"] = {{"train_images", s.train_images}, {"memory_bytes", s.memory_bytes}, {"memory_is_gpu", s.memory_is_gpu},
                   {"mib_per_image", s.mib_per_image}, {"overhead_mib", s.overhead_mib}, {"batch_fit", s.batch_fit},
                   {"batch", s.batch}, {"nominal_batch", s.nominal_batch}, {"accumulate", s.accumulate},
                   {"batches_per_epoch", s.batches_per_epoch}, {"steps_per_epoch", s.steps_per_epoch}, {"epochs", s.epochs},
                   {"total_steps", s.total_steps}, {"optimizer", s.optimizer}, {"lr0", s.lr0},
                   {"warmup_epochs", s.warmup_epochs}, {"warmup_bias_lr", s.warmup_bias_lr}, {"finetune", s.finetune}, {"weights", s.weights}, {"notes", s.notes},
                   {"estimate", true}};
  const ClassBalance& b = a.balance;
  J classes = J::array();
  for (const auto& x : b.classes)
    classes.push_back({{"category_id", x.category_id}, {"name", x.name}, {"boxes", x.boxes}, {"images", x.images},
                       {"share", x.share}, {"rare", x.rare}, {"to_collect", x.to_collect}, {"repeat_factor", x.repeat_factor}});
  j["classes"] = {{"classes", classes}, {"imbalance_ratio", b.imbalance_ratio}, {"unused", b.unused}, {"rare", b.rare}};
  const Orientation& o = a.orientation;
  auto test = [](const SymmetryTest& x) {
    return J{{"n", x.n}, {"ks", x.d}, {"critical", x.critical}, {"p_value", x.p_value}, {"enough", x.enough},
             {"symmetric", x.symmetric}};
  };
  j["orientation"] = {{"y_mirror", test(o.y)}, {"aspect_inverse", test(o.aspect)},
                      {"max_class_median_aspect", std::exp(o.max_class_median_log_aspect)},
                      {"most_upright_class", o.most_upright_class}, {"upright", o.upright},
                      {"free_boxes", o.free_boxes}, {"free_images", o.free_images},
                      {"outside_middle_share", o.outside_middle_share},
                      {"required", {{"free_boxes", kMinOrientationBoxes}, {"free_images", kMinOrientationImages},
                                    {"outside_middle_share", kMinOutsideMiddleShare}}},
                      {"verdict", to_string(o.verdict)}, {"evidence", o.evidence},
                      {"orientation_free", o.orientation_free}};
  J scale_share = J::array();
  const std::array<double, 5> scales{0.5, 0.4, 0.3, 0.2, 0.1};
  for (std::size_t k = 0; k < a.scale_share.size(); ++k)
    scale_share.push_back({{"scale", scales[k]}, {"min_factor", 1 - scales[k]}, {"share_matched", a.scale_share[k]}});
  j["scale_jitter"] = scale_share;
  J aug = J::array();
  for (const auto& it : a.augment)
    aug.push_back({{"key", it.key}, {"value", it.value}, {"changed", it.changed}, {"reason", it.reason}});
  j["augment"] = aug;
  j["overrides"] = a.overrides;
  j["command"] = a.command;
  return j.dump(2) + "\n";
}

}  // namespace detkit::advise
