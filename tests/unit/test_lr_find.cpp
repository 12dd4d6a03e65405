// The learning-rate range test: the curve analysis on curves whose answer is known (torch-free), and the
// test itself on a tiny synthetic dataset: a geometric sweep, divergence that stops it, the files it
// writes, determinism, and lr0: auto in the trainer.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/run_config.h"
#include "core/text.h"
#include "core/torch_plugin.h"
#include "data/formats_read.h"
#include "data/image_io.h"
#include "data/synth.h"
#include "test_util.h"
#include "train/lr_curve.h"
#include "train/lr_find.h"
#include "train/trainer.h"

using namespace detkit;
using namespace detkit::train;
using detkit::testing::TempDir;

namespace {

std::vector<double> geometric(double start, double end, int n) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(start * std::pow(end / start, static_cast<double>(i) / (n - 1)));
  return out;
}

// A noiseless U in log(lr) with its minimum at `lr_min`: flat at first, falling, then rising steeply.
double u_curve(double lr, double lr_min) {
  const double x = std::log10(lr / lr_min);
  return x < 0 ? 2.0 - 1.0 / (1.0 + x * x) : 1.0 + 3.0 * x * x;
}

}  // namespace

TEST(LrCurve, SuggestsATenthOfTheMinimumOfASmoothCurve) {
  LrCurveOptions o;
  o.smoothing = 0;  // no smoothing: the minimum is exactly the curve's
  LrCurveBuilder b(o);
  const auto lrs = geometric(1e-6, 1, 121);  // 20 points per decade: 1e-2 is point 80
  bool stopped = false;
  for (double lr : lrs)
    if ((stopped = b.add(lr, u_curve(lr, 1e-2)))) break;
  const LrCurve c = b.finish(1);
  EXPECT_TRUE(stopped);  // 1 + 3 x^2 passes 4 x the minimum at x = 1: lr 0.1
  EXPECT_TRUE(c.diverged);
  EXPECT_NEAR(c.diverged_lr, 0.1, 0.02);
  EXPECT_EQ(c.min_index, 80);
  EXPECT_NEAR(c.min_lr, 1e-2, 1e-12);
  EXPECT_NEAR(c.suggested_lr, 1e-3, 1e-12);
  // The steepest fall of 2 - 1/(1+x^2) against log10(lr) is at x = -1/sqrt(3): lr 1e-2 x 10^-0.577.
  EXPECT_NEAR(std::log10(c.steepest_lr), -2 - 1 / std::sqrt(3.0), 0.06);
  EXPECT_TRUE(c.notes.empty()) << join(c.notes, "; ");
}

TEST(LrCurve, SmoothsWithBiasCorrectionAndSaysWhenTheLossNeverTurnsUp) {
  LrCurveOptions o;
  o.smoothing = 0.5;
  LrCurveBuilder b(o);
  const auto lrs = geometric(1e-5, 1e-1, 40);
  for (std::size_t i = 0; i < lrs.size(); ++i) EXPECT_FALSE(b.add(lrs[i], 10.0 - static_cast<double>(i) * 0.1));
  const LrCurve c = b.finish(1.0);
  // Bias-corrected EMA of a constant start: the first smoothed value is the first loss, not half of it.
  EXPECT_DOUBLE_EQ(c.smoothed[0], 10.0);
  EXPECT_NEAR(c.smoothed[1], (0.5 * 0.5 * 10.0 + 0.5 * 9.9) / (1 - 0.25), 1e-12);
  EXPECT_FALSE(c.diverged);
  EXPECT_EQ(c.min_index, 39);
  ASSERT_FALSE(c.notes.empty());
  EXPECT_NE(c.notes.front().find("still falling at the last rate tried"), std::string::npos) << c.notes.front();
  EXPECT_NE(c.notes.front().find("raise lr_find.end"), std::string::npos);
}

TEST(LrCurve, ANonFiniteLossEndsTheTestAndAFlatCurveIsFlagged) {
  LrCurveBuilder b;
  const auto lrs = geometric(1e-4, 1, 30);
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(b.add(lrs[i], 5.0 + 0.01 * std::sin(i)));
  EXPECT_TRUE(b.add(lrs[20], std::numeric_limits<double>::quiet_NaN()));
  EXPECT_TRUE(b.add(lrs[21], 1.0));  // ignored after the end
  const LrCurve c = b.finish(1);
  EXPECT_TRUE(c.diverged);
  EXPECT_EQ(c.diverged_index, 20);
  EXPECT_EQ(c.lr.size(), 21u);
  EXPECT_GT(c.suggested_lr, 0);
  bool flat_noted = false;
  for (const auto& n : c.notes) flat_noted = flat_noted || n.find("fell by less than 5 %") != std::string::npos;
  EXPECT_TRUE(flat_noted) << join(c.notes, "; ");

  LrCurveBuilder none;
  EXPECT_TRUE(none.add(1e-6, std::numeric_limits<double>::infinity()));
  const LrCurve nothing = none.finish(1);
  EXPECT_EQ(nothing.suggested_lr, 0);
  ASSERT_EQ(nothing.notes.size(), 1u);
  EXPECT_NE(nothing.notes[0].find("even the first learning rate diverged"), std::string::npos);
}

TEST(LrCurve, OneNoisyEarlyStepDoesNotEndTheTest) {
  LrCurveBuilder b;
  const auto lrs = geometric(1e-5, 1, 50);
  EXPECT_FALSE(b.add(lrs[0], 0.1));  // a lucky first batch: 4 x 0.1 is far below the losses that follow
  for (int i = 1; i < 5; ++i) EXPECT_FALSE(b.add(lrs[i], 8.0)) << i;
}

