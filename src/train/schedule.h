// Learning-rate and momentum schedule of a training run: a linear warmup over the first iterations, then a
// cosine or linear decay per epoch from lr0 to lr0 * lrf. Plain arithmetic (no tensors), so it is tested
// in isolation and the trainer only asks "what now?".
#pragma once

#include <cstdint>
#include <string>

namespace detkit::train {

// Parameter groups, each with its own warmup: convolution and linear weights (decayed), normalisation
// weights and biases (never decayed). Biases start warmup high (warmup_bias_lr) and fall to the
// schedule, which steadies the box and class heads' first steps.
enum class ParamGroup { weights = 0, norms = 1, biases = 2 };

struct ScheduleOptions {
  double lr0 = 0.01;
  double lrf = 0.01;              // final learning rate as a fraction of lr0
  double momentum = 0.937;
  double warmup_momentum = 0.8;
  double warmup_bias_lr = 0.1;
  int64_t epochs = 100;
  std::string kind = "cosine";    // "cosine" or "linear"
  int64_t warmup_iterations = 0;  // batches of warmup (0: none)
};

class LrSchedule {
 public:
  explicit LrSchedule(ScheduleOptions options);

  // The decay factor in epoch `epoch` (0-based): 1 in the first, lrf in the last.
  double decay(int64_t epoch) const;
  // The learning rate of `group` at training batch `iteration` (counted from 0 over the whole run) in
  // `epoch`, before any guardrail scaling.
  double lr(ParamGroup group, int64_t iteration, int64_t epoch) const;
  // Momentum (SGD) or beta1 (AdamW) at `iteration`: rises from warmup_momentum to momentum in warmup.
  double momentum(int64_t iteration) const;
  bool in_warmup(int64_t iteration) const { return iteration < options_.warmup_iterations; }

  const ScheduleOptions& options() const { return options_; }

 private:
  ScheduleOptions options_;
};

// Warmup length in batches: warmup_epochs of them, at most half the run, so a short run still decays.
int64_t warmup_iterations(double warmup_epochs, int64_t batches_per_epoch, int64_t epochs);

}  // namespace detkit::train
