// Augmentation ops checked against the invariant, not against earlier output: each box is painted as a
// filled rectangle of its own colour, image and boxes are transformed together, and every surviving box
// must still bound the pixels of its colour (tightly, within the interpolation's pixel or two).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include "augment/augment.h"
#include "augment/draw.h"
#include "augment/multiscale.h"
#include "data/raster.h"
#include "test_util.h"

using namespace detkit;
using namespace detkit::augment;

namespace {

// Colour of box k (k < 40): far from the black background and from the fill grey (114, 114, 114).
std::array<uint8_t, 3> colour(int64_t k) {
  return {static_cast<uint8_t>(200 + (k % 5) * 11), static_cast<uint8_t>(20 + (k / 5) * 29), static_cast<uint8_t>(7 + k * 3)};
}

// A black W x H image with `n` non-overlapping rectangles (on a jittered grid), box k painted colour k
// and labelled k. `first` offsets the labels (for mosaics, so colours stay unique across tiles).
Sample painted(int64_t w, int64_t h, int n, Rng& rng, int64_t first = 0) {
  auto image = at::zeros({3, h, w}, at::kByte);
  std::vector<float> boxes;
  std::vector<int64_t> labels;
  const int cols = 3, rows = (n + cols - 1) / cols;
  const int64_t cw = w / cols, ch = h / std::max(rows, 1);
  for (int k = 0; k < n; ++k) {
    const int64_t gx = (k % cols) * cw, gy = (k / cols) * ch;
    const int64_t bw = 3 + rng.below(std::max<int64_t>(1, cw - 4)), bh = 3 + rng.below(std::max<int64_t>(1, ch - 4));
    const int64_t x0 = gx + rng.below(std::max<int64_t>(1, cw - bw)), y0 = gy + rng.below(std::max<int64_t>(1, ch - bh));
    const auto c = colour(first + k);
    for (int ch_i = 0; ch_i < 3; ++ch_i) image[ch_i].slice(0, y0, y0 + bh).slice(1, x0, x0 + bw).fill_(c[ch_i]);
    boxes.insert(boxes.end(), {float(x0), float(y0), float(x0 + bw), float(y0 + bh)});
    labels.push_back(first + k);
  }
  const auto count = static_cast<int64_t>(labels.size());
  return make_sample(image, at::tensor(boxes).view({count, 4}), at::tensor(labels));
}

struct PixelBox {
  int64_t count = 0;
  double x1 = 1e9, y1 = 1e9, x2 = -1, y2 = -1;
};

// The bounding box (continuous coordinates) of the pixels of colour `k`.
PixelBox pixels_of(const Sample& s, int64_t k) {
  const auto c = colour(k);
  const auto img = s.image.to(at::kByte).contiguous();
  const auto mask = (img[0] == c[0]) & (img[1] == c[1]) & (img[2] == c[2]);
  const auto where = mask.nonzero();
  PixelBox p;
  p.count = where.size(0);
  if (p.count == 0) return p;
  const auto ys = where.select(1, 0), xs = where.select(1, 1);
  p.x1 = xs.min().item<double>(), p.x2 = xs.max().item<double>() + 1;
  p.y1 = ys.min().item<double>(), p.y2 = ys.max().item<double>() + 1;
  return p;
}

// Every box inside the image; every surviving box bounds its colour's pixels within `tol` on each side
// (contains them, and each side touches them within `tol`); with `all_visible_kept`, every colour that is
// still visible as at least `min_side` x `min_side` pixels has its box.
// `turned`: the shapes were rotated or sheared. Then a box cut by the image edge is the clipped box of the
// whole turned rectangle, which can be taller or wider than the part left inside (and, for a corner
// poking in, hold no pixel): such boxes are only checked to contain their pixels.
void expect_boxes_bound_pixels(const Sample& s, int64_t colours, double tol, bool all_visible_kept = false,
                               double min_side = 4, bool turned = false) {
  ASSERT_EQ(s.boxes.dim(), 2);
  ASSERT_EQ(s.boxes.size(1), 4);
  ASSERT_EQ(s.boxes.size(0), s.labels.size(0));
  const auto boxes = s.boxes.to(at::kDouble).contiguous();
  const auto b = boxes.accessor<double, 2>();
  std::vector<bool> has_box(static_cast<std::size_t>(colours), false);
  for (int64_t i = 0; i < boxes.size(0); ++i) {
    const int64_t k = s.labels[i].item<int64_t>();
    EXPECT_GE(b[i][0], 0);
    EXPECT_GE(b[i][1], 0);
    EXPECT_LE(b[i][2], s.width());
    EXPECT_LE(b[i][3], s.height());
    EXPECT_LT(b[i][0], b[i][2]);
    EXPECT_LT(b[i][1], b[i][3]);
    const PixelBox p = pixels_of(s, k);
    has_box[static_cast<std::size_t>(k)] = true;
    const bool at_edge = b[i][0] <= 1e-3 || b[i][1] <= 1e-3 || b[i][2] >= s.width() - 1e-3 || b[i][3] >= s.height() - 1e-3;
    if (turned && at_edge) {
      if (p.count == 0) continue;
      EXPECT_LE(b[i][0], p.x1 + tol) << "box " << k << " x1";
      EXPECT_LE(b[i][1], p.y1 + tol) << "box " << k << " y1";
      EXPECT_GE(b[i][2], p.x2 - tol) << "box " << k << " x2";
      EXPECT_GE(b[i][3], p.y2 - tol) << "box " << k << " y2";
      continue;
    }
    ASSERT_GT(p.count, 0) << "box " << k << " survived but none of its pixels did";
    EXPECT_NEAR(b[i][0], p.x1, tol) << "box " << k << " x1";
    EXPECT_NEAR(b[i][1], p.y1, tol) << "box " << k << " y1";
    EXPECT_NEAR(b[i][2], p.x2, tol) << "box " << k << " x2";
    EXPECT_NEAR(b[i][3], p.y2, tol) << "box " << k << " y2";
  }
  if (!all_visible_kept) return;
  for (int64_t k = 0; k < colours; ++k) {
    const PixelBox p = pixels_of(s, k);
    if (p.count > 0 && p.x2 - p.x1 >= min_side && p.y2 - p.y1 >= min_side) {
      EXPECT_TRUE(has_box[static_cast<std::size_t>(k)]) << "colour " << k << " is visible but its box was dropped";
    }
  }
}

Sample no_boxes(int64_t w, int64_t h) { return make_sample(at::full({3, h, w}, 50, at::kByte), at::Tensor(), at::Tensor()); }

}  // namespace