namespace {

DatasetSource synth_dataset(const TempDir& dir) {
  SynthOptions o;
  o.seed = 3;
  o.train_images = 16;
  o.val_images = 4;
  o.classes = 2;
  o.sizes = {"96x64", "80x80"};
  o.max_objects = 3;
  generate_synthetic_dataset(o, dir / "coco");
  return read_dataset(dir / "coco");
}

RunConfig tiny_config(const TempDir& dir) {
  RunConfig c;
  c.imgsz = 64;
  c.batch = 4;
  c.nominal_batch = 8;
  c.workers = 2;
  c.device = "cpu";
  c.seed = 4;
  c.epochs = 2;
  c.project = (dir / "runs").string();
  c.lr_find.steps = 24;
  c.lr_find.start = 1e-5;
  c.lr_find.end = 1;
  return c;
}

}  // namespace

TEST(LrFind, SweepsTheRateGeometricallyAndWritesTheCurve) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  LrFindRequest r;
  r.config = tiny_config(dir);
  r.dataset = &source.dataset;
  r.out_dir = (dir / "lr").string();
  const LrFindResult a = find_learning_rate(r);
  ASSERT_FALSE(a.lr.empty());
  EXPECT_LE(a.lr.size(), 24u);
  EXPECT_DOUBLE_EQ(a.lr.front(), 1e-5);
  for (std::size_t i = 1; i < a.lr.size(); ++i) EXPECT_NEAR(a.lr[i] / a.lr[i - 1], std::pow(1e5, 1.0 / 23), 1e-9) << i;
  for (std::size_t i = 0; i + 1 < a.loss.size(); ++i) EXPECT_TRUE(std::isfinite(a.loss[i]) && a.loss[i] > 0) << i;
  EXPECT_EQ(a.batch, 4);
  EXPECT_EQ(a.accumulate, 2);
  EXPECT_EQ(a.images, static_cast<int64_t>(a.lr.size()) * 4);
  EXPECT_GT(a.suggested_lr, 0);
  EXPECT_NEAR(a.suggested_lr, std::max(a.min_loss_lr / 10, 1e-5), 1e-15);

  const auto j = nlohmann::json::parse(read_file(dir / "lr" / "lr_find.json"));
  EXPECT_EQ(j["format"], "detkit-lr-find-1");
  EXPECT_EQ(j["points"]["lr"].size(), a.lr.size());
  EXPECT_DOUBLE_EQ(j["suggested_lr"].get<double>(), a.suggested_lr);
  EXPECT_EQ(split(trim(read_file(dir / "lr" / "lr_find.csv")), '\n').size(), a.lr.size() + 1);
  const ImageInfo png = probe_image(dir / "lr" / "lr_find.png");
  EXPECT_EQ(png.width, 900);
  EXPECT_EQ(png.height, 540);

  // The same seed gives the same curve (CPU).
  r.out_dir.clear();
  const LrFindResult b = find_learning_rate(r);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(a.suggested_lr, b.suggested_lr);
}

TEST(LrFind, AMissingSplitOrNoClassesIsAUsageErrorWithTheFix) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  LrFindRequest r;
  r.config = tiny_config(dir);
  r.dataset = &source.dataset;
  r.split = "training";
  EXPECT_THROW_WITH(find_learning_rate(r), UsageError, "the dataset has no training images in split 'training'",
                    "--train-split");
  Dataset no_classes = source.dataset;
  no_classes.categories.clear();
  r.dataset = &no_classes;
  r.split = "train";
  EXPECT_THROW_WITH(find_learning_rate(r), UsageError, "the dataset declares no classes", "declare the classes");
}

TEST(LrFind, StopsWhenTheLossDiverges) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  LrFindRequest r;
  r.config = tiny_config(dir);
  r.config.grad_clip = 0;  // nothing holds the steps back
  r.config.lr_find.start = 1e-3;
  r.config.lr_find.end = 100;
  r.config.lr_find.steps = 40;
  r.dataset = &source.dataset;
  const LrFindResult f = find_learning_rate(r);
  EXPECT_TRUE(f.diverged);
  EXPECT_LT(f.lr.size(), 40u);
  EXPECT_GT(f.diverged_lr, f.min_loss_lr);
  EXPECT_LT(f.suggested_lr, f.diverged_lr / 10);
}

TEST(LrFind, Lr0AutoTrainsWithTheSuggestionAndRecordsIt) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  RunConfig c = tiny_config(dir);
  c.lr0_auto = true;
  c.epochs = 1;
  c.name = "auto";
  TrainRequest r;
  r.config = c;
  r.dataset = &source.dataset;
  const TrainResult result = train::train(r);
  const fs::path run(result.run_dir);
  const auto found = nlohmann::json::parse(read_file(run / "lr-find" / "lr_find.json"));
  const double suggested = found["suggested_lr"].get<double>();
  EXPECT_GT(suggested, 0);
  // The resolved config holds the chosen number, not `auto`, and loads back to it.
  const std::string yaml = read_file(run / "config.yaml");
  EXPECT_EQ(yaml.find("\nlr0: auto"), std::string::npos);
  EXPECT_NE(yaml.find("\nlr0: "), std::string::npos);
  const RunConfig written = resolve_run_config((run / "config.yaml").string(), {});
  EXPECT_FALSE(written.lr0_auto);
  // Rounded to 3 significant digits, so the file holds exactly what trained (a resumed run reads it).
  EXPECT_NEAR(written.lr0, suggested, suggested * 0.005);
  char rounded[32];
  std::snprintf(rounded, sizeof rounded, "%.3g", suggested);
  EXPECT_EQ(written.lr0, std::stod(rounded));
  EXPECT_EQ(result.epochs_completed, 1);
}
