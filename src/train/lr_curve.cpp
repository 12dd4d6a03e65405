#include "train/lr_curve.h"

#include <algorithm>
#include <cmath>

#include "core/text.h"

namespace detkit::train {

bool LrCurveBuilder::add(double lr, double loss) {
  if (curve_.diverged) return true;
  const auto step = static_cast<int64_t>(curve_.lr.size());
  curve_.lr.push_back(lr);
  curve_.loss.push_back(loss);
  if (!std::isfinite(loss)) {
    curve_.smoothed.push_back(loss);
    curve_.diverged = true;
    curve_.diverged_index = step;
    curve_.diverged_lr = lr;
    return true;
  }
  average_ = options_.smoothing * average_ + (1 - options_.smoothing) * loss;
  const double smoothed = average_ / (1 - std::pow(options_.smoothing, static_cast<double>(step + 1)));
  curve_.smoothed.push_back(smoothed);
  if (step == 0 || smoothed < best_) best_ = smoothed;
  if (step >= 5 && smoothed > options_.diverge * best_) {
    curve_.diverged = true;
    curve_.diverged_index = step;
    curve_.diverged_lr = lr;
    return true;
  }
  return false;
}

LrCurve LrCurveBuilder::finish(double planned_end) const {
  LrCurve c = curve_;
  const auto n = static_cast<int64_t>(c.smoothed.size());
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(c.smoothed[i]) && (c.min_index < 0 || c.smoothed[i] < c.min_loss)) c.min_index = i, c.min_loss = c.smoothed[i];
  if (c.min_index < 0) {
    c.notes.push_back("no step had a finite loss: even the first learning rate diverged; lower lr_find.start, and check the "
                      "labels with 'detkit check'");
    return c;
  }
  c.min_lr = c.lr[c.min_index];
  c.suggested_lr = std::max(c.min_lr / options_.divisor, c.lr.front());

  // Steepest descent against log(lr): a centred difference over +/- h points, before the minimum and after
  // the first tenth (where the average still rests on a few batches).
  const int64_t h = std::max<int64_t>(1, n / 25);
  double steepest = 0;
  for (int64_t i = std::max(h, n / 10); i + h <= c.min_index; ++i) {
    const double dx = std::log(c.lr[i + h]) - std::log(c.lr[i - h]);
    if (dx <= 0) continue;
    const double slope = (c.smoothed[i + h] - c.smoothed[i - h]) / dx;
    if (slope < steepest) steepest = slope, c.steepest_index = i;
  }
  if (c.steepest_index >= 0) c.steepest_lr = c.lr[c.steepest_index];

  const int64_t finite_points = c.diverged ? n - 1 : n;
  if (!c.diverged && c.min_index >= finite_points - std::max<int64_t>(2, finite_points / 20))
    c.notes.push_back(cat("the loss was still falling at the last rate tried (", format_significant(c.lr.back()),
                          planned_end > c.lr.back() * 1.0001 ? ", the test stopped early" : "",
                          "): the suggestion may be too low; raise lr_find.end or lr_find.steps"));
  if (c.min_index < std::max<int64_t>(1, n / 10))
    c.notes.push_back(cat("the lowest loss came in the first tenth of the test (at ", format_significant(c.min_lr),
                          "): lower lr_find.start, or the loss is too noisy to read (raise batch or lr_find.steps)"));
  const double first = c.smoothed.front();
  if (std::isfinite(first) && first > 0 && (first - c.min_loss) / first < 0.05)
    c.notes.push_back("the loss fell by less than 5 % over the whole test: the curve says little; raise lr_find.steps, and "
                      "check that the labels match the images ('detkit augment --preview')");
  return c;
}

}  // namespace detkit::train
