#include "augment/augment.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace detkit::augment {

namespace {

constexpr double kPi = 3.14159265358979323846;

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

at::Tensor as_float(const at::Tensor& image) {
  return image.scalar_type() == at::kFloat ? image : image.to(at::kFloat);
}

// Back to the dtype the caller gave: uint8 is rounded and saturated, float is clamped to 0..255.
at::Tensor to_dtype(const at::Tensor& image, at::ScalarType dtype) {
  if (dtype == at::kByte) return image.round().clamp_(0, 255).to(at::kByte);
  return image.clamp(0, 255).to(dtype);
}

at::Tensor empty_boxes(const at::Tensor& like) { return at::zeros({0, 4}, like.options().dtype(at::kFloat)); }
at::Tensor empty_labels(const at::Tensor& like) { return at::zeros({0}, like.options().dtype(at::kLong)); }

at::Tensor box_area(const at::Tensor& boxes) {
  return (boxes.select(1, 2) - boxes.select(1, 0)).clamp_min(0) * (boxes.select(1, 3) - boxes.select(1, 1)).clamp_min(0);
}

// Clips boxes to the region [x0, x1] x [y0, y1] and keeps those passing `filter`, measured against
// `reference_area` (each box's area before clipping).
void clip_and_filter(at::Tensor& boxes, at::Tensor& labels, double x0, double y0, double x1, double y1,
                     const at::Tensor& reference_area, const BoxFilter& filter) {
  if (boxes.size(0) == 0) return;
  const auto bx1 = boxes.select(1, 0).clamp(x0, x1), by1 = boxes.select(1, 1).clamp(y0, y1);
  const auto bx2 = boxes.select(1, 2).clamp(x0, x1), by2 = boxes.select(1, 3).clamp(y0, y1);
  const auto w = bx2 - bx1, h = by2 - by1;
  const auto area = w * h;
  const auto keep = (w > 0) & (h > 0) & (w >= filter.min_box_px) & (h >= filter.min_box_px) &
                    (area >= reference_area * filter.min_visible);
  const auto index = keep.nonzero().select(1, 0);
  boxes = at::stack({bx1, by1, bx2, by2}, 1).index_select(0, index);
  labels = labels.index_select(0, index);
}

bool is_identity(const Affine& a) {
  const std::array<double, 6> id{1, 0, 0, 0, 1, 0};
  for (int i = 0; i < 6; ++i)
    if (std::abs(a.m[i] - id[i]) > 1e-9) return false;
  return true;
}

}  // namespace

// ---- Samples and randomness --------------------------------------------------------------------------

at::Tensor to_chw(const at::Tensor& image) {
  DETKIT_ASSERT(image.dim() == 3, "an image is [3, H, W] or [H, W, 3]");
  if (image.size(0) == 3) return image.contiguous();
  DETKIT_ASSERT(image.size(2) == 3, "an image is [3, H, W] or [H, W, 3]");
  return image.permute({2, 0, 1}).contiguous();
}

Sample make_sample(const at::Tensor& image, const at::Tensor& boxes, const at::Tensor& labels) {
  Sample s;
  s.image = to_chw(image);
  DETKIT_ASSERT(s.image.scalar_type() == at::kByte || s.image.scalar_type() == at::kFloat, "images are uint8 or float32");
  s.boxes = boxes.defined() ? boxes.to(at::kFloat).reshape({-1, 4}) : empty_boxes(s.image);
  s.labels = labels.defined() ? labels.to(at::kLong).reshape({-1}) : empty_labels(s.image);
  DETKIT_ASSERT(s.boxes.size(0) == s.labels.size(0), "one label per box");
  const auto area = box_area(s.boxes);
  clip_and_filter(s.boxes, s.labels, 0, 0, static_cast<double>(s.width()), static_cast<double>(s.height()), area,
                  BoxFilter{0, 0});
  return s;
}

Rng::Rng(uint64_t seed) {
  uint64_t state = seed;
  for (auto& word : s_) word = splitmix64(state);
}

