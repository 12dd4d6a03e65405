#include "audit/label_audit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/text.h"

namespace detkit::audit {

namespace {

// Predictions at least this confident teach the labelling policy (lower ones are mostly background).
constexpr double kPolicyConfidence = 0.5;
// The dataset's rate counts as this many objects against an image's own labelling.
constexpr double kPolicyPriorWeight = 4;

constexpr SuspectKind kKinds[] = {SuspectKind::missing, SuspectKind::spurious, SuspectKind::wrong_class,
                                  SuspectKind::badly_placed};

std::string score_text(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", s);
  return b;
}

std::string box_text(const std::array<double, 4>& b) {
  char t[96];
  std::snprintf(t, sizeof t, "[%.0f, %.0f, %.0f, %.0f]", b[0], b[1], b[2], b[3]);
  return t;
}

struct Label {
  std::size_t annotation = 0;     // index into the image's annotations
  int64_t class_index = 0;
  std::array<double, 4> box{};
};

}  // namespace

const char* suspect_kind_name(SuspectKind kind) {
  switch (kind) {
    case SuspectKind::missing: return "missing";
    case SuspectKind::spurious: return "spurious";
    case SuspectKind::wrong_class: return "wrong_class";
    case SuspectKind::badly_placed: return "badly_placed";
  }
  return "?";
}

std::optional<SuspectKind> parse_suspect_kind(const std::string& name) {
  for (SuspectKind k : kKinds)
    if (name == suspect_kind_name(k)) return k;
  return std::nullopt;
}

std::array<double, 4> xyxy_corners(const Box& box) {
  const Box b = box.convert(BoxFormat::xyxy);
  return {b.a, b.b, b.c, b.d};
}

std::string category_name(const Dataset& dataset, int64_t index) {
  if (index >= 0 && index < static_cast<int64_t>(dataset.categories.size()))
    return dataset.categories[static_cast<std::size_t>(index)].name;
  return cat("class ", index);
}

double box_iou(const std::array<double, 4>& a, const std::array<double, 4>& b) {
  const double area_a = std::max(0.0, a[2] - a[0]) * std::max(0.0, a[3] - a[1]);
  const double area_b = std::max(0.0, b[2] - b[0]) * std::max(0.0, b[3] - b[1]);
  if (!(area_a > 0) || !(area_b > 0)) return 0;
  const double w = std::min(a[2], b[2]) - std::max(a[0], b[0]);
  const double h = std::min(a[3], b[3]) - std::max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const double inter = w * h;
  return inter / (area_a + area_b - inter);
}

double LabelingPolicy::rate(int64_t class_index, bool at_edge) const {
  const auto found = groups.find({class_index, at_edge});
  const Group g = found == groups.end() ? Group{} : found->second;
  return (static_cast<double>(g.boxed) + 1) / (static_cast<double>(g.predicted) + 2);
}

bool touches_edge(const ImageRecord& image, const std::array<double, 4>& box) {
  if (image.width <= 0 || image.height <= 0) return false;
  constexpr double margin = 2;
  return box[0] <= margin || box[1] <= margin || box[2] >= static_cast<double>(image.width) - margin ||
         box[3] >= static_cast<double>(image.height) - margin;
}

namespace {

// The image's confident predictions, one per object (class-agnostic, highest score first), each with its
// largest IoU with a judged box.
std::vector<std::pair<std::size_t, double>> confident_objects(const std::vector<Prediction>& predictions,
                                                               const std::vector<double>& best_iou, double min_score) {
  std::vector<std::size_t> order;
  for (std::size_t p = 0; p < predictions.size(); ++p)
    if (predictions[p].score >= min_score) order.push_back(p);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return predictions[a].score > predictions[b].score; });
  std::vector<std::pair<std::size_t, double>> kept;
  for (std::size_t p : order) {
    bool duplicate = false;
    for (const auto& k : kept)
      if (box_iou(predictions[k.first].box, predictions[p].box) > 0.5) duplicate = true;
    if (!duplicate) kept.emplace_back(p, best_iou[p]);
  }
  return kept;
}

// Share of `box` inside `region`.
double inside_share(const std::array<double, 4>& box, const std::array<double, 4>& region) {
  const double area = std::max(0.0, box[2] - box[0]) * std::max(0.0, box[3] - box[1]);
  const double w = std::min(box[2], region[2]) - std::max(box[0], region[0]);
  const double h = std::min(box[3], region[3]) - std::max(box[1], region[1]);
  return area > 0 && w > 0 && h > 0 ? w * h / area : 0;
}