TEST(AugmentSample, MakeSampleTakesHwcAndClipsBoxes) {
  const auto hwc = at::zeros({20, 30, 3}, at::kByte);
  const Sample s = make_sample(hwc, at::tensor({-5.f, 2.f, 40.f, 10.f, 31.f, 0.f, 35.f, 5.f}).view({2, 4}),
                               at::tensor({int64_t(1), int64_t(2)}));
  EXPECT_EQ(s.image.sizes(), (at::IntArrayRef{3, 20, 30}));
  ASSERT_EQ(s.box_count(), 1);  // the second lies wholly outside
  EXPECT_TRUE(at::equal(s.boxes, at::tensor({0.f, 2.f, 30.f, 10.f}).view({1, 4})));
  EXPECT_EQ(s.labels[0].item<int64_t>(), 1);
}

TEST(AugmentRng, DeterministicPerSampleAndPortable) {
  Rng a = Rng::for_sample(7, 2, 11), b = Rng::for_sample(7, 2, 11), c = Rng::for_sample(7, 2, 12),
      d = Rng::for_sample(7, 3, 11);
  const uint64_t first = a.next();
  EXPECT_EQ(first, b.next());
  EXPECT_NE(first, c.next());
  EXPECT_NE(first, d.next());
  // The uniform draws are in range and average near one half; Beta(32, 32) near 0.5 with sd 0.062.
  Rng r(1);
  double sum = 0, beta_sum = 0;
  for (int i = 0; i < 4000; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0);
    ASSERT_LT(u, 1);
    sum += u;
    const int64_t k = r.below(5);
    ASSERT_GE(k, 0);
    ASSERT_LT(k, 5);
    if (i < 1000) beta_sum += r.beta(32, 32);
  }
  EXPECT_NEAR(sum / 4000, 0.5, 0.02);
  EXPECT_NEAR(beta_sum / 1000, 0.5, 0.01);
}

TEST(AugmentOps, FlipsKeepBoxesExact) {
  Rng rng(3);
  for (int trial = 0; trial < 5; ++trial) {
    const Sample s = painted(61 + trial, 47, 7, rng);
    expect_boxes_bound_pixels(s, 7, 0, true);
    expect_boxes_bound_pixels(flip_horizontal(s), 7, 0, true);
    expect_boxes_bound_pixels(flip_vertical(s), 7, 0, true);
    // Flipping twice is the identity.
    const Sample back = flip_horizontal(flip_horizontal(s));
    EXPECT_TRUE(at::equal(back.image, s.image));
    EXPECT_TRUE(at::allclose(back.boxes, s.boxes));
  }
}

TEST(AugmentOps, ResizeAndLetterboxScaleBoxesWithThePixels) {
  Rng rng(4);
  for (int trial = 0; trial < 6; ++trial) {
    const Sample s = painted(90 + 7 * trial, 60 + 11 * trial, 6, rng);
    // Nearest neighbour keeps colours exact; a box edge lands within one (output) pixel of its pixels.
    expect_boxes_bound_pixels(resize(s, 150, 131, Interp::nearest), 6, 1.0, true);
    expect_boxes_bound_pixels(resize(s, 70, 45, Interp::nearest), 6, 1.0);
    const Letterboxed lb = letterbox(s, 128, Interp::nearest);
    EXPECT_EQ(lb.sample.image.sizes(), (at::IntArrayRef{3, 128, 128}));
    expect_boxes_bound_pixels(lb.sample, 6, 1.0, true);
    // The padding is the fill grey.
    if (lb.pad_y > 0) {
      EXPECT_EQ(lb.sample.image[1][0][5].item<int>(), kFillLevel);
    }
    if (lb.pad_x > 0) {
      EXPECT_EQ(lb.sample.image[1][5][0].item<int>(), kFillLevel);
    }
  }
  // Bilinear keeps dtype and size; float images stay float.
  const Sample f = make_sample(at::full({3, 10, 20}, 100.0f), at::Tensor(), at::Tensor());
  const Sample r = resize(f, 7, 9);
  EXPECT_EQ(r.image.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(r.image, at::full({3, 9, 7}, 100.0f)));
}

