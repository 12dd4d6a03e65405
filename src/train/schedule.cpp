#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace detkit::train {

LrSchedule::LrSchedule(ScheduleOptions options) : options_(std::move(options)) {
  DETKIT_ASSERT(options_.epochs > 0, "a schedule needs at least one epoch");
  DETKIT_ASSERT(options_.kind == "cosine" || options_.kind == "linear", "unknown schedule kind");
}

double LrSchedule::decay(int64_t epoch) const {
  // Reaches lrf in the last epoch (not after it), so the final epoch trains at the final rate.
  const double span = static_cast<double>(std::max<int64_t>(options_.epochs - 1, 1));
  const double t = std::clamp(static_cast<double>(epoch) / span, 0.0, 1.0);
  if (options_.kind == "linear") return 1.0 - t * (1.0 - options_.lrf);
  return options_.lrf + (1.0 - options_.lrf) * 0.5 * (1.0 + std::cos(M_PI * t));
}

double LrSchedule::lr(ParamGroup group, int64_t iteration, int64_t epoch) const {
  const double target = options_.lr0 * decay(epoch);
  if (!in_warmup(iteration)) return target;
  const double f = static_cast<double>(iteration) / static_cast<double>(options_.warmup_iterations);
  const double start = group == ParamGroup::biases ? options_.warmup_bias_lr : 0.0;
  return start + (target - start) * f;
}

double LrSchedule::momentum(int64_t iteration) const {
  if (!in_warmup(iteration)) return options_.momentum;
  const double f = static_cast<double>(iteration) / static_cast<double>(options_.warmup_iterations);
  return options_.warmup_momentum + (options_.momentum - options_.warmup_momentum) * f;
}

int64_t warmup_iterations(double warmup_epochs, int64_t batches_per_epoch, int64_t epochs) {
  const auto wanted = static_cast<int64_t>(std::llround(warmup_epochs * static_cast<double>(batches_per_epoch)));
  return std::min(wanted, batches_per_epoch * epochs / 2);
}

}  // namespace detkit::train