// Each prediction's largest IoU with a judged box; a prediction mostly inside a COCO crowd region counts
// as covered (IoU 1), as COCO's evaluation ignores it.
std::vector<double> best_label_iou(const Dataset& dataset, const ImageRecord& image, const std::vector<Prediction>& predictions) {
  std::vector<double> best(predictions.size(), 0.0);
  for (const Annotation& ann : image.annotations) {
    if (dataset.category_index(ann.category_id) < 0) continue;
    const std::array<double, 4> box = xyxy_corners(ann.box);
    for (std::size_t p = 0; p < predictions.size(); ++p)
      best[p] = std::max(best[p], ann.iscrowd ? (inside_share(predictions[p].box, box) >= 0.5 ? 1.0 : 0.0)
                                              : box_iou(box, predictions[p].box));
  }
  return best;
}

// Marks predictions mostly inside a crowd region of `image` as covered (IoU 1 in `best`).
void cover_by_crowd(const Dataset& dataset, const ImageRecord& image, const std::vector<Prediction>& predictions,
                    std::vector<double>& best) {
  for (const Annotation& ann : image.annotations) {
    if (!ann.iscrowd || dataset.category_index(ann.category_id) < 0) continue;
    const std::array<double, 4> region = xyxy_corners(ann.box);
    for (std::size_t p = 0; p < predictions.size(); ++p)
      if (inside_share(predictions[p].box, region) >= 0.5) best[p] = 1.0;
  }
}

}  // namespace