Rng Rng::for_sample(uint64_t seed, int64_t epoch, int64_t index) {
  // Each coordinate goes through its own splitmix step, so (epoch, index) pairs never share a stream.
  uint64_t state = seed;
  uint64_t h = splitmix64(state);
  state = h ^ static_cast<uint64_t>(epoch);
  h = splitmix64(state);
  state = h ^ static_cast<uint64_t>(index);
  return Rng(splitmix64(state));
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
double Rng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
bool Rng::chance(double p) { return uniform() < p; }

int64_t Rng::below(int64_t n) {
  DETKIT_ASSERT(n > 0, "Rng::below needs n > 0");
  return std::min<int64_t>(n - 1, static_cast<int64_t>(uniform() * static_cast<double>(n)));
}

double Rng::normal() {
  // Box-Muller; 1 - uniform() is in (0, 1], so the log is finite.
  const double u1 = 1.0 - uniform(), u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * kPi * u2);
}

double Rng::beta(double a, double b) {
  DETKIT_ASSERT(a >= 1 && b >= 1, "Rng::beta needs a, b >= 1");
  // Marsaglia and Tsang's gamma sampler (valid for shape >= 1); Beta = X / (X + Y).
  auto gamma = [this](double shape) {
    const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      const double x = normal();
      double v = 1.0 + c * x;
      if (v <= 0) continue;
      v = v * v * v;
      const double u = 1.0 - uniform();
      if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
    }
  };
  const double x = gamma(a), y = gamma(b);
  return x / (x + y);
}

Sample filter_boxes(Sample sample, const at::Tensor& reference_area, const BoxFilter& filter) {
  clip_and_filter(sample.boxes, sample.labels, 0, 0, static_cast<double>(sample.width()),
                  static_cast<double>(sample.height()), reference_area, filter);
  return sample;
}

// ---- Geometric ops ---------------------------------------------------------------------------------

Sample flip_horizontal(const Sample& sample) {
  Sample out = sample;
  out.image = sample.image.flip({2});
  if (sample.box_count() > 0) {
    const double w = static_cast<double>(sample.width());
    const auto& b = sample.boxes;
    out.boxes = at::stack({w - b.select(1, 2), b.select(1, 1), w - b.select(1, 0), b.select(1, 3)}, 1);
  }
  return out;
}

Sample flip_vertical(const Sample& sample) {
  Sample out = sample;
  out.image = sample.image.flip({1});
  if (sample.box_count() > 0) {
    const double h = static_cast<double>(sample.height());
    const auto& b = sample.boxes;
    out.boxes = at::stack({b.select(1, 0), h - b.select(1, 3), b.select(1, 2), h - b.select(1, 1)}, 1);
  }
  return out;
}

Sample resize(const Sample& sample, int64_t width, int64_t height, Interp interp) {
  DETKIT_ASSERT(width > 0 && height > 0, "resize needs a positive size");
  if (width == sample.width() && height == sample.height()) return sample;
  const auto x = as_float(sample.image).unsqueeze(0);
  const std::array<int64_t, 2> size{height, width};
  // Shrinking by more than 2 needs the antialiased kernel, whose support widens with the factor (PIL's
  // behaviour), or small objects alias. Down to half size plain bilinear misses no source pixel and is
  // several times faster in LibTorch, and JPEGs shrunk further were already scaled in the DCT by the
  // loader. "Nearest exact" samples the source pixel under each output pixel's centre, which is the
  // convention boxes use (plain "nearest" is shifted by half a pixel).
  const bool shrink_a_lot = 2 * width < sample.width() || 2 * height < sample.height();
  const auto y = interp == Interp::nearest ? at::_upsample_nearest_exact2d(x, at::IntArrayRef(size))
                 : shrink_a_lot            ? at::_upsample_bilinear2d_aa(x, at::IntArrayRef(size), false)
                                           : at::upsample_bilinear2d(x, at::IntArrayRef(size), false);
  Sample out = sample;
  out.image = to_dtype(y.squeeze(0), sample.image.scalar_type());
  if (sample.box_count() > 0) {
    const double sx = static_cast<double>(width) / static_cast<double>(sample.width());
    const double sy = static_cast<double>(height) / static_cast<double>(sample.height());
    const auto scale = at::tensor({sx, sy, sx, sy}, sample.boxes.options().dtype(at::kDouble)).to(at::kFloat);
    out.boxes = sample.boxes * scale;
  }
  return out;
}