TEST(AugmentOps, CropsClipAndDropBoxes) {
  Rng rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    const Sample s = painted(80, 64, 9, rng);
    const int64_t x0 = rng.below(40), y0 = rng.below(30);
    const Sample c = crop(s, x0, y0, x0 + 20 + rng.below(20), y0 + 15 + rng.below(19), BoxFilter{0, 1});
    expect_boxes_bound_pixels(c, 9, 0, true, 1);
    const Sample rc = random_crop(s, rng, 0.6, BoxFilter{0.2, 2});
    expect_boxes_bound_pixels(rc, 9, 0);
  }
  // min_visible drops a box cut to less than that fraction; min_box_px drops a thin sliver.
  const Sample s = make_sample(at::zeros({3, 50, 50}, at::kByte), at::tensor({10.f, 10.f, 30.f, 30.f}).view({1, 4}),
                               at::tensor({int64_t(0)}));
  EXPECT_EQ(crop(s, 25, 0, 50, 50, BoxFilter{0.3, 0}).box_count(), 0);  // 5/20 = 25 % visible
  EXPECT_EQ(crop(s, 15, 0, 50, 50, BoxFilter{0.3, 0}).box_count(), 1);  // 75 %
  EXPECT_EQ(crop(s, 28, 0, 50, 50, BoxFilter{0, 3}).box_count(), 0);    // 2 px wide
}

TEST(AugmentOps, AffineWithoutRotationKeepsBoxesTight) {
  AugmentConfig cfg;
  cfg.degrees = 0, cfg.shear = 0, cfg.scale = 0.5, cfg.translate = 0.2;
  Rng rng(6);
  for (int trial = 0; trial < 25; ++trial) {
    const Sample s = painted(96, 80, 9, rng);
    const Affine a = random_affine(rng, cfg, 96, 80, 100, 90);
    expect_boxes_bound_pixels(warp_affine(s, a, 100, 90, BoxFilter{0, 1}, Interp::nearest), 9, 1.01, true);
  }
}

TEST(AugmentOps, RotationAndShearBoxesContainTheTurnedPixels) {
  AugmentConfig cfg;
  cfg.degrees = 30, cfg.shear = 8, cfg.scale = 0.3, cfg.translate = 0.1;
  Rng rng(7);
  for (int trial = 0; trial < 25; ++trial) {
    const Sample s = painted(96, 96, 6, rng);
    const Affine a = random_affine(rng, cfg, 96, 96, 96, 96);
    // The box of a turned rectangle is the box of its four corners: it contains the pixels and each side
    // touches them at a corner, where sampling can miss a sliver up to about a pixel and a half thick.
    expect_boxes_bound_pixels(warp_affine(s, a, 96, 96, BoxFilter{0, 1}, Interp::nearest), 6, 2.0, true, 6, true);
  }
  // A quarter turn maps the box exactly.
  const Sample s = painted(64, 64, 4, rng);
  const double c = 32;
  const Affine quarter = Affine{{1, 0, -c, 0, 1, -c}}.then(Affine{{0, -1, 0, 1, 0, 0}}).then(Affine{{1, 0, c, 0, 1, c}});
  expect_boxes_bound_pixels(warp_affine(s, quarter, 64, 64, BoxFilter{0, 1}, Interp::nearest), 4, 1e-3, true);
}

TEST(AugmentOps, AffineComposesAndInverts) {
  const Affine a{{1.5, 0.2, 3, -0.1, 0.8, -2}};
  const Affine id = a.then(a.inverse());
  const std::array<double, 6> expected{1, 0, 0, 0, 1, 0};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(id.m[i], expected[i], 1e-12);
  // then(): x -> 2x, then x -> x + 5 gives 2x + 5.
  const Affine t = Affine{{2, 0, 0, 0, 2, 0}}.then(Affine{{1, 0, 5, 0, 1, 0}});
  EXPECT_DOUBLE_EQ(t.m[0], 2);
  EXPECT_DOUBLE_EQ(t.m[2], 5);
}

