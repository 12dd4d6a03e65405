// detkit audit (src/audit): the scoring of labels against predictions on hand-built cases, a synthetic
// dataset whose planted label noise is known exactly, and --fix on a dataset written to disk.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "audit/audit_run.h"
#include "audit/label_audit.h"
#include "core/fs.h"
#include "core/text.h"
#include "data/formats_read.h"
#include "data/synth.h"
#include "test_util.h"

namespace detkit::audit {
namespace {

using B = std::array<double, 4>;

Dataset three_classes() {
  Dataset d;
  d.categories = {{1, "cat"}, {2, "dog"}, {3, "bird"}};
  d.splits.push_back({"train", "", {}});
  return d;
}

ImageRecord image_with(std::vector<std::pair<int64_t, B>> boxes, int64_t id = 1) {
  ImageRecord r;
  r.id = id;
  r.file_name = cat("img", id, ".jpg");
  r.width = 640;
  r.height = 480;
  int64_t ann = id * 100;
  for (const auto& [category, b] : boxes) {
    Annotation a;
    a.id = ann++;
    a.category_id = category;
    a.box = Box{b[0], b[1], b[2], b[3], BoxFormat::xyxy};
    a.source_line = static_cast<int64_t>(a.id % 100) + 1;
    r.annotations.push_back(a);
  }
  return r;
}

B shifted(const B& b, double fx, double fy) {
  const double w = b[2] - b[0], h = b[3] - b[1];
  return {b[0] + fx * w, b[1] + fy * h, b[2] + fx * w, b[3] + fy * h};
}

TEST(AuditIou, MatchesHandValues) {
  EXPECT_DOUBLE_EQ(box_iou({0, 0, 10, 10}, {0, 0, 10, 10}), 1.0);
  EXPECT_DOUBLE_EQ(box_iou({0, 0, 10, 10}, {5, 0, 15, 10}), 50.0 / 150.0);
  EXPECT_DOUBLE_EQ(box_iou({0, 0, 10, 10}, {10, 0, 20, 10}), 0.0);
  EXPECT_DOUBLE_EQ(box_iou({0, 0, 0, 10}, {0, 0, 10, 10}), 0.0);  // empty box
}

TEST(AuditImage, AgreeingLabelsAndPredictionsGiveNoSuspect) {
  const Dataset d = three_classes();
  const ImageRecord img = image_with({{1, {10, 10, 60, 60}}, {2, {100, 100, 180, 160}}});
  const std::vector<Prediction> preds = {{{12, 11, 61, 59}, 0.9, 0}, {{101, 99, 178, 161}, 0.85, 1},
                                         {{101, 99, 178, 161}, 0.04, 0}};  // a weak second class: not evidence
  EXPECT_TRUE(audit_image(d, img, preds, {}).empty());
}

TEST(AuditImage, WrongClassNamesTheModelsClassAndScoresBothConfidences) {
  const Dataset d = three_classes();
  const ImageRecord img = image_with({{1, {10, 10, 60, 60}}});
  const std::vector<Prediction> preds = {{{11, 10, 60, 61}, 0.9, 1}, {{10, 10, 60, 60}, 0.2, 0}};
  const auto s = audit_image(d, img, preds, {});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].kind, SuspectKind::wrong_class);
  EXPECT_NEAR(s[0].score, 0.9 * (1 - 0.2), 1e-12);
  EXPECT_NEAR(s[0].label_score, 0.2, 1e-12);
  EXPECT_EQ(*s[0].annotation_index, 0u);
  EXPECT_EQ(s[0].prediction->class_index, 1);
  EXPECT_NE(s[0].evidence.find("the model sees dog (0.90) where the label says cat (0.20)"), std::string::npos) << s[0].evidence;
  EXPECT_NE(s[0].fix.find("change the class to dog"), std::string::npos);
}