Letterboxed letterbox(const Sample& sample, int64_t size, Interp interp) {
  DETKIT_ASSERT(size > 0, "letterbox needs a positive size");
  const double w = static_cast<double>(sample.width()), h = static_cast<double>(sample.height());
  const double r = static_cast<double>(size) / std::max(w, h);
  const int64_t nw = std::clamp<int64_t>(std::llround(w * r), 1, size);
  const int64_t nh = std::clamp<int64_t>(std::llround(h * r), 1, size);
  const Sample resized = resize(sample, nw, nh, interp);
  Letterboxed out;
  out.scale = r;
  out.pad_x = (size - nw) / 2;
  out.pad_y = (size - nh) / 2;
  out.sample = resized;
  if (nw == size && nh == size) return out;
  out.sample.image = at::full({3, size, size}, kFillLevel, resized.image.options());
  out.sample.image.slice(1, out.pad_y, out.pad_y + nh).slice(2, out.pad_x, out.pad_x + nw).copy_(resized.image);
  if (resized.box_count() > 0) {
    const auto shift = at::tensor({static_cast<float>(out.pad_x), static_cast<float>(out.pad_y),
                                   static_cast<float>(out.pad_x), static_cast<float>(out.pad_y)},
                                  resized.boxes.options());
    out.sample.boxes = resized.boxes + shift;
  }
  return out;
}

Sample crop(const Sample& sample, int64_t x0, int64_t y0, int64_t x1, int64_t y1, const BoxFilter& filter) {
  DETKIT_ASSERT(0 <= x0 && x0 < x1 && x1 <= sample.width() && 0 <= y0 && y0 < y1 && y1 <= sample.height(),
                "crop rectangle must lie inside the image");
  Sample out = sample;
  out.image = sample.image.slice(1, y0, y1).slice(2, x0, x1).contiguous();
  if (sample.box_count() > 0) {
    const auto shift = at::tensor({static_cast<float>(x0), static_cast<float>(y0), static_cast<float>(x0),
                                   static_cast<float>(y0)},
                                  sample.boxes.options());
    out.boxes = sample.boxes - shift;
    out = filter_boxes(std::move(out), box_area(out.boxes), filter);
  }
  return out;
}

Sample random_crop(const Sample& sample, Rng& rng, double min_coverage, const BoxFilter& filter) {
  const int64_t w = sample.width(), h = sample.height();
  const auto boxes = sample.boxes.to(at::kCPU, at::kDouble).contiguous();
  const auto b = boxes.accessor<double, 2>();
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int64_t cw = std::max<int64_t>(1, std::llround(static_cast<double>(w) * rng.uniform(0.3, 1.0)));
    const int64_t ch = std::max<int64_t>(1, std::llround(static_cast<double>(h) * rng.uniform(0.3, 1.0)));
    const int64_t x0 = rng.below(w - cw + 1), y0 = rng.below(h - ch + 1);
    bool accepted = boxes.size(0) == 0;
    for (int64_t i = 0; i < boxes.size(0) && !accepted; ++i) {
      const double area = (b[i][2] - b[i][0]) * (b[i][3] - b[i][1]);
      const double iw = std::min<double>(b[i][2], x0 + cw) - std::max<double>(b[i][0], x0);
      const double ih = std::min<double>(b[i][3], y0 + ch) - std::max<double>(b[i][1], y0);
      accepted = area > 0 && iw > 0 && ih > 0 && iw * ih >= min_coverage * area;
    }
    if (accepted) return crop(sample, x0, y0, x0 + cw, y0 + ch, filter);
  }
  return sample;
}

Affine Affine::then(const Affine& next) const {
  const auto& a = next.m;
  const auto& b = m;
  return Affine{{a[0] * b[0] + a[1] * b[3], a[0] * b[1] + a[1] * b[4], a[0] * b[2] + a[1] * b[5] + a[2],
                 a[3] * b[0] + a[4] * b[3], a[3] * b[1] + a[4] * b[4], a[3] * b[2] + a[4] * b[5] + a[5]}};
}

Affine Affine::inverse() const {
  const double det = m[0] * m[4] - m[1] * m[3];
  DETKIT_ASSERT(std::abs(det) > 1e-12, "affine map is not invertible");
  const double a = m[4] / det, b = -m[1] / det, d = -m[3] / det, e = m[0] / det;
  return Affine{{a, b, -(a * m[2] + b * m[5]), d, e, -(d * m[2] + e * m[5])}};
}