TEST(AugmentOps, MosaicCarriesEachTilesBoxes) {
  Rng rng(8);
  for (int trial = 0; trial < 10; ++trial) {
    std::array<Sample, 4> tiles;
    for (int i = 0; i < 4; ++i) tiles[i] = painted(64 - 9 * (i % 2), 64 - 13 * (i / 2), 6, rng, 6 * i);
    const Sample m = mosaic(tiles, 64, rng, BoxFilter{0, 1});
    EXPECT_EQ(m.image.sizes(), (at::IntArrayRef{3, 128, 128}));
    expect_boxes_bound_pixels(m, 24, 0, true, 1);
  }
}

TEST(AugmentOps, MixupBlendsPixelsAndKeepsBothBoxSets) {
  Rng rng(9);
  const Sample a = painted(40, 40, 3, rng), b = painted(40, 40, 2, rng, 3);
  const Sample m = mixup(a, b, 0.25);
  EXPECT_EQ(m.box_count(), 5);
  EXPECT_TRUE(at::equal(m.boxes, at::cat({a.boxes, b.boxes})));
  const auto expected = (a.image.to(at::kFloat) * 0.25 + b.image.to(at::kFloat) * 0.75).round().to(at::kByte);
  EXPECT_TRUE(at::equal(m.image, expected));
}

TEST(AugmentColor, HueSaturationValueContrastBrightness) {
  auto pixel = [](uint8_t r, uint8_t g, uint8_t b) {
    return make_sample(at::tensor({r, g, b}, at::kByte).view({3, 1, 1}), at::Tensor(), at::Tensor());
  };
  auto rgb = [](const Sample& s) {
    return std::array<int, 3>{s.image[0][0][0].item<int>(), s.image[1][0][0].item<int>(), s.image[2][0][0].item<int>()};
  };
  ColorJitter hue;
  hue.hue = 1.0 / 3;  // a third of the circle: red -> green -> blue
  EXPECT_EQ(rgb(adjust_color(pixel(255, 0, 0), hue)), (std::array<int, 3>{0, 255, 0}));
  EXPECT_EQ(rgb(adjust_color(pixel(10, 20, 200), hue)), (std::array<int, 3>{200, 10, 20}));
  hue.hue = 0.17;
  EXPECT_EQ(rgb(adjust_color(pixel(90, 90, 90), hue)), (std::array<int, 3>{90, 90, 90}));  // greys stay grey
  ColorJitter grey;
  grey.saturation = 0;
  const auto g = rgb(adjust_color(pixel(200, 100, 50), grey));
  EXPECT_EQ(g[0], g[1]);
  EXPECT_EQ(g[1], g[2]);
  EXPECT_EQ(g[0], 124);  // BT.601 luma: 0.299*200 + 0.587*100 + 0.114*50 = 124.2
  ColorJitter value;
  value.value = 0.5;
  value.brightness = 10.0 / 255;
  EXPECT_EQ(rgb(adjust_color(pixel(100, 40, 255), value)), (std::array<int, 3>{60, 30, 138}));
  ColorJitter flat;
  flat.contrast = 0;  // everything becomes the mean luma
  const Sample two = make_sample(at::tensor({uint8_t(0), uint8_t(200), uint8_t(0), uint8_t(200), uint8_t(0), uint8_t(200)},
                                            at::kByte).view({3, 1, 2}),
                                 at::Tensor(), at::Tensor());
  EXPECT_TRUE(at::equal(adjust_color(two, flat).image, at::full({3, 1, 2}, 100, at::kByte)));
  // Colour changes never move boxes.
  Rng rng(10);
  const Sample s = painted(30, 30, 3, rng);
  EXPECT_TRUE(at::equal(adjust_color(s, ColorJitter::random(rng, AugmentConfig{})).boxes, s.boxes));
}

TEST(AugmentOps, ImagesWithoutBoxesSurviveEveryOp) {
  Rng rng(11);
  const Sample s = no_boxes(50, 30);
  AugmentConfig cfg;
  cfg.degrees = 20, cfg.shear = 5;
  std::vector<Sample> out{flip_horizontal(s), flip_vertical(s), resize(s, 20, 20), letterbox(s, 64).sample,
                          crop(s, 5, 5, 25, 25, BoxFilter{}), random_crop(s, rng, 0.5, BoxFilter{}),
                          warp_affine(s, random_affine(rng, cfg, 50, 30, 64, 64), 64, 64, BoxFilter{}),
                          mosaic({s, s, s, s}, 50, rng, BoxFilter{}), mixup(s, s, 0.5),
                          adjust_color(s, ColorJitter::random(rng, cfg))};
  for (const auto& o : out) {
    EXPECT_EQ(o.box_count(), 0);
    EXPECT_EQ(o.labels.size(0), 0);
    EXPECT_EQ(o.image.size(0), 3);
    EXPECT_GT(o.image.numel(), 0);
  }
}