TEST(AuditImage, ShiftedBoxIsBadlyPlacedAndItsEvidenceIsNotAlsoMissing) {
  const Dataset d = three_classes();
  const B truth = {100, 100, 200, 180};
  for (double f : {0.3, 0.4, 0.5}) {
    SCOPED_TRACE(f);
    const ImageRecord img = image_with({{1, shifted(truth, f, f)}});
    const std::vector<Prediction> preds = {{truth, 0.8, 0}};
    const auto s = audit_image(d, img, preds, {});
    ASSERT_EQ(s.size(), 1u);  // no "missing" for the object the badly placed box is about
    EXPECT_EQ(s[0].kind, SuspectKind::badly_placed);
    const double iou = box_iou(truth, shifted(truth, f, f));
    EXPECT_NEAR(*s[0].iou, iou, 1e-12);
    EXPECT_NEAR(s[0].score, 0.8 * (1 - iou), 1e-12);
    EXPECT_NE(s[0].fix.find("[100, 100, 200, 180]"), std::string::npos) << s[0].fix;
  }
}

TEST(AuditImage, ABoxTheModelSeesNothingInIsSpurious) {
  const Dataset d = three_classes();
  const ImageRecord img = image_with({{1, {10, 10, 60, 60}}, {3, {300, 300, 340, 330}}});
  const std::vector<Prediction> preds = {{{10, 10, 60, 60}, 0.9, 0}, {{300, 300, 340, 330}, 0.05, 2}};
  const auto s = audit_image(d, img, preds, {});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].kind, SuspectKind::spurious);
  EXPECT_EQ(*s[0].annotation_index, 1u);
  EXPECT_NEAR(s[0].score, 0.95, 1e-12);
  EXPECT_FALSE(s[0].prediction.has_value());
  // Some confidence nearby (at or above spurious_support) is not "nothing there".
  const std::vector<Prediction> weak = {{{10, 10, 60, 60}, 0.9, 0}, {{300, 300, 340, 330}, 0.15, 2}};
  EXPECT_TRUE(audit_image(d, img, weak, {}).empty());
}

TEST(AuditImage, MissingBoxIsReportedOncePerObjectWhateverTheClasses) {
  const Dataset d = three_classes();
  const ImageRecord img = image_with({{1, {10, 10, 60, 60}}});
  const std::vector<Prediction> preds = {{{10, 10, 60, 60}, 0.9, 0},
                                         {{400, 300, 470, 360}, 0.7, 1},
                                         {{402, 301, 471, 362}, 0.4, 2},   // the same object as another class
                                         {{400, 300, 470, 360}, 0.2, 0},   // below min_score
                                         {{50, 50, 100, 100}, 0.8, 0}};    // IoU 0.05 with the box: an object beside it
  const auto s = audit_image(d, img, preds, {});
  ASSERT_EQ(s.size(), 2u);
  for (const auto& x : s) EXPECT_EQ(x.kind, SuspectKind::missing);
  EXPECT_NEAR(s[0].score, 0.8, 1e-12);
  EXPECT_NEAR(s[1].score, 0.7, 1e-12);
  EXPECT_EQ(s[1].prediction->class_index, 1);
  EXPECT_NE(s[1].fix.find("add a dog box at [400, 300, 470, 360]"), std::string::npos) << s[1].fix;
}

TEST(AuditImage, CrowdAndUndeclaredBoxesAreNotJudged) {
  const Dataset d = three_classes();
  ImageRecord img = image_with({{1, {10, 10, 60, 60}}, {9, {100, 100, 150, 150}}});
  img.annotations[0].iscrowd = true;
  EXPECT_TRUE(audit_image(d, img, {}, {}).empty());
}

TEST(AuditImage, PredictionsInsideACrowdRegionAreNotMissing) {
  const Dataset d = three_classes();
  ImageRecord img = image_with({{1, {0, 0, 300, 200}}});
  img.annotations[0].iscrowd = true;
  const std::vector<Prediction> preds = {{{10, 10, 40, 40}, 0.9, 0}, {{250, 150, 310, 210}, 0.8, 0},  // 69 % inside
                                         {{400, 300, 450, 350}, 0.7, 0}};
  const auto s = audit_image(d, img, preds, {});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_NEAR(s[0].score, 0.7, 1e-12);
}

TEST(AuditImage, APredictionIsTheEvidenceOfOneWrongClassOnly) {
  const Dataset d = three_classes();
  // Two near-identical boxes labelled cat; the one dog prediction belongs to the first (higher IoU).
  const ImageRecord img = image_with({{1, {10, 10, 60, 60}}, {1, {12, 12, 62, 62}}});
  const std::vector<Prediction> preds = {{{10, 10, 60, 60}, 0.9, 1}};
  const auto s = audit_image(d, img, preds, {});
  std::size_t wrong = 0;
  for (const auto& x : s) wrong += x.kind == SuspectKind::wrong_class;
  EXPECT_EQ(wrong, 1u);
}