Affine random_affine(Rng& rng, const AugmentConfig& config, int64_t src_w, int64_t src_h, int64_t out_w,
                     int64_t out_h) {
  // Every parameter is drawn even when its range is 0, so turning one knob does not reshuffle the others.
  const double angle = rng.uniform(-config.degrees, config.degrees) * kPi / 180;
  const double scale = rng.uniform(1 - config.scale, 1 + config.scale);
  const double shear_x = std::tan(rng.uniform(-config.shear, config.shear) * kPi / 180);
  const double shear_y = std::tan(rng.uniform(-config.shear, config.shear) * kPi / 180);
  const double tx = rng.uniform(0.5 - config.translate, 0.5 + config.translate) * static_cast<double>(out_w);
  const double ty = rng.uniform(0.5 - config.translate, 0.5 + config.translate) * static_cast<double>(out_h);
  const Affine centre{{1, 0, -static_cast<double>(src_w) / 2, 0, 1, -static_cast<double>(src_h) / 2}};
  // Positive angles turn counter-clockwise on screen (y points down), as OpenCV's getRotationMatrix2D.
  const double c = std::cos(angle) * scale, s = std::sin(angle) * scale;
  const Affine rotate{{c, s, 0, -s, c, 0}};
  const Affine shear{{1, shear_x, 0, shear_y, 1, 0}};
  const Affine move{{1, 0, tx, 0, 1, ty}};
  return centre.then(rotate).then(shear).then(move);
}

namespace {

// Boxes through `map`: the bounding box of each box's four mapped corners, then clipped and filtered
// against the mapped box's area.
Sample map_boxes(Sample out, const at::Tensor& boxes, const at::Tensor& labels, const Affine& map, const BoxFilter& filter) {
  out.boxes = empty_boxes(boxes);
  out.labels = empty_labels(labels);
  if (boxes.size(0) == 0) return out;
  const auto& f = map.m;
  const auto& b = boxes;
  const auto cx = at::stack({b.select(1, 0), b.select(1, 2), b.select(1, 0), b.select(1, 2)}, 1);
  const auto cy = at::stack({b.select(1, 1), b.select(1, 1), b.select(1, 3), b.select(1, 3)}, 1);
  const auto mx = cx * f[0] + cy * f[1] + f[2];
  const auto my = cx * f[3] + cy * f[4] + f[5];
  out.boxes = at::stack({std::get<0>(mx.min(1)), std::get<0>(my.min(1)), std::get<0>(mx.max(1)), std::get<0>(my.max(1))}, 1);
  out.labels = labels;
  return filter_boxes(std::move(out), box_area(out.boxes), filter);
}

// An axis-aligned map (scale and translation only: the default recipe, letterboxing) done as a crop of
// the visible source, one resize and a paste, several times cheaper than grid_sample. The scale is
// rounded so the resized crop has whole-pixel size and position; boxes go through that realised map, so
// they stay exact with the pixels (the realised map differs from `map` by under a pixel).
Sample scale_and_place(const Sample& sample, const Affine& map, int64_t out_w, int64_t out_h, const BoxFilter& filter,
                       Interp interp) {
  const auto& m = map.m;
  const int64_t w = sample.width(), h = sample.height();
  // The source pixels whose image lands in the output.
  const int64_t sx0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(-m[2] / m[0])), 0, w);
  const int64_t sx1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((static_cast<double>(out_w) - m[2]) / m[0])), 0, w);
  const int64_t sy0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(-m[5] / m[4])), 0, h);
  const int64_t sy1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((static_cast<double>(out_h) - m[5]) / m[4])), 0, h);
  const int64_t dx0 = std::llround(m[0] * static_cast<double>(sx0) + m[2]);
  const int64_t dx1 = std::llround(m[0] * static_cast<double>(sx1) + m[2]);
  const int64_t dy0 = std::llround(m[4] * static_cast<double>(sy0) + m[5]);
  const int64_t dy1 = std::llround(m[4] * static_cast<double>(sy1) + m[5]);
  Sample out;
  out.image = at::full({3, out_h, out_w}, kFillLevel, sample.image.options());
  if (sx1 <= sx0 || sy1 <= sy0 || dx1 <= dx0 || dy1 <= dy0) return map_boxes(out, sample.boxes, sample.labels, map, filter);
  const Sample region = crop(Sample{sample.image, empty_boxes(sample.boxes), empty_labels(sample.labels)}, sx0, sy0, sx1, sy1, filter);
  const at::Tensor placed = resize(region, dx1 - dx0, dy1 - dy0, interp).image;
  const int64_t ox0 = std::max<int64_t>(dx0, 0), ox1 = std::min(dx1, out_w), oy0 = std::max<int64_t>(dy0, 0), oy1 = std::min(dy1, out_h);
  if (ox1 > ox0 && oy1 > oy0)
    out.image.slice(1, oy0, oy1).slice(2, ox0, ox1).copy_(placed.slice(1, oy0 - dy0, oy1 - dy0).slice(2, ox0 - dx0, ox1 - dx0));
  const double kx = static_cast<double>(dx1 - dx0) / static_cast<double>(sx1 - sx0);
  const double ky = static_cast<double>(dy1 - dy0) / static_cast<double>(sy1 - sy0);
  const Affine realised{{kx, 0, static_cast<double>(dx0) - kx * static_cast<double>(sx0), 0, ky,
                         static_cast<double>(dy0) - ky * static_cast<double>(sy0)}};
  return map_boxes(out, sample.boxes, sample.labels, realised, filter);
}

}  // namespace

