#include "augment/multiscale.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "augment/augment.h"
#include "core/error.h"

namespace detkit::augment {

namespace {
// The loader's streams use epochs >= 0 (and -1 for its epoch-level draws); this one is its own.
constexpr int64_t kMultiScaleStream = -2;
}  // namespace

int64_t multi_scale_size(uint64_t seed, int64_t iteration, int64_t imgsz, double fraction, int64_t stride) {
  if (fraction <= 0) return imgsz;
  Rng rng = Rng::for_sample(seed, kMultiScaleStream, iteration);
  const double side = static_cast<double>(imgsz) * rng.uniform(1.0 - fraction, 1.0 + fraction);
  const auto rounded = static_cast<int64_t>(std::floor(side / static_cast<double>(stride))) * stride;
  return std::max(rounded, stride);
}

int64_t multi_scale_max(int64_t imgsz, double fraction, int64_t stride) {
  if (fraction <= 0) return imgsz;
  const auto rounded = static_cast<int64_t>(std::floor(static_cast<double>(imgsz) * (1.0 + fraction) / static_cast<double>(stride))) * stride;
  return std::max({rounded, stride, imgsz});
}

void rescale_batch(at::Tensor& images, at::Tensor& targets, int64_t size) {
  DETKIT_ASSERT(images.dim() == 4 && images.size(2) == images.size(3) && images.is_floating_point(),
                "rescale_batch() needs float images [B, C, S, S]");
  const int64_t side = images.size(2);
  if (size == side) return;
  images = at::upsample_bilinear2d(images, {size, size}, /*align_corners=*/false);
  if (targets.numel() > 0) {
    targets = targets.clone();
    targets.narrow(1, 2, 4).mul_(static_cast<double>(size) / static_cast<double>(side));
  }
}

}  // namespace detkit::augment