TEST(AuditDataset, RanksPerKindGivesIdsByScoreAndSkipsImagesNotPredicted) {
  Dataset d = three_classes();
  d.splits[0].images.push_back(image_with({{1, {10, 10, 60, 60}}}, 1));                         // spurious 1.0
  d.splits[0].images.push_back(image_with({{1, {10, 10, 60, 60}}}, 2));                         // wrong class
  d.splits[0].images.push_back(image_with({{1, {10, 10, 60, 60}}}, 3));                         // not predicted
  d.splits.push_back({"val", "", {image_with({{2, {10, 10, 60, 60}}}, 4)}});                    // spurious 1.0
  PredictionMap p;
  p[{0, 0}] = {};
  p[{0, 1}] = {{{10, 10, 60, 60}, 0.6, 2}};
  p[{1, 0}] = {{{300, 200, 350, 260}, 0.5, 1}};  // and a missing box
  AuditOptions o;
  o.labeling_policy = false;  // one prediction teaches no policy (AuditLabelingPolicy tests it)
  const AuditResult r = audit_dataset(d, p, {}, o);
  EXPECT_EQ(r.images, 3u);
  EXPECT_EQ(r.annotations, 3u);
  EXPECT_EQ(r.predictions, 2u);
  ASSERT_EQ(r.suspects.size(), 4u);
  EXPECT_EQ(r.suspects[0].id, "S0001");
  EXPECT_EQ(r.suspects[0].kind, SuspectKind::spurious);
  EXPECT_EQ(r.suspects[0].rank, 1);
  EXPECT_EQ(r.suspects[1].kind, SuspectKind::spurious);
  EXPECT_EQ(r.suspects[1].rank, 2);
  EXPECT_EQ(r.suspects[1].split_index, 1u);  // ties keep dataset order
  EXPECT_EQ(r.suspects[2].kind, SuspectKind::wrong_class);
  EXPECT_EQ(r.suspects[3].kind, SuspectKind::missing);
  EXPECT_EQ(r.suspects[3].id, "S0004");
  EXPECT_EQ(r.counts.at(SuspectKind::spurious), 2u);
  EXPECT_EQ(r.counts.at(SuspectKind::badly_placed), 0u);
  // One split only; a split named twice counts once.
  EXPECT_EQ(audit_dataset(d, p, {"val"}, o).suspects.size(), 2u);
  EXPECT_EQ(audit_dataset(d, p, {"val", "val"}, o).suspects.size(), 2u);
}

TEST(AuditDataset, BadOptionsAndSplitsAreUsageErrors) {
  const Dataset d = three_classes();
  AuditOptions o;
  o.min_score = 1.5;
  EXPECT_THROW_WITH(audit_dataset(d, {}, {}, o), UsageError, "min_score is 1.5", "value in [0, 1]");
  o = {};
  o.min_overlap = 0.7;
  EXPECT_THROW_WITH(audit_dataset(d, {}, {}, o), UsageError, "must be below placement_iou", "lower min_overlap");
  EXPECT_THROW_WITH(audit_dataset(d, {}, {"tran"}, {}), UsageError, "tran", "--split");
}