Sample warp_affine(const Sample& sample, const Affine& map, int64_t out_w, int64_t out_h, const BoxFilter& filter,
                   Interp interp) {
  if (is_identity(map) && out_w == sample.width() && out_h == sample.height()) return sample;
  if (map.m[1] == 0 && map.m[3] == 0 && map.m[0] > 0 && map.m[4] > 0)
    return scale_and_place(sample, map, out_w, out_h, filter, interp);
  const Affine inv = map.inverse();
  // Only the part of the source that the output sees is resampled (a mosaic's output covers about a
  // quarter of its canvas): the output's corners mapped back, 2 pixels of margin for the filter.
  double lo_x = 1e300, lo_y = 1e300, hi_x = -1e300, hi_y = -1e300;
  for (const auto& [cx, cy] : {std::pair<double, double>{0, 0}, {double(out_w), 0}, {0, double(out_h)}, {double(out_w), double(out_h)}}) {
    const double x = inv.m[0] * cx + inv.m[1] * cy + inv.m[2], y = inv.m[3] * cx + inv.m[4] * cy + inv.m[5];
    lo_x = std::min(lo_x, x), hi_x = std::max(hi_x, x), lo_y = std::min(lo_y, y), hi_y = std::max(hi_y, y);
  }
  const int64_t w = sample.width(), h = sample.height();
  const int64_t rx0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(lo_x)) - 2, 0, w - 1);
  const int64_t ry0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(lo_y)) - 2, 0, h - 1);
  const int64_t rx1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(hi_x)) + 2, rx0 + 1, w);
  const int64_t ry1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(hi_y)) + 2, ry0 + 1, h);
  // Output -> region coordinates: the inverse map, then minus the region's origin.
  const Affine to_region = inv.then(Affine{{1, 0, -static_cast<double>(rx0), 0, 1, -static_cast<double>(ry0)}});
  const auto& m = to_region.m;
  const auto opts = sample.image.options().dtype(at::kFloat);
  // Output pixel centres, mapped back to the region and normalised for grid_sample (align_corners=false:
  // -1 and 1 are the outer edges of the region, matching the continuous box coordinates).
  const auto xs = (at::arange(out_w, opts) + 0.5).view({1, -1});
  const auto ys = (at::arange(out_h, opts) + 0.5).view({-1, 1});
  const double sw = static_cast<double>(rx1 - rx0), sh = static_cast<double>(ry1 - ry0);
  const auto gx = (xs * (m[0] * 2.0 / sw) + ys * (m[1] * 2.0 / sw)).add_(m[2] * 2.0 / sw - 1.0);
  const auto gy = (xs * (m[3] * 2.0 / sh) + ys * (m[4] * 2.0 / sh)).add_(m[5] * 2.0 / sh - 1.0);
  const auto grid = at::stack({gx, gy}, -1).unsqueeze(0);
  // grid_sample pads with zeros; shifting by the fill level makes the uncovered area the fill grey. A
  // region cut from inside the image is padded too, but its 2-pixel margin keeps the output off its edge.
  auto src = sample.image.slice(1, ry0, ry1).slice(2, rx0, rx1).to(at::kFloat);
  src.sub_(static_cast<double>(kFillLevel));
  auto warped = at::grid_sampler_2d(src.unsqueeze(0), grid, interp == Interp::bilinear ? 0 : 1, 0, false).squeeze(0);
  warped.add_(static_cast<double>(kFillLevel));
  Sample out;
  out.image = to_dtype(warped, sample.image.scalar_type());
  return map_boxes(std::move(out), sample.boxes, sample.labels, map, filter);
}

