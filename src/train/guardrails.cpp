#include "train/guardrails.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "core/error.h"
#include "core/text.h"

namespace detkit::train {

LossWatch::LossWatch(int64_t window, double ratio, double t_threshold)
    : window_(window), ratio_(ratio), t_threshold_(t_threshold) {
  DETKIT_ASSERT(window >= 4, "a loss window needs at least 4 points for a slope");
}

void LossWatch::add(double loss) {
  if (!std::isfinite(loss)) return;  // non-finite steps are the other guardrail's business
  recent_.push_back(loss);
  if (static_cast<int64_t>(recent_.size()) > window_) recent_.pop_front();
  // A fresh verdict once per full window of new losses: overlapping windows would count one bad stretch
  // several times.
  if (++since_window_ >= window_ && static_cast<int64_t>(recent_.size()) == window_) {
    since_window_ = 0;
    evaluate();
  }
}

void LossWatch::evaluate() {
  const double n = static_cast<double>(recent_.size());
  const double mean = std::accumulate(recent_.begin(), recent_.end(), 0.0) / n;
  // Least-squares slope of loss against batch number, and its standard error.
  const double x_mean = (n - 1) / 2;
  double sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < recent_.size(); ++i) {
    const double dx = static_cast<double>(i) - x_mean;
    sxx += dx * dx;
    sxy += dx * (recent_[i] - mean);
  }
  const double slope = sxy / sxx;
  double residual = 0;
  for (std::size_t i = 0; i < recent_.size(); ++i) {
    const double fit = mean + slope * (static_cast<double>(i) - x_mean);
    residual += (recent_[i] - fit) * (recent_[i] - fit);
  }
  const double se = std::sqrt(residual / (n - 2) / sxx);
  last_t_ = se > 0 ? slope / se : (slope > 0 ? INFINITY : 0);
  last_mean_ = mean;
  rising_ = best_mean_ > 0 && mean > ratio_ * best_mean_ && last_t_ > t_threshold_;
  if (best_mean_ < 0 || mean < best_mean_) best_mean_ = mean;
}

std::string LossWatch::describe() const {
  char text[200];
  std::snprintf(text, sizeof text, "mean loss %.4g over the last %lld batches, %.1fx the best window's %.4g, rising (t = %.1f)",
                last_mean_, static_cast<long long>(window_), best_mean_ > 0 ? last_mean_ / best_mean_ : 0.0, best_mean_,
                last_t_);
  return text;
}

void LossWatch::reset() {
  recent_.clear();
  best_mean_ = -1;
  last_mean_ = last_t_ = 0;
  since_window_ = 0;
  rising_ = false;
}

std::set<int64_t> parse_step_list(const std::string& key, const std::string& text) {
  std::set<int64_t> steps;
  for (const std::string& part : split(text, ',')) {
    const std::string item = trim(part);
    if (item.empty()) continue;
    const auto value = parse_int(item);
    if (!value || *value < 0)
      throw ConfigError({cat("config key '", key, "' must list batch numbers separated by commas; got '", text, "'"), "",
                         cat("use for example ", key, "=\"7,30\"")});
    steps.insert(*value);
  }
  return steps;
}

LossScaler::LossScaler(bool enabled, double initial, int64_t growth_interval)
    : enabled_(enabled), scale_(initial), growth_interval_(growth_interval) {}

bool LossScaler::update(bool finite) {
  if (!enabled_) return finite;
  if (!finite) {
    const bool explained = scale_ > 1.0;
    scale_ = std::max(scale_ / 2, 1.0);
    good_steps_ = 0;
    return explained;
  }
  if (++good_steps_ >= growth_interval_) {
    scale_ = std::min(scale_ * 2, 16777216.0);
    good_steps_ = 0;
  }
  return true;
}

void LossScaler::restore(double scale, int64_t good_steps) {
  if (!enabled_) return;
  scale_ = scale;
  good_steps_ = good_steps;
}

}  // namespace detkit::train