TEST(AugmentRecipe, FullRecipeKeepsBoxesTightAndIsDeterministic) {
  // Geometry only (colour changes would change the painted colours; mixup blends them).
  RecipeOptions options;
  options.config.hsv_h = options.config.hsv_s = options.config.hsv_v = 0;
  options.config.flipud = 0.5;
  options.config.degrees = 0;
  options.config.crop = 0.5;
  options.config.min_visible = 0.2;
  options.size = 96;
  options.interp = Interp::nearest;
  constexpr int kImages = 6, kBoxes = 6;
  // A mosaic may draw the same image twice; so each load paints fresh colours (labels continue from the
  // previous load of this recipe call), and every colour in the output belongs to exactly one box.
  int64_t loads = 0;
  const LoadFn load = [&](int64_t i) {
    Rng paint(100 + static_cast<uint64_t>(i));
    const Sample s = painted(80 + 10 * i, 100 - 8 * i, kBoxes, paint, kBoxes * loads++);
    return letterbox(s, 96, Interp::nearest).sample;
  };
  for (double mosaic_p : {0.0, 1.0}) {
    options.config.mosaic = mosaic_p;
    for (int64_t index = 0; index < kImages; ++index) {
      for (int64_t epoch = 0; epoch < 4; ++epoch) {
        Rng rng = Rng::for_sample(42, epoch, index);
        loads = 0;
        const Sample out = apply_recipe(index, kImages, load, options, rng);
        EXPECT_EQ(out.image.sizes(), (at::IntArrayRef{3, 96, 96}));
        // Two nearest-neighbour resamplings in a row (letterbox or crop + letterbox, then the affine): up to
        // a pixel each.
        expect_boxes_bound_pixels(out, 4 * kBoxes, 2.0);
        Rng again = Rng::for_sample(42, epoch, index);
        loads = 0;
        const Sample repeat = apply_recipe(index, kImages, load, options, again);
        EXPECT_TRUE(at::equal(out.image, repeat.image));
        EXPECT_TRUE(at::equal(out.boxes, repeat.boxes));
      }
    }
  }
}

// The loader gives decoded images at any size; the recipe scales each to longer side `size` in the same
// single resampling as the mosaic and the affine. With nearest neighbour, one resampling: boxes within a pixel.
TEST(AugmentRecipe, LoadsOfAnySizeAreResampledOnceWithTightBoxes) {
  RecipeOptions options;
  options.config.hsv_h = options.config.hsv_s = options.config.hsv_v = 0;
  options.config.flipud = 0.5;
  options.config.crop = 0.5;
  options.size = 64;
  options.interp = Interp::nearest;
  constexpr int kImages = 5, kBoxes = 6;
  int64_t loads = 0;
  const LoadFn load = [&](int64_t i) {
    Rng paint(200 + static_cast<uint64_t>(i));
    return painted(70 + 31 * i, 140 - 17 * i, kBoxes, paint, kBoxes * loads++);  // 70x140 .. 194x72
  };
  for (double mosaic_p : {0.0, 1.0}) {
    options.config.mosaic = mosaic_p;
    for (int64_t index = 0; index < kImages; ++index) {
      for (int64_t epoch = 0; epoch < 4; ++epoch) {
        Rng rng = Rng::for_sample(5, epoch, index);
        loads = 0;
        const Sample out = apply_recipe(index, kImages, load, options, rng);
        EXPECT_EQ(out.image.sizes(), (at::IntArrayRef{3, 64, 64}));
        expect_boxes_bound_pixels(out, 4 * kBoxes, 1.01);
        Rng again = Rng::for_sample(5, epoch, index);
        loads = 0;
        const Sample repeat = apply_recipe(index, kImages, load, options, again);
        EXPECT_TRUE(at::equal(out.image, repeat.image));
        EXPECT_TRUE(at::equal(out.boxes, repeat.boxes));
      }
    }
  }
}

// The fused CPU path (uint8 tiles of any size, each read straight into the output) against the invariant:
// every surviving box bounds its pixels within one pixel, every visible colour keeps its box.
TEST(AugmentOps, FusedMosaicAffineKeepsBoxesTightFromTilesOfAnySize) {
  AugmentConfig cfg;
  cfg.degrees = 0, cfg.shear = 0, cfg.scale = 0.5, cfg.translate = 0.1;
  Rng rng(12);
  for (int trial = 0; trial < 12; ++trial) {
    std::array<Sample, 4> tiles;
    for (int i = 0; i < 4; ++i) tiles[i] = painted(60 + 37 * ((trial + i) % 4), 50 + 29 * ((trial + 2 * i) % 5), 6, rng, 6 * i);
    const int64_t xc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * 64), yc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * 64);
    const Affine a = random_affine(rng, cfg, 128, 128, 64, 64);
    const Sample out = mosaic_affine(tiles, 64, xc, yc, a, 64, 64, BoxFilter{0, 2}, Interp::nearest);
    EXPECT_EQ(out.image.sizes(), (at::IntArrayRef{3, 64, 64}));
    expect_boxes_bound_pixels(out, 24, 1.01, true, 4);
    // Letterbox and affine in one resampling, likewise.
    const Sample boxed = letterbox_affine(tiles[trial % 4], 64, random_affine(rng, cfg, 64, 64, 64, 64), 64, 64,
                                          BoxFilter{0, 2}, Interp::nearest);
    expect_boxes_bound_pixels(boxed, 24, 1.01, true, 4);
  }
}