Sample mosaic(const std::array<Sample, 4>& tiles, int64_t size, Rng& rng, const BoxFilter& filter) {
  DETKIT_ASSERT(size > 0, "mosaic needs a positive size");
  const int64_t s2 = 2 * size;
  const int64_t xc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * static_cast<double>(size));
  const int64_t yc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * static_cast<double>(size));
  Sample out;
  out.image = at::full({3, s2, s2}, kFillLevel, tiles[0].image.options());
  std::vector<at::Tensor> boxes, labels;
  for (int i = 0; i < 4; ++i) {
    const Sample& t = tiles[i];
    const int64_t w = t.width(), h = t.height();
    // Where the tile goes on the canvas (a) and which part of the tile that is (b).
    int64_t x1a, y1a, x2a, y2a, x1b, y1b;
    if (i == 0) {
      x1a = std::max<int64_t>(xc - w, 0), y1a = std::max<int64_t>(yc - h, 0), x2a = xc, y2a = yc;
      x1b = w - (x2a - x1a), y1b = h - (y2a - y1a);
    } else if (i == 1) {
      x1a = xc, y1a = std::max<int64_t>(yc - h, 0), x2a = std::min(xc + w, s2), y2a = yc;
      x1b = 0, y1b = h - (y2a - y1a);
    } else if (i == 2) {
      x1a = std::max<int64_t>(xc - w, 0), y1a = yc, x2a = xc, y2a = std::min(yc + h, s2);
      x1b = w - (x2a - x1a), y1b = 0;
    } else {
      x1a = xc, y1a = yc, x2a = std::min(xc + w, s2), y2a = std::min(yc + h, s2);
      x1b = 0, y1b = 0;
    }
    if (x2a <= x1a || y2a <= y1a) continue;
    out.image.slice(1, y1a, y2a).slice(2, x1a, x2a)
        .copy_(t.image.slice(1, y1b, y1b + (y2a - y1a)).slice(2, x1b, x1b + (x2a - x1a)));
    if (t.box_count() == 0) continue;
    const float dx = static_cast<float>(x1a - x1b), dy = static_cast<float>(y1a - y1b);
    at::Tensor b = t.boxes + at::tensor({dx, dy, dx, dy}, t.boxes.options());
    at::Tensor l = t.labels;
    clip_and_filter(b, l, static_cast<double>(x1a), static_cast<double>(y1a), static_cast<double>(x2a),
                    static_cast<double>(y2a), box_area(b), filter);
    boxes.push_back(b);
    labels.push_back(l);
  }
  out.boxes = boxes.empty() ? empty_boxes(tiles[0].boxes) : at::cat(boxes, 0);
  out.labels = labels.empty() ? empty_labels(tiles[0].labels) : at::cat(labels, 0);
  return out;
}

Sample mixup(const Sample& a, const Sample& b, double ratio) {
  DETKIT_ASSERT(a.image.sizes() == b.image.sizes(), "mixup needs images of the same size");
  Sample out;
  out.image = to_dtype(as_float(a.image) * ratio + as_float(b.image) * (1.0 - ratio), a.image.scalar_type());
  out.boxes = at::cat({a.boxes, b.boxes}, 0);
  out.labels = at::cat({a.labels, b.labels}, 0);
  return out;
}

// ---- Colour ----------------------------------------------------------------------------------------

ColorJitter ColorJitter::random(Rng& rng, const AugmentConfig& config) {
  ColorJitter j;
  j.hue = rng.uniform(-config.hsv_h, config.hsv_h);
  j.saturation = rng.uniform(1 - config.hsv_s, 1 + config.hsv_s);
  j.value = rng.uniform(1 - config.hsv_v, 1 + config.hsv_v);
  j.contrast = rng.uniform(1 - config.contrast, 1 + config.contrast);
  j.brightness = rng.uniform(-config.brightness, config.brightness);
  return j;
}