// Annotators who never box objects cut by the image edge: a missing edge object is weak evidence, a
// missing interior object (in images otherwise completely labelled) strong, whatever the confidences.
TEST(AuditLabelingPolicy, MissingObjectsOfGroupsTheDatasetLeavesUnlabelledRankLower) {
  Dataset d = three_classes();
  PredictionMap preds;
  for (int i = 0; i < 10; ++i) {
    std::vector<std::pair<int64_t, B>> boxes;
    std::vector<Prediction>& p = preds[{0, static_cast<std::size_t>(i)}];
    for (int k = 0; k < 4; ++k) {
      const B b = {100.0 + 100 * k, 200, 160.0 + 100 * k, 260};
      p.push_back({b, 0.8, 0});
      if (!(i == 3 && k == 2)) boxes.push_back({1, b});  // one interior object deleted
    }
    p.push_back({{0, 10, 50, 60}, 0.9, 0});  // an edge object, never boxed
    d.splits[0].images.push_back(image_with(boxes, i + 1));
  }
  AuditOptions o;
  const AuditResult with = audit_dataset(d, preds, {}, o);
  const auto& edge = with.policy.groups.at({0, true});
  EXPECT_EQ(edge.predicted, 10u);
  EXPECT_EQ(edge.boxed, 0u);
  EXPECT_EQ(with.policy.groups.at({0, false}).predicted, 40u);
  EXPECT_EQ(with.policy.groups.at({0, false}).boxed, 39u);
  EXPECT_NEAR(with.policy.rate(0, true), 1.0 / 12, 1e-12);
  ASSERT_FALSE(with.suspects.empty());
  EXPECT_EQ(with.suspects[0].kind, SuspectKind::missing);
  EXPECT_EQ(with.suspects[0].image_index, 3u);  // the deleted interior object ranks first
  EXPECT_NE(with.suspects[0].evidence.find("% of such cats inside the image"), std::string::npos) << with.suspects[0].evidence;
  EXPECT_EQ(with.counts.at(SuspectKind::missing), 1u);  // the edge objects score 0.9 x 1/12, under min_score
  o.labeling_policy = false;
  const AuditResult without = audit_dataset(d, preds, {}, o);
  EXPECT_TRUE(without.policy.groups.empty());
  EXPECT_EQ(without.counts.at(SuspectKind::missing), 11u);
  EXPECT_NEAR(without.suspects[0].score, 0.9, 1e-12);  // by confidence alone an edge object comes first
}

