// The analysis half of the learning-rate range test (train/lr_find.h): from the loss measured at a
// geometrically rising learning rate, a smoothed curve, when to stop, and the suggested learning rate.
// Plain arithmetic, no tensors, so it is tested on curves whose answer is known.
//
// The rule (Smith's range test, as fastai popularised it):
//   - smoothed loss: an exponential moving average of the per-step loss with bias correction (weight
//     `smoothing` on the past), so the first points are not pulled towards 0;
//   - the test diverged at the first step whose loss is not finite or whose smoothed loss exceeds
//     `diverge` x the lowest smoothed loss so far (not checked in the first 5 steps, where one noisy
//     batch would end the test); the caller stops there;
//   - suggested learning rate: the rate of the lowest smoothed loss divided by `divisor` (the minimum
//     sits where training is already at the edge of instability; a tenth of it trains fast and stays
//     stable), never below the first rate;
//   - steepest: the rate where the smoothed loss falls fastest against log(rate), between the first tenth
//     of the test and the minimum (reported as a second opinion; a centred difference over a few points so
//     one noisy step cannot decide it).
// Notes in plain words are added where the curve does not support the suggestion: the loss still falling
// at the last rate (raise lr_find.end), the minimum in the first tenth (lower lr_find.start, or the loss is
// too noisy), a loss that barely fell (too few steps, or the data or labels do not teach the model).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace detkit::train {

struct LrCurveOptions {
  double smoothing = 0.9;  // weight of the past in the moving average, [0, 1)
  double diverge = 4.0;    // divergence: smoothed loss above this multiple of its minimum
  double divisor = 10.0;   // suggestion = rate of the minimum / divisor
};

struct LrCurve {
  std::vector<double> lr, loss, smoothed;  // per step taken (a non-finite loss is kept as the last point)
  int64_t min_index = -1;                  // step of the lowest smoothed loss (-1: no finite point)
  double min_lr = 0, min_loss = 0;
  int64_t steepest_index = -1;             // -1 when the curve has too few points before its minimum
  double steepest_lr = 0;
  double suggested_lr = 0;                 // 0 when there is no finite point
  bool diverged = false;
  int64_t diverged_index = -1;
  double diverged_lr = 0;
  std::vector<std::string> notes;
};

class LrCurveBuilder {
 public:
  explicit LrCurveBuilder(LrCurveOptions options = {}) : options_(options) {}
  // Records the loss at learning rate `lr` (rates must rise). Returns true when the test should stop
  // (it diverged); later calls are ignored.
  bool add(double lr, double loss);
  // The analysed curve so far: minimum, steepest descent, suggestion and notes.
  LrCurve finish(double planned_end) const;
  const LrCurve& curve() const { return curve_; }

 private:
  LrCurveOptions options_;
  LrCurve curve_;
  double average_ = 0;
  double best_ = 0;
};

}  // namespace detkit::train