// The fused path and the generic one (float tiles: scale each, mosaic(), warp_affine()) give the same
// boxes within a pixel (the generic affine rounds its scale to whole output pixels) and the same picture.
TEST(AugmentOps, FusedMosaicAffineAgreesWithTheGenericPath) {
  AugmentConfig cfg;
  cfg.degrees = 0, cfg.shear = 0, cfg.scale = 0.5, cfg.translate = 0.1;
  Rng rng(13);
  for (int trial = 0; trial < 8; ++trial) {
    std::array<Sample, 4> bytes, floats;
    for (int i = 0; i < 4; ++i) {
      bytes[i] = painted(96 - 17 * (i % 2), 96 - 23 * (i / 2), 6, rng, 6 * i);  // longer side 96 = size
      // A smooth background, so the pictures can be compared, not just the boxes.
      bytes[i].image = (bytes[i].image.to(at::kInt) +
                        at::arange(bytes[i].width(), at::kInt).view({1, 1, -1}) + at::arange(bytes[i].height(), at::kInt).view({1, -1, 1}))
                           .clamp(0, 255)
                           .to(at::kByte);
      floats[i] = bytes[i];
      floats[i].image = bytes[i].image.to(at::kFloat);
    }
    const int64_t xc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * 96), yc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * 96);
    const Affine a = random_affine(rng, cfg, 192, 192, 96, 96);
    const Sample fast = mosaic_affine(bytes, 96, xc, yc, a, 96, 96, BoxFilter{0.2, 2});
    const Sample generic = mosaic_affine(floats, 96, xc, yc, a, 96, 96, BoxFilter{0.2, 2});
    EXPECT_EQ(fast.image.scalar_type(), at::kByte);
    EXPECT_EQ(generic.image.scalar_type(), at::kFloat);
    // A box right at a filter threshold (min_visible, min_box_px) may be kept by one and dropped by the
    // other: at most one per mosaic; every box both keep agrees within a pixel.
    int64_t common = 0;
    for (int64_t i = 0; i < fast.box_count(); ++i)
      for (int64_t k = 0; k < generic.box_count(); ++k) {
        if (fast.labels[i].item<int64_t>() != generic.labels[k].item<int64_t>()) continue;
        ++common;
        EXPECT_LE((fast.boxes[i] - generic.boxes[k]).abs().max().item<double>(), 1.01) << "trial " << trial;
      }
    EXPECT_GE(common, std::max(fast.box_count(), generic.box_count()) - 1) << "trial " << trial;
    EXPECT_GT(common, 0) << "trial " << trial;
    const double mean_diff = (fast.image.to(at::kFloat) - generic.image.round()).abs().mean().item<double>();
    EXPECT_LT(mean_diff, 6.0) << "trial " << trial;
  }
}

// The uint8 colour step (integer matrix, CPU) agrees with the float matrix within a level, hue, contrast
// and brightness included.
TEST(AugmentColor, Uint8PathAgreesWithTheFloatMatrix) {
  at::manual_seed(5);
  AugmentConfig cfg;
  cfg.hsv_h = 0.5, cfg.hsv_s = 0.9, cfg.hsv_v = 0.5, cfg.contrast = 0.5, cfg.brightness = 0.2;
  Rng rng(14);
  for (int trial = 0; trial < 20; ++trial) {
    const Sample bytes = make_sample(at::randint(0, 256, {3, 17, 23}, at::kByte), at::Tensor(), at::Tensor());
    Sample floats = bytes;
    floats.image = bytes.image.to(at::kFloat);
    const ColorJitter j = ColorJitter::random(rng, trial == 0 ? AugmentConfig{} : cfg);
    const at::Tensor fast = adjust_color(bytes, j).image;
    const at::Tensor reference = adjust_color(floats, j).image.round();
    EXPECT_EQ(fast.scalar_type(), at::kByte);
    EXPECT_LE((fast.to(at::kFloat) - reference).abs().max().item<double>(), 1.0) << "trial " << trial;
  }
}

// On the CPU the recipe does colour and flips in one pass over the uint8 image; the float path runs the
// separate ops. With the geometry an identity, they agree within a level (odd widths included).
TEST(AugmentRecipe, ColourAndFlipsInOnePassMatchTheSeparateOps) {
  RecipeOptions options;
  options.config.mosaic = 0;
  options.config.scale = options.config.translate = 0;
  options.config.hsv_h = 0.3, options.config.brightness = 0.1, options.config.contrast = 0.3;
  at::manual_seed(8);
  for (const int64_t size : {45, 64, 13}) {
    options.size = size;
    const at::Tensor pixels = at::randint(0, 256, {3, size, size}, at::kByte);
    Rng paint(3);
    Sample bytes = painted(size, size, 3, paint);
    bytes.image = at::maximum(bytes.image, pixels);
    Sample floats = bytes;
    floats.image = bytes.image.to(at::kFloat);
    for (int64_t epoch = 0; epoch < 6; ++epoch) {
      for (const double flipud : {0.0, 1.0}) {
        options.config.flipud = flipud;
        Rng a = Rng::for_sample(2, epoch, 0), b = Rng::for_sample(2, epoch, 0);
        const Sample fast = apply_recipe(0, 1, [&](int64_t) { return bytes; }, options, a);
        const Sample slow = apply_recipe(0, 1, [&](int64_t) { return floats; }, options, b);
        ASSERT_EQ(fast.image.scalar_type(), at::kByte);
        ASSERT_EQ(slow.image.scalar_type(), at::kFloat);
        EXPECT_LE((fast.image.to(at::kFloat) - slow.image.round()).abs().max().item<double>(), 1.0) << size << " " << epoch;
        EXPECT_TRUE(at::allclose(fast.boxes, slow.boxes)) << size << " " << epoch;
        EXPECT_TRUE(at::equal(fast.labels, slow.labels));
      }
    }
  }
}

