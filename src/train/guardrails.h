// The trainer's guardrails that need no tensors: telling a diverging loss from a noisy one, and parsing
// the fault-injection settings used to test recovery.
#pragma once

#include <cstdint>
#include <deque>
#include <set>
#include <string>

namespace detkit::train {

// Watches per-batch training losses for a statistically rising trend, the slow form of divergence that
// never produces a NaN. It compares consecutive windows of `window` losses: the loss is rising when the
// latest window's mean is above `ratio` times the lowest window mean seen, and a least-squares line
// through the latest window climbs with a t-statistic above `t_threshold` (so one bad batch, or noise
// around a flat loss, is not enough).
class LossWatch {
 public:
  explicit LossWatch(int64_t window = 50, double ratio = 1.5, double t_threshold = 3.0);

  void add(double loss);
  bool rising() const { return rising_; }
  // "mean loss 4.1 over the last 50 batches, 2.3x the best window (1.8), rising (t = 5.2)"
  std::string describe() const;
  // Forgets everything (after a rollback the loss is expected to jump back).
  void reset();

 private:
  void evaluate();

  int64_t window_;
  double ratio_, t_threshold_;
  std::deque<double> recent_;
  double best_mean_ = -1;
  double last_mean_ = 0, last_t_ = 0;
  int64_t since_window_ = 0;
  bool rising_ = false;
};

// fp16 dynamic loss scaling, the bookkeeping half (no tensors): the loss is multiplied by scale() before the
// backward pass and the gradients divided by it before the step, so small fp16 gradients do not flush to
// zero. A non-finite gradient halves the scale (never below 1) and its step is skipped; `growth_interval`
// finite steps in a row double it (never above 2^24). Disabled (bf16, fp32), the scale is 1.
class LossScaler {
 public:
  explicit LossScaler(bool enabled = false, double initial = 65536.0, int64_t growth_interval = 2000);

  bool enabled() const { return enabled_; }
  double scale() const { return enabled_ ? scale_ : 1.0; }
  int64_t good_steps() const { return good_steps_; }
  // Records a step's gradient check. Returns true when the step is healthy: finite, or an overflow the
  // halved scale accounts for (expected with fp16; not a guardrail event). Returns false for a non-finite
  // gradient that scaling does not explain (scaling off, or the scale already at 1).
  bool update(bool finite);
  // The state of a checkpoint (scale, good steps); ignored when disabled.
  void restore(double scale, int64_t good_steps);

 private:
  bool enabled_;
  double scale_;
  int64_t growth_interval_;
  int64_t good_steps_ = 0;
};

// "7,30, 41" -> {7, 30, 41}. Throws ConfigError naming `key` for anything but non-negative integers.
std::set<int64_t> parse_step_list(const std::string& key, const std::string& text);

}  // namespace detkit::train