std::vector<Suspect> audit_image(const Dataset& dataset, const ImageRecord& image, const std::vector<Prediction>& predictions,
                                 const AuditOptions& options, const LabelingPolicy* policy) {
  std::vector<Label> labels;
  for (std::size_t a = 0; a < image.annotations.size(); ++a) {
    const Annotation& ann = image.annotations[a];
    const int64_t index = dataset.category_index(ann.category_id);
    if (index < 0 || ann.iscrowd) continue;
    labels.push_back({a, index, xyxy_corners(ann.box)});
  }
  const std::size_t n_labels = labels.size(), n_preds = predictions.size();

  // iou[l][p], and each prediction's best-overlapping label (the object it most likely shows).
  std::vector<std::vector<double>> iou(n_labels, std::vector<double>(n_preds, 0.0));
  std::vector<double> best_iou(n_preds, 0.0);
  std::vector<std::ptrdiff_t> best_label(n_preds, -1);
  for (std::size_t l = 0; l < n_labels; ++l)
    for (std::size_t p = 0; p < n_preds; ++p) {
      iou[l][p] = box_iou(labels[l].box, predictions[p].box);
      if (iou[l][p] > best_iou[p]) {
        best_iou[p] = iou[l][p];
        best_label[p] = static_cast<std::ptrdiff_t>(l);
      }
    }
  std::vector<double> covered_iou = best_iou;  // and crowd regions, which are not judged but do cover
  cover_by_crowd(dataset, image, predictions, covered_iou);

  std::vector<Suspect> out;
  std::vector<bool> claimed(n_preds, false);  // evidence of a reported suspect
  for (std::size_t l = 0; l < n_labels; ++l) {
    const Label& label = labels[l];
    const std::string label_class = category_name(dataset, label.class_index);
    double label_score = 0;     // labelled class at IoU >= match_iou
    double placed_score = 0;    // labelled class at IoU >= placement_iou
    double support = 0;         // any class near enough to say an object is there
    std::ptrdiff_t other = -1;  // best other-class prediction at IoU >= match_iou
    std::ptrdiff_t placement = -1;
    double placement_score = 0;
    for (std::size_t p = 0; p < n_preds; ++p) {
      const Prediction& pred = predictions[p];
      const double v = iou[l][p];
      const bool same = pred.class_index == label.class_index;
      if (v >= options.match_iou) {
        if (same)
          label_score = std::max(label_score, pred.score);
        else if (best_label[p] == static_cast<std::ptrdiff_t>(l) &&
                 (other < 0 || pred.score > predictions[static_cast<std::size_t>(other)].score))
          other = static_cast<std::ptrdiff_t>(p);
      }
      if (same && v >= options.placement_iou) placed_score = std::max(placed_score, pred.score);
      const bool mine = best_label[p] == static_cast<std::ptrdiff_t>(l);
      if (v >= options.support_iou || (mine && v >= options.min_overlap)) support = std::max(support, pred.score);
    }
    for (std::size_t p = 0; p < n_preds; ++p) {
      const Prediction& pred = predictions[p];
      const double v = iou[l][p];
      if (pred.class_index != label.class_index || v < options.min_overlap || v >= options.placement_iou) continue;
      if (best_label[p] != static_cast<std::ptrdiff_t>(l)) continue;  // another box explains it better
      // The box already has a fitting prediction at least as confident: this one is a neighbouring object
      // (in a clump of cells, the one nobody boxed), not evidence that the box is misplaced.
      if (placed_score >= pred.score) continue;
      const double s = pred.score * (1 - v);
      if (s > placement_score) {
        placement_score = s;
        placement = static_cast<std::ptrdiff_t>(p);
      }
    }
    placement_score *= 1 - placed_score;

    const double wrong_score = other >= 0 ? predictions[static_cast<std::size_t>(other)].score * (1 - label_score) : 0;
    // Some confidence nearby means an object is there: not spurious, whatever else is wrong with the box.
    const double spurious_score = support < options.spurious_support ? 1 - support : 0;
    Suspect s;
    s.annotation_index = label.annotation;
    s.label_score = label_score;
    if (wrong_score >= placement_score && wrong_score >= spurious_score && other >= 0 &&
        predictions[static_cast<std::size_t>(other)].score > label_score) {
      const Prediction& pred = predictions[static_cast<std::size_t>(other)];
      const std::string model_class = category_name(dataset, pred.class_index);
      s.kind = SuspectKind::wrong_class;
      s.score = wrong_score;
      s.prediction = pred;
      s.iou = iou[l][static_cast<std::size_t>(other)];
      s.evidence = cat("the model sees ", model_class, " (", score_text(pred.score), ") where the label says ", label_class,
                       " (", score_text(label_score), ")");
      s.fix = cat("change the class to ", model_class, ", or keep ", label_class, " if the model is wrong");
      if (s.score >= options.min_score) claimed[static_cast<std::size_t>(other)] = true;
    } else if (placement_score >= spurious_score && placement >= 0) {
      const Prediction& pred = predictions[static_cast<std::size_t>(placement)];
      s.kind = SuspectKind::badly_placed;
      s.score = placement_score;
      s.prediction = pred;
      s.iou = iou[l][static_cast<std::size_t>(placement)];
      s.evidence = cat("the model finds this ", label_class, " (", score_text(pred.score), ") at ", box_text(pred.box),
                       ", overlapping the box by IoU ", score_text(*s.iou), "; no ", label_class,
                       " prediction fits the box as drawn (best ", score_text(placed_score), ")");
      s.fix = cat("redraw the box around the object; the model's box is ", box_text(pred.box));
      if (s.score >= options.min_score) claimed[static_cast<std::size_t>(placement)] = true;
    } else if (spurious_score > 0) {
      s.kind = SuspectKind::spurious;
      s.score = spurious_score;
      s.evidence = cat("no prediction of any class overlaps this ", label_class, " box (the most confident nearby is ",
                       score_text(support), ")");
      s.fix = "delete the box if there is no object in it, or label what is there";
    } else {
      continue;
    }
    if (s.score >= options.min_score) out.push_back(std::move(s));
  }

  // Missing boxes: confident predictions no box covers, one per object. The evidence of reported suspects
  // suppresses its neighbours first, so one object is not reported twice.
  std::vector<std::size_t> order(n_preds);
  for (std::size_t p = 0; p < n_preds; ++p) order[p] = p;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return predictions[a].score > predictions[b].score; });
  // How completely this image is labelled, per class and edge group: of its confident objects, how many a
  // box covers.
  std::map<std::pair<int64_t, bool>, std::pair<double, double>> image_labelled;  // (class, at edge) -> (boxed, predicted)
  std::vector<bool> confident(n_preds, false);
  if (policy)
    for (const auto& [p, v] : confident_objects(predictions, covered_iou, kPolicyConfidence)) {
      confident[p] = true;
      auto& c = image_labelled[{predictions[p].class_index, touches_edge(image, predictions[p].box)}];
      c.first += v >= options.missing_iou;
      c.second += 1;
    }
  std::vector<std::size_t> kept;  // claimed evidence and covered predictions suppress their weaker duplicates
  for (std::size_t p = 0; p < n_preds; ++p)
    if (claimed[p] || covered_iou[p] >= options.missing_iou) kept.push_back(p);
  for (std::size_t p : order) {
    const Prediction& pred = predictions[p];
    if (claimed[p] || pred.score < options.min_score || covered_iou[p] >= options.missing_iou) continue;
    bool duplicate = false;
    for (std::size_t k : kept)
      if (box_iou(predictions[k].box, pred.box) > 0.5) duplicate = true;
    if (duplicate) continue;
    kept.push_back(p);
    const std::string model_class = category_name(dataset, pred.class_index);
    const bool at_edge = touches_edge(image, pred.box);
    double rate = 1.0;
    if (policy) {
      // The dataset's rate for such objects, corrected by how completely this image is labelled (its other
      // confident objects of the group), with the dataset's rate as a prior worth kPolicyPriorWeight objects.
      const auto [boxed, predicted] = image_labelled[{pred.class_index, at_edge}];
      const double prior = policy->rate(pred.class_index, at_edge);
      rate = (boxed + kPolicyPriorWeight * prior) / (predicted - (confident[p] ? 1 : 0) + kPolicyPriorWeight);
    }
    Suspect s;
    s.kind = SuspectKind::missing;
    s.score = pred.score * rate;
    if (s.score < options.min_score) continue;
    s.prediction = pred;
    s.evidence = cat("the model finds a ", model_class, " (", score_text(pred.score), ") at ", box_text(pred.box),
                     " that no box covers (largest IoU with a box ", score_text(best_iou[p]), ")");
    if (policy)
      s.evidence += cat("; this dataset boxes ", static_cast<int>(std::lround(100 * rate)), "% of such ", model_class, "s",
                        at_edge ? " at the image edge" : " inside the image");
    s.fix = cat("add a ", model_class, " box at ", box_text(pred.box), " if the object is there");
    out.push_back(std::move(s));
  }
  return out;
}