// A synthetic dataset and a model that sees the truth (boxes jittered by a few pixels, a faint second
// class everywhere, faint background noise); label noise planted into a copy of the truth, 5 % per kind.
// Every planted error must rank above every clean label: recall 1 at k = planted, for each kind.
TEST(AuditPlantedNoise, EveryPlantedErrorRanksAtTheTop) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  Dataset d = three_classes();
  PredictionMap preds;
  struct Planted { SuspectKind kind; std::size_t image; B box; };
  std::vector<Planted> planted;
  const int images = 60;
  for (int i = 0; i < images; ++i) {
    // Up to 8 objects on a grid of 160x120 cells, so objects never overlap.
    std::vector<std::pair<int64_t, B>> truth;
    for (int cell = 0; cell < 16; ++cell) {
      if (u(rng) < 0.5) continue;
      const double cx = (cell % 4) * 160 + 80, cy = (cell / 4) * 120 + 60;
      const double w = 40 + 60 * u(rng), h = 30 + 50 * u(rng);
      truth.push_back({1 + static_cast<int64_t>(u(rng) * 3), {cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2}});
    }
    std::vector<Prediction>& p = preds[{0, static_cast<std::size_t>(i)}];
    for (const auto& [category, b] : truth) {
      const B jittered = {b[0] + 3 * (u(rng) - 0.5), b[1] + 3 * (u(rng) - 0.5), b[2] + 3 * (u(rng) - 0.5), b[3] + 3 * (u(rng) - 0.5)};
      p.push_back({jittered, 0.55 + 0.4 * u(rng), category - 1});
      p.push_back({jittered, 0.05 * u(rng), (category % 3)});  // a faint other class
    }
    for (int k = 0; k < 5; ++k) {
      const double x = 600 * u(rng), y = 440 * u(rng);
      p.push_back({{x, y, x + 20, y + 20}, 0.09 * u(rng), static_cast<int64_t>(u(rng) * 3)});
    }
    d.splits[0].images.push_back(image_with(truth, i + 1));
  }
  // Plant: walk the boxes in a shuffled order and give every 20th one of each kind in turn.
  std::vector<std::pair<std::size_t, std::size_t>> all;
  for (std::size_t i = 0; i < d.splits[0].images.size(); ++i)
    for (std::size_t a = 0; a < d.splits[0].images[i].annotations.size(); ++a) all.push_back({i, a});
  std::shuffle(all.begin(), all.end(), rng);
  const std::size_t per_kind = all.size() / 20;
  std::map<std::size_t, std::vector<std::size_t>> deleted;
  for (std::size_t n = 0; n < 3 * per_kind; ++n) {
    const auto [i, a] = all[n];
    Annotation& ann = d.splits[0].images[i].annotations[a];
    const B b = {ann.box.a, ann.box.b, ann.box.c, ann.box.d};
    if (n < per_kind) {
      ann.category_id = ann.category_id % 3 + 1;
      planted.push_back({SuspectKind::wrong_class, i, b});
    } else if (n < 2 * per_kind) {
      const double f = 0.3 + 0.2 * u(rng);
      const B s = shifted(b, u(rng) < 0.5 ? f : -f, u(rng) < 0.5 ? f : -f);
      ann.box = Box{s[0], s[1], s[2], s[3], BoxFormat::xyxy};
      planted.push_back({SuspectKind::badly_placed, i, s});
    } else {
      deleted[i].push_back(a);
      planted.push_back({SuspectKind::missing, i, b});
    }
  }
  for (auto& [i, list] : deleted) {
    std::sort(list.rbegin(), list.rend());
    for (std::size_t a : list) d.splits[0].images[i].annotations.erase(d.splits[0].images[i].annotations.begin() + a);
  }
  for (std::size_t n = 0; n < per_kind; ++n) {  // spurious: a box in an empty cell
    const std::size_t i = n % d.splits[0].images.size();
    const double cx = 600 + 20 * u(rng), cy = 440 + 20 * u(rng);  // the corner cell's edge: no object there
    const B b = {cx - 25, cy - 20, cx + 10, cy + 10};
    bool free = true;
    for (const auto& a : d.splits[0].images[i].annotations)
      if (box_iou({a.box.a, a.box.b, a.box.c, a.box.d}, b) > 0) free = false;
    for (const auto& p : preds[{0, i}])
      if (p.score > 0.1 && box_iou(p.box, b) > 0) free = false;
    if (!free) continue;
    Annotation a;
    a.id = 100000 + static_cast<int64_t>(n);
    a.category_id = 1;
    a.box = Box{b[0], b[1], b[2], b[3], BoxFormat::xyxy};
    d.splits[0].images[i].annotations.push_back(a);
    planted.push_back({SuspectKind::spurious, i, b});
  }
  ASSERT_GT(per_kind, 10u);

  const AuditResult r = audit_dataset(d, preds, {}, {});
  for (SuspectKind kind : {SuspectKind::wrong_class, SuspectKind::badly_placed, SuspectKind::missing, SuspectKind::spurious}) {
    SCOPED_TRACE(suspect_kind_name(kind));
    std::size_t k = 0, hits = 0;
    for (const auto& p : planted) k += p.kind == kind;
    for (const auto& s : r.suspects) {
      if (s.kind != kind || s.rank > static_cast<int64_t>(k)) continue;
      const auto& ann = d.splits[0].images[s.image_index].annotations;
      const B box = s.annotation_index ? B{ann[*s.annotation_index].box.a, ann[*s.annotation_index].box.b,
                                           ann[*s.annotation_index].box.c, ann[*s.annotation_index].box.d}
                                       : s.prediction->box;
      for (const auto& p : planted)
        if (p.kind == kind && p.image == s.image_index && box_iou(p.box, box) > 0.5) ++hits;
    }
    EXPECT_EQ(hits, k) << "planted " << k << ", suspects of this kind " << r.counts.at(kind);
    EXPECT_EQ(r.counts.at(kind), k);  // and nothing else is suspect: the clean labels agree with the model
  }
}

class AuditFix : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / cat("detkit-audit-fix-", ::testing::UnitTest::GetInstance()->random_seed(), "-",
                                            reinterpret_cast<uintptr_t>(this));
    fs::remove_all(root_);
    SynthOptions o;
    o.format = AnnotationFormat::coco;
    o.train_images = 3;
    o.val_images = 1;
    o.sizes = {"320x240"};
    o.max_objects = 6;
    o.simple = true;
    o.empty_fraction = 0;
    o.seed = 3;
    generate_synthetic_dataset(o, root_ / "ds");
    source_ = read_dataset(root_ / "ds");
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
  DatasetSource source_;
};

std::string tree_text(const fs::path& dir) {
  std::string all;
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) all += f.string() + "\n" + read_file(f);
  return all;
}

