// detkit advise (src/advise): anchor-candidate counts, symmetry tests and the advice on hand-built
// datasets whose answers are known exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "advise/advise.h"
#include "core/run_config.h"
#include "core/text.h"
#include "test_util.h"

namespace detkit::advise {
namespace {

// One split "train" of images (w, h) with boxes (class id, x1, y1, x2, y2).
struct ImageSpec {
  int64_t width, height;
  std::vector<std::array<double, 5>> boxes;
};

Dataset make_dataset(const std::vector<std::string>& classes, const std::vector<ImageSpec>& images) {
  Dataset d;
  for (std::size_t i = 0; i < classes.size(); ++i) d.categories.push_back(Category{static_cast<int64_t>(i + 1), classes[i]});
  Split split;
  split.name = "train";
  int64_t ann_id = 1, img_id = 1;
  for (const auto& spec : images) {
    ImageRecord img;
    img.id = img_id++;
    img.file_name = cat(img.id, ".jpg");
    img.width = spec.width;
    img.height = spec.height;
    for (const auto& b : spec.boxes) {
      Annotation a;
      a.id = ann_id++;
      a.category_id = static_cast<int64_t>(b[0]);
      a.box = make_xyxy(b[1], b[2], b[3], b[4]);
      img.annotations.push_back(a);
    }
    split.images.push_back(img);
  }
  d.splits.push_back(split);
  return d;
}

AdviseOptions options_for(int64_t imgsz = 640) {
  AdviseOptions o;
  o.data = "data/x";
  o.imgsz = imgsz;
  o.memory_bytes = 24ull << 30;
  return o;
}

const AugmentItem& item(const Advice& a, const std::string& key) {
  for (const auto& it : a.augment)
    if (it.key == key) return it;
  throw std::runtime_error("no item " + key);
}

TEST(AdviseGeometry, CentresStrictlyInside) {
  // Stride-8 centres at 4, 12, 20, ...
  EXPECT_EQ(centres_inside(1, 7, 8, 80), 1);
  EXPECT_EQ(centres_inside(4, 12, 8, 80), 0);  // both ends on a centre: neither is strictly inside
  EXPECT_EQ(centres_inside(3.9, 12.1, 8, 80), 2);
  EXPECT_EQ(centres_inside(0, 640, 8, 80), 80);
  EXPECT_EQ(centres_inside(-50, 700, 32, 20), 20);  // clamped to the grid
  EXPECT_EQ(centres_inside(5, 5, 8, 80), 0);
}

TEST(AdviseGeometry, LetterboxMatchesTheLoader) {
  const Letterbox lb = letterbox_geometry(1280, 640, 640);
  EXPECT_DOUBLE_EQ(lb.sx, 0.5);
  EXPECT_DOUBLE_EQ(lb.sy, 0.5);
  EXPECT_EQ(lb.pad_x, 0);
  EXPECT_EQ(lb.pad_y, 160);
  const Box b = letterbox_box(make_xyxy(100, 100, 200, 300), 1280, 640, 640);
  EXPECT_DOUBLE_EQ(b.a, 50);
  EXPECT_DOUBLE_EQ(b.b, 210);
  EXPECT_DOUBLE_EQ(b.c, 100);
  EXPECT_DOUBLE_EQ(b.d, 310);
  // 640x480 -> 640x480 centred: pad 80 in y.
  EXPECT_EQ(letterbox_geometry(640, 480, 640).pad_y, 80);
}

TEST(AdviseGeometry, SixPixelBoxHasExactlyOneStride8Candidate) {
  // In a 640x640 image at imgsz 640: (1,1)-(7,7) holds the stride-8 centre (4,4) only; none at 16 (8,8) or
  // 32 (16,16); four stride-4 centres (2 and 6 on each axis).
  const Box box = make_xyxy(1, 1, 7, 7);
  EXPECT_EQ(anchor_candidates(box, 8, 640), 1);
  EXPECT_EQ(anchor_candidates(box, 16, 640), 0);
  EXPECT_EQ(anchor_candidates(box, 32, 640), 0);
  EXPECT_EQ(anchor_candidates(box, 4, 640), 4);

  // Through the whole advice: that box, one matched only at stride 16 ((8,8) inside (5,11)), and a 2x2 box
  // that no level matches but the stride-4 centre (10,10) would.
  const Dataset d = make_dataset({"dot"}, {{640, 640, {{1, 1, 1, 7, 7}, {1, 5, 5, 11, 11}, {1, 9, 9, 11, 11}}}});
  const Advice a = advise_training(d, options_for());
  const Coverage& c = a.coverage;
  ASSERT_EQ(c.levels.size(), 4u);
  EXPECT_EQ(c.levels[0].stride, 8);
  EXPECT_EQ(c.levels[0].at_least_1, 1);
  EXPECT_EQ(c.levels[0].at_least_4, 0);
  EXPECT_EQ(c.levels[1].stride, 16);
  EXPECT_EQ(c.levels[1].at_least_1, 1);
  EXPECT_EQ(c.levels[2].at_least_1, 0);
  EXPECT_EQ(c.levels[3].stride, 4);
  EXPECT_EQ(c.levels[3].at_least_1, 3);
  EXPECT_EQ(c.levels[3].at_least_4, 2);  // (1,7): 2x2; (5,11): centres 6 and 10 -> 2x2; (9,11): 1
  EXPECT_EQ(c.matched, 2);
  EXPECT_EQ(c.unmatched, 1);
  EXPECT_NEAR(c.share_unmatched, 1.0 / 3, 1e-12);
  ASSERT_EQ(c.unmatched_by_class.size(), 1u);
  EXPECT_EQ(c.unmatched_by_class[0].name, "dot");
  EXPECT_EQ(c.unmatched_by_class[0].count, 1);
  // The stride-4 level recovers the one unmatched box.
  EXPECT_EQ(a.stride4.recovered, 1);
  EXPECT_DOUBLE_EQ(a.stride4.share_recovered, 1.0);
  EXPECT_DOUBLE_EQ(a.stride4.share_matched_with, 1.0);
  EXPECT_TRUE(a.stride4.suggested);
  EXPECT_EQ(a.stride4.anchors_now, 80 * 80 + 40 * 40 + 20 * 20);
  EXPECT_EQ(a.stride4.anchors_extra, 160 * 160);
  // 2 of 3 matched at 640: a larger size is suggested, and it costs (s / 640)^2.
  EXPECT_TRUE(a.imgsz.raise);
  EXPECT_GT(a.imgsz.suggested, 640);
  EXPECT_GT(a.imgsz.share_suggested, a.imgsz.share_planned);
  EXPECT_NEAR(a.imgsz.cost_ratio, std::pow(a.imgsz.suggested / 640.0, 2), 1e-12);
  EXPECT_NEAR(a.imgsz.gflops_planned, 8.7, 1e-12);
}

TEST(AdviseGeometry, TinyBoxesAskForALargerImageSize) {
  // 4x4 boxes at odd offsets in 640x640 images: at 640 a 4-px box often misses every centre; at 1280 it is
  // 8 px and holds one stride-8 centre unless both ends sit exactly on centres.
  std::vector<ImageSpec> images;
  for (int i = 0; i < 10; ++i) {
    ImageSpec spec{640, 640, {}};
    for (int k = 0; k < 10; ++k) {
      const double x = 37 + 61 * k + 0.3 * i, y = 23 + 59 * i + 0.7 * k;
      spec.boxes.push_back({1, x, y, x + 4, y + 4});
    }
    images.push_back(spec);
  }
  const Advice a = advise_training(make_dataset({"speck"}, images), options_for());
  EXPECT_LT(a.imgsz.share_planned, 0.99);
  EXPECT_TRUE(a.imgsz.raise);
  EXPECT_GE(a.imgsz.share_suggested, 0.99);
  EXPECT_EQ(a.imgsz.suggested % 32, 0);
  EXPECT_LE(a.imgsz.suggested, 1536);
  EXPECT_TRUE(a.imgsz.upsamples);
  // The smallest passing size: nothing below it passes.
  for (const auto& [s, sh] : a.imgsz.curve) {
    if (s < a.imgsz.smallest_passing) {
      EXPECT_LT(sh, 0.99) << s;
    }
  }
  EXPECT_NE(a.command.find(cat("imgsz=", a.imgsz.suggested)), std::string::npos);
}

TEST(AdviseStatistics, KolmogorovSmirnov) {
  EXPECT_DOUBLE_EQ(ks_distance({1, 2, 3}, {1, 2, 3}), 0);
  EXPECT_DOUBLE_EQ(ks_distance({1, 2, 3}, {4, 5, 6}), 1);
  EXPECT_DOUBLE_EQ(ks_distance({1, 2, 3, 4}, {3, 4, 5, 6}), 0.5);
  EXPECT_NEAR(ks_p_value(0, 100, 100), 1, 1e-12);
  EXPECT_LT(ks_p_value(0.5, 100, 100), 1e-9);
  // The 5% critical distance of the asymptotic series: p ~ 0.05 there.
  EXPECT_NEAR(ks_p_value(1.358 * std::sqrt(2.0 / 1000), 1000, 1000), 0.05, 0.01);
  const SymmetryTest sym = mirror_test({0.1, 0.2, 0.3, 0.7, 0.8, 0.9}, 0.5);
  EXPECT_DOUBLE_EQ(sym.d, 0);
  EXPECT_FALSE(sym.enough);  // 6 values
  EXPECT_FALSE(sym.symmetric);
}

// 4 boxes per image in `count` images of 640x480, class 1, with box-centre y from `y_of(i, k)` (fraction of
// the height) and size w x h.
Dataset shapes(double w, double h, const std::function<double(int, int)>& y_of, int count = 20) {
  std::vector<ImageSpec> images;
  for (int i = 0; i < count; ++i) {
    ImageSpec spec{640, 480, {}};
    for (int k = 0; k < 4; ++k) {
      const double cx = 80 + 150 * k + 3 * (i % 20), cy = y_of(i, k) * 480;
      spec.boxes.push_back({1, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2});
    }
    images.push_back(spec);
  }
  return make_dataset({"thing"}, images);
}

TEST(AdviseAugment, UprightObjectsLowInTheFrameGetNoVerticalFlip) {
  // Tall objects (people-like, 3x taller than wide) standing in the lower part of the frame.
  const Advice a = advise_training(shapes(20, 60, [](int i, int k) { return 0.65 + 0.012 * i + 0.01 * k; }), options_for());
  EXPECT_TRUE(a.orientation.y.enough);
  EXPECT_FALSE(a.orientation.y.symmetric);
  EXPECT_GT(a.orientation.y.d, 0.9);
  EXPECT_LT(a.orientation.y.p_value, 1e-6);
  EXPECT_TRUE(a.orientation.upright);
  EXPECT_FALSE(a.orientation.orientation_free);
  EXPECT_EQ(item(a, "augment.flipud").value, "0");
  EXPECT_FALSE(item(a, "augment.flipud").changed);
  EXPECT_EQ(item(a, "augment.degrees").value, "0");
  EXPECT_EQ(a.command.find("flipud"), std::string::npos);
}

TEST(AdviseAugment, SymmetricDataGetsAVerticalFlip) {
  // 400 square objects in 100 images, spread evenly over the height: y and 1 - y have the same distribution.
  const Advice a = advise_training(shapes(30, 30, [](int i, int k) { return 0.1 + 0.8 * (i * 4 + k) / 399.0; }, 100),
                                   options_for());
  EXPECT_TRUE(a.orientation.y.symmetric) << a.orientation.y.d;
  EXPECT_LT(a.orientation.y.d, 0.05);
  EXPECT_FALSE(a.orientation.upright);
  EXPECT_TRUE(a.orientation.aspect.symmetric);
  EXPECT_EQ(a.orientation.free_boxes, 400);
  EXPECT_EQ(a.orientation.free_images, 100);
  EXPECT_NEAR(a.orientation.outside_middle_share, 0.375, 0.01);
  EXPECT_EQ(a.orientation.verdict, OrientationVerdict::free);
  EXPECT_TRUE(a.orientation.orientation_free);
  EXPECT_EQ(item(a, "augment.flipud").value, "0.5");
  EXPECT_TRUE(item(a, "augment.flipud").changed);
  EXPECT_EQ(item(a, "augment.degrees").value, "10");
  EXPECT_NE(a.command.find("augment.flipud=0.5"), std::string::npos);
}

// The same layout with 80 boxes: y is just as symmetric, but an asymmetry of 0.2 would pass unseen, so
// the data cannot tell.
TEST(AdviseAugment, TooFewBoxesCannotShowTheDataHasNoUp) {
  const Advice a = advise_training(shapes(30, 30, [](int i, int k) { return 0.1 + 0.8 * (i * 4 + k) / 79.0; }), options_for());
  EXPECT_TRUE(a.orientation.y.symmetric);
  EXPECT_FALSE(a.orientation.upright);
  EXPECT_EQ(a.orientation.verdict, OrientationVerdict::unknown);
  EXPECT_EQ(item(a, "augment.flipud").value, "0");
  EXPECT_EQ(item(a, "augment.degrees").value, "0");
  const std::string& reason = item(a, "augment.flipud").reason;
  EXPECT_NE(reason.find("the data cannot tell whether it has an up"), std::string::npos) << reason;
  EXPECT_NE(reason.find("80 boxes of at most half the image height from 20 images are too few"), std::string::npos) << reason;
  EXPECT_NE(reason.find("set augment.flipud=0.5 yourself"), std::string::npos) << reason;
  EXPECT_EQ(a.command.find("flipud"), std::string::npos) << a.command;
}

// Photos with one large, roughly centred object each (issue 18: 200 raccoon photos were called
// orientation-free): centre y is symmetric because a large box can only sit near the middle.
TEST(AdviseAugment, OneLargeCentredObjectPerPhotoCannotTell) {
  std::vector<ImageSpec> photos;
  for (int i = 0; i < 200; ++i) {
    const double w = 220 + 37 * (i % 7), h = 160 + 31 * (i % 9);  // 160..408 px of 480: a third are free
    const double cx = 320 + 9 * ((i % 11) - 5), cy = 240 + 7 * ((i % 13) - 6);
    photos.push_back({640, 480, {{{1, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2}}}});
  }
  const Advice a = advise_training(make_dataset({"raccoon"}, photos), options_for());
  EXPECT_TRUE(a.orientation.y.symmetric) << a.orientation.y.d;
  EXPECT_FALSE(a.orientation.upright);
  EXPECT_LT(a.orientation.free_boxes, kMinOrientationBoxes);
  EXPECT_GE(a.orientation.free_boxes, kMinShapeBoxes);
  EXPECT_EQ(a.orientation.verdict, OrientationVerdict::unknown);
  EXPECT_FALSE(a.orientation.orientation_free);
  EXPECT_EQ(item(a, "augment.flipud").value, "0");
  EXPECT_EQ(item(a, "augment.degrees").value, "0");
  EXPECT_NE(item(a, "augment.flipud").reason.find("cannot tell"), std::string::npos) << item(a, "augment.flipud").reason;
  EXPECT_NE(item(a, "augment.degrees").reason.find("not known to be orientation-free"), std::string::npos);
}

// Many small objects, all in a band across the middle (cars on a road): symmetric about the middle, but
// nothing in the top or bottom quarter shows whether upside-down copies would look like the data.
TEST(AdviseAugment, ObjectsInAMiddleBandCannotTell) {
  const Advice a = advise_training(shapes(30, 30, [](int i, int k) { return 0.4 + 0.2 * (i * 4 + k) / 399.0; }, 100),
                                   options_for());
  EXPECT_TRUE(a.orientation.y.symmetric);
  EXPECT_EQ(a.orientation.free_boxes, 400);
  EXPECT_DOUBLE_EQ(a.orientation.outside_middle_share, 0.0);
  EXPECT_EQ(a.orientation.verdict, OrientationVerdict::unknown);
  EXPECT_EQ(item(a, "augment.flipud").value, "0");
  EXPECT_NE(item(a, "augment.flipud").reason.find("0% of the box centres lie in the top or bottom quarter (needs 20%)"),
            std::string::npos)
      << item(a, "augment.flipud").reason;
}

TEST(AdviseAugment, MultiScaleOnlyWhereObjectSizesSpreadWidely) {
  // 40 images of 640 x 640: boxes of 40 px, or from 24 to 384 px (a 16x spread).
  std::vector<ImageSpec> narrow, wide;
  for (int i = 0; i < 40; ++i) {
    const double x = 20 + 10 * (i % 10), y = 30 + 12 * (i / 10);
    narrow.push_back({640, 640, {{{1, x, y, x + 40, y + 40}}}});
    const double side = 24 * std::pow(16.0, (i % 20) / 19.0);
    wide.push_back({640, 640, {{{1, x, y, x + side, y + side}}}});
  }
  const Advice n = advise_training(make_dataset({"a"}, narrow), options_for());
  EXPECT_EQ(item(n, "augment.multi_scale").value, "0");
  EXPECT_NE(item(n, "augment.multi_scale").reason.find("box sizes span 1.0x"), std::string::npos)
      << item(n, "augment.multi_scale").reason;
  const Advice w = advise_training(make_dataset({"a"}, wide), options_for());
  EXPECT_GT(w.box_px_p90 / w.box_px_p10, 8);
  EXPECT_EQ(item(w, "augment.multi_scale").value, "0.5");
  EXPECT_TRUE(item(w, "augment.multi_scale").changed);
  EXPECT_NE(w.command.find("augment.multi_scale=0.5"), std::string::npos) << w.command;
}

TEST(AdviseAugment, SymmetricPositionsButUprightShapesGetNoFlip) {
  const Advice a = advise_training(shapes(20, 60, [](int i, int k) { return 0.15 + 0.7 * (i * 4 + k) / 79.0; }), options_for());
  EXPECT_TRUE(a.orientation.y.symmetric);
  EXPECT_TRUE(a.orientation.upright);
  EXPECT_NEAR(std::exp(a.orientation.max_class_median_log_aspect), 20.0 / 60.0, 1e-9);
  EXPECT_EQ(item(a, "augment.flipud").value, "0");
}

TEST(AdviseSchedule, SmallDataGetsAdamWAndMoreEpochs) {
  const Advice a = advise_training(shapes(30, 30, [](int i, int k) { return 0.1 + 0.8 * (i * 4 + k) / 79.0; }), options_for());
  const Schedule& s = a.schedule;
  EXPECT_EQ(s.train_images, 20);
  EXPECT_EQ(s.optimizer, "adamw");
  EXPECT_GE(s.lr0, 0.001);
  EXPECT_LE(s.lr0, 0.002);
  EXPECT_NEAR(s.lr0, 0.002, 1e-12);  // 0.002 x 5 / (4 + 1 class) = 0.002
  EXPECT_EQ(s.warmup_bias_lr, 0);
  EXPECT_EQ(s.nominal_batch, 8);  // 20 images: 64 would be one step in three epochs
  EXPECT_EQ(s.batch, 8);          // 24 GiB holds far more; the batch is capped by the nominal batch
  EXPECT_EQ(s.accumulate, 1);
  EXPECT_EQ(s.steps_per_epoch, 3);
  EXPECT_EQ(s.epochs, 300);
  EXPECT_EQ(s.total_steps, 900);
  EXPECT_GT(s.batch_fit, 64);
}

TEST(AdviseSchedule, LargerDataGetsSgdAndTheMemoryEstimateLimitsTheBatch) {
  std::vector<ImageSpec> images(600, ImageSpec{640, 640, {{1, 100, 100, 200, 200}}});
  AdviseOptions o = options_for();
  o.model = "yolo-m";
  o.memory_bytes = 8ull << 30;  // 8 GiB x 0.85 - 1 GiB = 5939 MiB; 480 MiB per image -> 12 fit -> batch 8
  const Advice a = advise_training(make_dataset({"a"}, images), o);
  const Schedule& s = a.schedule;
  EXPECT_EQ(s.optimizer, "sgd");
  EXPECT_DOUBLE_EQ(s.lr0, 0.01);
  EXPECT_EQ(s.nominal_batch, 64);
  EXPECT_EQ(s.batch_fit, 12);
  EXPECT_EQ(s.batch, 8);
  EXPECT_EQ(s.accumulate, 8);
  EXPECT_EQ(s.batches_per_epoch, 75);
  EXPECT_EQ(s.steps_per_epoch, 10);
  EXPECT_EQ(s.epochs, 300);
  EXPECT_EQ(s.warmup_epochs, 3);
}

TEST(AdviseClasses, RareClassesAndImbalance) {
  std::vector<ImageSpec> images;
  for (int i = 0; i < 100; ++i) {
    ImageSpec spec{640, 480, {{1, 10, 10, 60, 60}, {2, 100, 100, 150, 150}}};
    if (i < 2) spec.boxes.push_back({3, 300, 300, 340, 340});
    images.push_back(spec);
  }
  const Advice a = advise_training(make_dataset({"common", "other", "rare", "never"}, images), options_for());
  const ClassBalance& b = a.balance;
  ASSERT_EQ(b.classes.size(), 4u);
  EXPECT_EQ(b.classes[2].boxes, 2);
  EXPECT_EQ(b.classes[2].images, 2);
  EXPECT_TRUE(b.classes[2].rare);
  EXPECT_FALSE(b.classes[0].rare);
  EXPECT_EQ(b.classes[2].to_collect, 48);  // to the 50-box floor
  EXPECT_NEAR(b.classes[2].repeat_factor, std::sqrt(0.1 / 0.02), 1e-12);
  EXPECT_DOUBLE_EQ(b.imbalance_ratio, 50);
  EXPECT_EQ(b.rare, 1);
  EXPECT_EQ(b.unused, 1);
  const std::string text = format_advice(a);
  EXPECT_NE(text.find("rare: rare 2 boxes in 2 images"), std::string::npos) << text;
  EXPECT_NE(text.find("never has no box in train"), std::string::npos) << text;
}

TEST(AdviseDensity, CrowdedImages) {
  ImageSpec dense{1280, 1280, {}};
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 12; ++x) dense.boxes.push_back({1, 20.0 + 100 * x, 20.0 + 100 * y, 60.0 + 100 * x, 60.0 + 100 * y});
  const Advice a = advise_training(make_dataset({"a"}, {dense, ImageSpec{640, 640, {{1, 0, 0, 50, 50}}}}), options_for());
  EXPECT_EQ(a.density.max_boxes, 144);
  EXPECT_EQ(a.density.images_over_coco_max_dets, 1);
  EXPECT_EQ(a.density.images_over_max_det, 0);
  EXPECT_TRUE(a.density.dense);
  EXPECT_NE(format_advice(a).find("COCO AP counts only the best 100"), std::string::npos);
}

TEST(AdviseTiles, LargeImagesWithTinyBoxesSuggestTiles) {
  // 2560x2560 images with 10x10 px boxes: 2.5 px at imgsz 640, but 10 px at native resolution.
  std::vector<ImageSpec> images;
  for (int i = 0; i < 5; ++i) {
    ImageSpec spec{2560, 2560, {}};
    for (int k = 0; k < 20; ++k) {
      const double x = 101 + 113 * k + i, y = 97 + 121 * k + 2 * i;
      spec.boxes.push_back({1, x, y, x + 10, y + 10});
    }
    images.push_back(spec);
  }
  const Advice a = advise_training(make_dataset({"a"}, images), options_for());
  EXPECT_TRUE(a.tiles.suggested);
  EXPECT_EQ(a.tiles.tile, 640);
  EXPECT_EQ(a.tiles.overlap, 32);
  EXPECT_DOUBLE_EQ(a.tiles.tiles_per_image, 25);  // ceil((2560 - 32) / 608) = 5 per side
  EXPECT_DOUBLE_EQ(a.tiles.share_matched_tiled, 1);
  EXPECT_LT(a.coverage.share_matched, 0.5);
}

TEST(AdviseCommand, OverridesAreValidRunConfigKeys) {
  const Advice a = advise_training(shapes(30, 30, [](int i, int k) { return 0.1 + 0.8 * (i * 4 + k) / 399.0; }, 100),
                                   options_for());
  EXPECT_EQ(a.command.rfind("detkit train data=data/x model=yolo-n ", 0), 0u) << a.command;
  RunConfig c;
  EXPECT_NO_THROW(c = resolve_run_config("", a.overrides));
  EXPECT_EQ(c.imgsz, a.imgsz.suggested);
  EXPECT_EQ(c.batch, a.schedule.batch);
  EXPECT_EQ(c.optimizer, "adamw");
  EXPECT_DOUBLE_EQ(c.augment.flipud, 0.5);
  const auto j = nlohmann::json::parse(advice_json(a));
  for (const char* key : {"coverage", "imgsz", "stride4", "tiles", "density", "schedule", "classes", "orientation", "augment",
                          "overrides", "command"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["coverage"]["levels"].size(), 4u);
}

TEST(AdviseErrors, BadOptionsAndEmptyData) {
  const Dataset d = make_dataset({"a"}, {{640, 640, {{1, 1, 1, 50, 50}}}});
  AdviseOptions o = options_for();
  o.model = "yolo-x";
  EXPECT_THROW_WITH(advise_training(d, o), UsageError, "unknown model 'yolo-x'", "yolo-n, yolo-s, yolo-m");
  o = options_for(650);
  EXPECT_THROW_WITH(advise_training(d, o), UsageError, "multiple of 32", "--imgsz 672");
  EXPECT_THROW_WITH(advise_training(make_dataset({"a"}, {{640, 640, {}}}), options_for()), DataError, "no box to analyse",
                    "detkit check");
}

}  // namespace
}  // namespace detkit::advise