TEST(AugmentRecipe, PartnerThatFailsToLoadLeavesAGreyTile) {
  RecipeOptions options;
  options.config.mosaic = 1;
  options.size = 32;
  const LoadFn load = [](int64_t i) -> Sample {
    if (i != 0) throw DataError({"cannot read image", "", "", "bad.jpg"});
    return no_boxes(32, 32);
  };
  int failures = 0;
  Rng rng = Rng::for_sample(1, 0, 0);
  const Sample out = apply_recipe(0, 5, load, options, rng, [&](int64_t, const std::exception&) { ++failures; });
  EXPECT_GT(failures, 0);
  EXPECT_EQ(out.image.sizes(), (at::IntArrayRef{3, 32, 32}));
  // The sample itself failing propagates.
  Rng rng2 = Rng::for_sample(1, 0, 1);
  EXPECT_THROW(apply_recipe(1, 5, load, options, rng2), DataError);
}

TEST(AugmentDraw, GlyphsBoxesAndColours) {
  RgbImage image(12, 9);
  draw_text(image, 1, 1, "I", Rgb{255, 255, 255});
  auto lit = [&](int x, int y) { return image.at(x, y)[0] == 255; };
  // 'I' is columns 0x00, 0x41, 0x7F, 0x41, 0x00 (bit 0 at the top): a bar with serifs.
  for (int y = 1; y < 8; ++y) EXPECT_TRUE(lit(3, y)) << y;
  EXPECT_TRUE(lit(2, 1) && lit(2, 7) && lit(4, 1) && lit(4, 7));
  EXPECT_FALSE(lit(2, 4) || lit(1, 1) || lit(5, 1) || lit(3, 0) || lit(3, 8));
  EXPECT_EQ(text_width("AB"), 11);
  EXPECT_EQ(text_width("ab", 2), 22);
  // Lower case is drawn as upper case; unknown characters as '?'; drawing past the edge is clipped.
  RgbImage a(8, 8), b(8, 8), q(8, 8), r(8, 8);
  draw_text(a, 0, 0, "k", Rgb{9, 9, 9});
  draw_text(b, 0, 0, "K", Rgb{9, 9, 9});
  draw_text(q, 0, 0, "~", Rgb{9, 9, 9});
  draw_text(r, 0, 0, "?", Rgb{9, 9, 9});
  EXPECT_EQ(a.pixels, b.pixels);
  EXPECT_EQ(q.pixels, r.pixels);
  draw_text(a, 5, 5, "WIDE TEXT", Rgb{1, 2, 3});
  // A labelled box: the outline on the pixels just inside the box, the label above it.
  RgbImage canvas(40, 40);
  draw_labelled_box(canvas, 10.5, 20, 30, 35, "X", Rgb{255, 0, 0});
  EXPECT_EQ(canvas.at(10, 20)[0], 255);
  EXPECT_EQ(canvas.at(29, 34)[0], 255);
  EXPECT_EQ(canvas.at(20, 27)[0], 0);  // inside stays
  EXPECT_EQ(canvas.at(11, 12)[0], 255);  // the label's background, above the box
  std::set<std::array<uint8_t, 3>> colours;
  for (int k = 0; k < 8; ++k) {
    const Rgb c = class_colour(k);
    colours.insert({c.r, c.g, c.b});
  }
  EXPECT_EQ(colours.size(), 8u);
}

// The loader's 8-bit resize is LibTorch's bilinear (align_corners=false) to within one grey level.
TEST(ResizeLinear, MatchesLibTorchBilinearWithinOneLevel) {
  at::manual_seed(3);
  for (const auto& [w, h, tw, th] : std::vector<std::array<int, 4>>{{640, 480, 416, 312}, {37, 23, 20, 12}, {50, 40, 97, 81}, {9, 7, 9, 4}}) {
    RgbImage image(w, h);
    const at::Tensor noise = at::randint(0, 256, {h, w, 3}, at::kByte);
    std::memcpy(image.pixels.data(), noise.data_ptr<uint8_t>(), image.pixels.size());
    const RgbImage fast = resize_linear(image, tw, th);
    const at::Tensor reference = at::upsample_bilinear2d(noise.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat),
                                                         std::vector<int64_t>{th, tw}, false)
                                     .squeeze(0)
                                     .permute({1, 2, 0})
                                     .round()
                                     .clamp(0, 255)
                                     .to(at::kByte);
    const at::Tensor got = at::from_blob(const_cast<uint8_t*>(fast.pixels.data()), {th, tw, 3}, at::kByte);
    const int64_t worst = (got.to(at::kInt) - reference.to(at::kInt)).abs().max().item<int64_t>();
    EXPECT_LE(worst, 1) << w << "x" << h << " -> " << tw << "x" << th;
  }
}