TEST_F(AuditFix, AppliesTheAcceptedSuspectsToACopyAndListsEachChange) {
  const Dataset& d = source_.dataset;
  const std::size_t s = static_cast<std::size_t>(&d.split("train") - d.splits.data());
  std::size_t i = 0;  // the image with the most boxes
  for (std::size_t j = 0; j < d.splits[s].images.size(); ++j)
    if (d.splits[s].images[j].annotations.size() > d.splits[s].images[i].annotations.size()) i = j;
  ASSERT_GE(d.splits[s].images[i].annotations.size(), 2u);
  const auto box_of = [](const Annotation& a) { return B{a.box.a, a.box.b, a.box.c, a.box.d}; };
  const ImageRecord& img = d.splits[s].images[i];
  const int64_t cls0 = d.category_index(img.annotations[0].category_id);
  // annotation 0: the model sees another class there; annotation 1: nothing there (spurious); and an object
  // with no box (missing, low score: not accepted at --accept-score 0.5).
  PredictionMap p;
  std::vector<Prediction>& preds = p[{s, i}];
  preds.push_back({box_of(img.annotations[0]), 0.95, (cls0 + 1) % static_cast<int64_t>(d.categories.size())});
  for (std::size_t a = 2; a < img.annotations.size(); ++a)
    preds.push_back({box_of(img.annotations[a]), 0.9, d.category_index(img.annotations[a].category_id)});
  preds.push_back({{1, 1, 9, 9}, 0.3, 0});
  AuditOptions o;
  o.missing_iou = 0.01;
  o.labeling_policy = false;
  const AuditResult r = audit_dataset(d, p, {"train"}, o);
  ASSERT_EQ(r.counts.at(SuspectKind::wrong_class), 1u);
  ASSERT_GE(r.counts.at(SuspectKind::spurious), 1u);
  const std::string before = tree_text(root_ / "ds");

  FixSelection sel;
  const AuditFixResult fixed = write_audit_fix(source_, r, sel, (root_ / "fixed").string());
  EXPECT_EQ(tree_text(root_ / "ds"), before);  // the input is untouched
  EXPECT_EQ(fixed.classes_changed, 1u);
  EXPECT_EQ(fixed.boxes_removed, r.counts.at(SuspectKind::spurious));
  EXPECT_EQ(fixed.boxes_added, 0u);  // the missing suspect scored 0.3 < 0.5
  const DatasetSource back = read_dataset(root_ / "fixed");
  const ImageRecord& out = back.dataset.split("train").images[i];
  EXPECT_EQ(out.annotations.size(), img.annotations.size() - fixed.boxes_removed);
  EXPECT_EQ(back.dataset.category_index(out.annotations[0].category_id), preds[0].class_index);
  const auto changes = nlohmann::json::parse(read_file(root_ / "fixed" / "audit-changes.json"));
  EXPECT_EQ(changes["applied"], fixed.applied);
  ASSERT_EQ(changes["changes"].size(), fixed.applied);
  const auto& wrong = *std::find_if(changes["changes"].begin(), changes["changes"].end(),
                                    [](const nlohmann::json& c) { return c["kind"] == "wrong_class"; });
  EXPECT_EQ(wrong["before"]["class"], d.categories[static_cast<std::size_t>(cls0)].name);
  EXPECT_EQ(wrong["after"]["class"], d.categories[static_cast<std::size_t>(preds[0].class_index)].name);
  EXPECT_EQ(wrong["after"]["box"], wrong["before"]["box"]);

  // Only named ids, and a low threshold lets the missing box in.
  sel.min_score = 0.2;
  sel.kinds = {SuspectKind::missing};
  const AuditFixResult added = write_audit_fix(source_, r, sel, (root_ / "fixed2").string());
  EXPECT_EQ(added.applied, 1u);
  EXPECT_EQ(added.boxes_added, 1u);
  EXPECT_EQ(read_dataset(root_ / "fixed2").dataset.split("train").images[i].annotations.size(), img.annotations.size() + 1);

  // Named suspects are applied whatever their score.
  FixSelection named;
  named.ids = {r.suspects.back().id};
  named.min_score = 1;
  EXPECT_EQ(write_audit_fix(source_, r, named, (root_ / "fixed4").string()).applied, 1u);

  sel.ids = {"S9999"};
  EXPECT_THROW_WITH(write_audit_fix(source_, r, sel, (root_ / "fixed3").string()), UsageError, "S9999", "rerun the audit");
  sel.ids.clear();
  EXPECT_THROW(write_audit_fix(source_, r, sel, (root_ / "fixed").string()), UsageError);  // not empty
}

}  // namespace
}  // namespace detkit::audit