Sample adjust_color(const Sample& sample, const ColorJitter& j) {
  if (j.hue == 0 && j.saturation == 1 && j.value == 1 && j.contrast == 1 && j.brightness == 0) return sample;
  using M3 = std::array<std::array<double, 3>, 3>;
  auto mul = [](const M3& a, const M3& b) {
    M3 r{};
    for (int i = 0; i < 3; ++i)
      for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 3; ++l) r[i][k] += a[i][l] * b[l][k];
    return r;
  };
  const double luma[3] = {0.299, 0.587, 0.114};
  // Rotation by theta about the unit grey axis k = (1,1,1)/sqrt(3) (Rodrigues' formula).
  const double theta = 2 * kPi * j.hue, c = std::cos(theta), s = std::sin(theta) / std::sqrt(3.0), t = (1 - c) / 3;
  const M3 hue{{{c + t, t - s, t + s}, {t + s, c + t, t - s}, {t - s, t + s, c + t}}};
  M3 sat{};
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) sat[i][k] = (i == k ? j.saturation : 0.0) + (1 - j.saturation) * luma[k];
  M3 a = mul(sat, hue);
  for (auto& row : a)
    for (auto& v : row) v *= j.value;
  const auto x = as_float(sample.image).reshape({3, -1});
  double offset = 255.0 * j.brightness;
  if (j.contrast != 1) {
    // Contrast scales around the mean luma of the colour-adjusted image: lᵀ A mean(x).
    const auto mean = x.mean(1).to(at::kCPU, at::kDouble).contiguous();
    const double* mv = mean.data_ptr<double>();
    double m = 0;
    for (int i = 0; i < 3; ++i)
      for (int k = 0; k < 3; ++k) m += luma[i] * a[i][k] * mv[k];
    offset += (1 - j.contrast) * m;
    for (auto& row : a)
      for (auto& v : row) v *= j.contrast;
  }
  std::vector<float> flat;
  for (const auto& row : a)
    for (double v : row) flat.push_back(static_cast<float>(v));
  const auto matrix = at::tensor(flat, x.options()).view({3, 3});
  const auto bias = at::full({3, 1}, offset, x.options());
  Sample out = sample;
  out.image = to_dtype(at::addmm(bias, matrix, x).view(sample.image.sizes()), sample.image.scalar_type());
  return out;
}

// ---- The recipe ------------------------------------------------------------------------------------

Sample apply_recipe(int64_t index, int64_t count, const LoadFn& load, const RecipeOptions& options, Rng& rng,
                    const std::function<void(int64_t, const std::exception&)>& on_partner_error) {
  const AugmentConfig& cfg = options.config;
  const BoxFilter filter = BoxFilter::from(cfg);
  const int64_t size = options.size;
  auto load_partner = [&](int64_t i) -> Sample {
    try {
      return load(i);
    } catch (const DataError& e) {
      if (on_partner_error) on_partner_error(i, e);
      Sample grey;
      grey.image = at::full({3, size, size}, kFillLevel, at::TensorOptions().dtype(at::kByte));
      grey.boxes = empty_boxes(grey.image);
      grey.labels = empty_labels(grey.image);
      return grey;
    }
  };
  // One geometric sample (mosaic or letterbox, then the random affine); `first` comes from `load_first`.
  auto geometric = [&](int64_t first, const std::function<Sample(int64_t)>& load_first) {
    if (options.mosaic && rng.chance(cfg.mosaic)) {
      std::array<Sample, 4> tiles;
      tiles[0] = load_first(first);
      for (int i = 1; i < 4; ++i) tiles[i] = load_partner(rng.below(count));
      const Sample m = mosaic(tiles, size, rng, filter);
      return warp_affine(m, random_affine(rng, cfg, 2 * size, 2 * size, size, size), size, size, filter, options.interp);
    }
    Sample s = load_first(first);
    if (rng.chance(cfg.crop)) s = random_crop(s, rng, cfg.crop_coverage, filter);
    const Sample boxed = letterbox(s, size, options.interp).sample;
    return warp_affine(boxed, random_affine(rng, cfg, size, size, size, size), size, size, filter, options.interp);
  };
  Sample out = geometric(index, load);
  if (rng.chance(cfg.mixup)) {
    const double ratio = rng.beta(32, 32);
    const int64_t other = rng.below(count);
    const Sample second = geometric(other, load_partner);
    out = mixup(out, second, ratio);
  }
  out = adjust_color(out, ColorJitter::random(rng, cfg));
  if (rng.chance(cfg.flipud)) out = flip_vertical(out);
  if (rng.chance(cfg.fliplr)) out = flip_horizontal(out);
  return out;
}

}  // namespace detkit::augment