TEST(MultiScale, SizesAreMultiplesOfTheStrideSpanTheRangeAndRepeat) {
  EXPECT_EQ(multi_scale_size(1, 5, 640, 0.0), 640);
  EXPECT_EQ(multi_scale_max(640, 0.0), 640);
  EXPECT_EQ(multi_scale_max(640, 0.5), 960);
  EXPECT_EQ(multi_scale_max(100, 0.5), 128);  // never below imgsz
  int64_t lo = 1 << 30, hi = 0;
  std::set<int64_t> seen;
  for (int64_t it = 0; it < 4000; ++it) {
    const int64_t s = multi_scale_size(7, it, 640, 0.5);
    ASSERT_EQ(s % 32, 0) << s;
    ASSERT_GE(s, 320 - 32);
    ASSERT_LE(s, multi_scale_max(640, 0.5));
    EXPECT_EQ(s, multi_scale_size(7, it, 640, 0.5));  // the same iteration, the same size (resume, OOM retry)
    lo = std::min(lo, s), hi = std::max(hi, s);
    seen.insert(s);
  }
  EXPECT_EQ(lo, 320);  // floor(640 x 0.5 / 32) x 32: the low end is reached
  EXPECT_EQ(hi, 928);  // floor((960 - e) / 32) x 32: the high end, exclusive, rounds down
  EXPECT_EQ(seen.size(), 20u);  // every multiple of 32 from 320 to 928
  int differ = 0;
  for (int64_t it = 0; it < 50; ++it) differ += multi_scale_size(7, it, 640, 0.5) != multi_scale_size(8, it, 640, 0.5);
  EXPECT_GT(differ, 30);  // another seed, other sizes
  EXPECT_EQ(multi_scale_size(3, 1, 32, 0.9), 32);  // never below one stride
}

// The invariant, not our arithmetic: each image holds one white rectangle; after the bilinear resize, the
// pixels brighter than half white are bounded by the scaled target box within a pixel.
TEST(MultiScale, BatchResizeKeepsEachBoxOnItsPixels) {
  Rng rng(21);
  for (const int64_t size : {96, 40, 160}) {
    const int64_t batch = 6, side = 64;
    auto images = at::zeros({batch, 3, side, side}, at::kFloat);
    std::vector<float> rows;
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t w = 4 + rng.below(30), h = 4 + rng.below(30);
      const int64_t x0 = rng.below(side - w), y0 = rng.below(side - h);
      images[b].slice(1, y0, y0 + h).slice(2, x0, x0 + w).fill_(1.0);
      rows.insert(rows.end(), {float(b), float(b % 3), float(x0), float(y0), float(x0 + w), float(y0 + h)});
    }
    auto targets = at::tensor(rows).view({batch, 6});
    const auto original = targets.clone();
    rescale_batch(images, targets, size);
    ASSERT_EQ(images.sizes(), (at::IntArrayRef{batch, 3, size, size}));
    EXPECT_TRUE(at::equal(targets.narrow(1, 0, 2), original.narrow(1, 0, 2)));  // image and class untouched
    for (int64_t b = 0; b < batch; ++b) {
      const auto where = (images[b][0] > 0.5).nonzero();
      ASSERT_GT(where.size(0), 0) << "size " << size << " image " << b;
      const double x1 = where.select(1, 1).min().item<double>(), x2 = where.select(1, 1).max().item<double>() + 1;
      const double y1 = where.select(1, 0).min().item<double>(), y2 = where.select(1, 0).max().item<double>() + 1;
      EXPECT_NEAR(targets[b][2].item<double>(), x1, 1.0) << "size " << size << " image " << b;
      EXPECT_NEAR(targets[b][3].item<double>(), y1, 1.0) << "size " << size << " image " << b;
      EXPECT_NEAR(targets[b][4].item<double>(), x2, 1.0) << "size " << size << " image " << b;
      EXPECT_NEAR(targets[b][5].item<double>(), y2, 1.0) << "size " << size << " image " << b;
    }
  }
  // No targets, and the same size: nothing changes.
  auto images = at::rand({2, 3, 64, 64});
  auto none = at::zeros({0, 6});
  const auto before = images.clone();
  rescale_batch(images, none, 64);
  EXPECT_TRUE(at::equal(images, before));
  rescale_batch(images, none, 32);
  EXPECT_EQ(images.size(2), 32);
}