void validate_audit_options(const AuditOptions& options) {
  const std::pair<const char*, double> checks[] = {
      {"min_score", options.min_score},     {"match_iou", options.match_iou},     {"placement_iou", options.placement_iou},
      {"min_overlap", options.min_overlap}, {"support_iou", options.support_iou}, {"missing_iou", options.missing_iou},
      {"spurious_support", options.spurious_support}};
  for (const auto& [name, value] : checks)
    if (!(value >= 0 && value <= 1))
      throw UsageError({cat("audit option ", name, " is ", value), "scores and IoUs lie in [0, 1]", cat("give ", name, " a value in [0, 1]")});
  if (options.min_overlap >= options.placement_iou)
    throw UsageError({cat("min_overlap (", options.min_overlap, ") must be below placement_iou (", options.placement_iou, ")"),
                      "a badly placed box is one whose prediction overlaps it by an IoU between the two",
                      "lower min_overlap or raise placement_iou"});
}

std::vector<std::size_t> audited_splits(const Dataset& dataset, const std::vector<std::string>& names) {
  std::vector<std::size_t> selected;
  if (names.empty()) {
    for (std::size_t s = 0; s < dataset.splits.size(); ++s) selected.push_back(s);
    return selected;
  }
  for (const auto& name : names) {
    const auto index = static_cast<std::size_t>(&dataset.split(name, "--split") - dataset.splits.data());
    if (std::find(selected.begin(), selected.end(), index) == selected.end()) selected.push_back(index);
  }
  return selected;
}

AuditResult audit_dataset(const Dataset& dataset, const PredictionMap& predictions, const std::vector<std::string>& splits,
                          const AuditOptions& options) {
  validate_audit_options(options);
  const std::vector<std::size_t> selected = audited_splits(dataset, splits);

  AuditResult result;
  for (SuspectKind k : kKinds) result.counts[k] = 0;
  if (options.labeling_policy) {
    for (std::size_t s : selected)
      for (std::size_t i = 0; i < dataset.splits[s].images.size(); ++i) {
        const auto found = predictions.find({s, i});
        if (found == predictions.end()) continue;
        const ImageRecord& image = dataset.splits[s].images[i];
        const std::vector<double> best = best_label_iou(dataset, image, found->second);
        for (const auto& [p, iou] : confident_objects(found->second, best, kPolicyConfidence)) {
          const Prediction& pred = found->second[p];
          LabelingPolicy::Group& g = result.policy.groups[{pred.class_index, touches_edge(image, pred.box)}];
          ++g.predicted;
          g.boxed += iou >= options.missing_iou;
        }
      }
  }
  const LabelingPolicy* policy = options.labeling_policy ? &result.policy : nullptr;
  for (std::size_t s : selected) {
    const Split& split = dataset.splits[s];
    for (std::size_t i = 0; i < split.images.size(); ++i) {
      const auto found = predictions.find({s, i});
      if (found == predictions.end()) continue;
      ++result.images;
      result.annotations += split.images[i].annotations.size();
      result.predictions += found->second.size();
      for (Suspect& suspect : audit_image(dataset, split.images[i], found->second, options, policy)) {
        suspect.split_index = s;
        suspect.image_index = i;
        result.suspects.push_back(std::move(suspect));
      }
    }
  }
  // Highest score first; ties keep dataset order (stable), so the ranking is deterministic.
  std::stable_sort(result.suspects.begin(), result.suspects.end(),
                   [](const Suspect& a, const Suspect& b) { return a.score > b.score; });
  const int width = std::max<int>(4, static_cast<int>(std::to_string(result.suspects.size()).size()));
  for (std::size_t i = 0; i < result.suspects.size(); ++i) {
    Suspect& s = result.suspects[i];
    s.rank = static_cast<int64_t>(++result.counts[s.kind]);
    const std::string number = std::to_string(i + 1);
    s.id = "S" + std::string(static_cast<std::size_t>(width) - std::min(number.size(), static_cast<std::size_t>(width)), '0') + number;
  }
  return result;
}

}  // namespace detkit::audit
