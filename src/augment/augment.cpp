#include "augment/augment.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

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

at::Tensor flip_boxes_horizontal(const at::Tensor& b, double w) {
  return at::stack({w - b.select(1, 2), b.select(1, 1), w - b.select(1, 0), b.select(1, 3)}, 1);
}
at::Tensor flip_boxes_vertical(const at::Tensor& b, double h) {
  return at::stack({b.select(1, 0), h - b.select(1, 3), b.select(1, 2), h - b.select(1, 1)}, 1);
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

void set_boxes(Sample& sample, const std::vector<float>& xyxy, const std::vector<int64_t>& labels) {
  DETKIT_ASSERT(xyxy.size() == 4 * labels.size(), "four coordinates per label");
  const auto n = static_cast<int64_t>(labels.size());
  sample.boxes = at::empty({n, 4}, at::kFloat);
  sample.labels = at::empty({n}, at::kLong);
  if (n == 0) return;
  std::memcpy(sample.boxes.data_ptr<float>(), xyxy.data(), xyxy.size() * sizeof(float));
  std::memcpy(sample.labels.data_ptr<int64_t>(), labels.data(), labels.size() * sizeof(int64_t));
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
    out.boxes = flip_boxes_horizontal(sample.boxes, static_cast<double>(sample.width()));
  }
  return out;
}

Sample flip_vertical(const Sample& sample) {
  Sample out = sample;
  out.image = sample.image.flip({1});
  if (sample.box_count() > 0) {
    out.boxes = flip_boxes_vertical(sample.boxes, static_cast<double>(sample.height()));
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

namespace {

// Where tile i (w x h) of a mosaic around (xc, yc) goes on the 2*size canvas: the canvas window
// [x1a, x2a) x [y1a, y2a), which shows the tile's pixels from (x1b, y1b) on. Empty when x2a <= x1a or y2a <= y1a.
struct TileWindow {
  int64_t x1a, y1a, x2a, y2a, x1b, y1b;
  bool empty() const { return x2a <= x1a || y2a <= y1a; }
};

TileWindow tile_window(int i, int64_t w, int64_t h, int64_t xc, int64_t yc, int64_t s2) {
  TileWindow t{};
  if (i == 0) {
    t.x1a = std::max<int64_t>(xc - w, 0), t.y1a = std::max<int64_t>(yc - h, 0), t.x2a = xc, t.y2a = yc;
    t.x1b = w - (t.x2a - t.x1a), t.y1b = h - (t.y2a - t.y1a);
  } else if (i == 1) {
    t.x1a = xc, t.y1a = std::max<int64_t>(yc - h, 0), t.x2a = std::min(xc + w, s2), t.y2a = yc;
    t.x1b = 0, t.y1b = h - (t.y2a - t.y1a);
  } else if (i == 2) {
    t.x1a = std::max<int64_t>(xc - w, 0), t.y1a = yc, t.x2a = xc, t.y2a = std::min(yc + h, s2);
    t.x1b = w - (t.x2a - t.x1a), t.y1b = 0;
  } else {
    t.x1a = xc, t.y1a = yc, t.x2a = std::min(xc + w, s2), t.y2a = std::min(yc + h, s2);
    t.x1b = 0, t.y1b = 0;
  }
  return t;
}

// The mosaic around a given centre (mosaic() draws it).
Sample mosaic_around(const std::array<Sample, 4>& tiles, int64_t size, int64_t xc, int64_t yc, const BoxFilter& filter) {
  const int64_t s2 = 2 * size;
  Sample out;
  out.image = at::full({3, s2, s2}, kFillLevel, tiles[0].image.options());
  std::vector<at::Tensor> boxes, labels;
  for (int i = 0; i < 4; ++i) {
    const Sample& t = tiles[i];
    const TileWindow a = tile_window(i, t.width(), t.height(), xc, yc, s2);
    if (a.empty()) continue;
    out.image.slice(1, a.y1a, a.y2a).slice(2, a.x1a, a.x2a)
        .copy_(t.image.slice(1, a.y1b, a.y1b + (a.y2a - a.y1a)).slice(2, a.x1b, a.x1b + (a.x2a - a.x1a)));
    if (t.box_count() == 0) continue;
    const float dx = static_cast<float>(a.x1a - a.x1b), dy = static_cast<float>(a.y1a - a.y1b);
    at::Tensor b = t.boxes + at::tensor({dx, dy, dx, dy}, t.boxes.options());
    at::Tensor l = t.labels;
    clip_and_filter(b, l, static_cast<double>(a.x1a), static_cast<double>(a.y1a), static_cast<double>(a.x2a),
                    static_cast<double>(a.y2a), box_area(b), filter);
    boxes.push_back(b);
    labels.push_back(l);
  }
  out.boxes = boxes.empty() ? empty_boxes(tiles[0].boxes) : at::cat(boxes, 0);
  out.labels = labels.empty() ? empty_labels(tiles[0].labels) : at::cat(labels, 0);
  return out;
}

}  // namespace

Sample mosaic(const std::array<Sample, 4>& tiles, int64_t size, Rng& rng, const BoxFilter& filter) {
  DETKIT_ASSERT(size > 0, "mosaic needs a positive size");
  const int64_t xc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * static_cast<double>(size));
  const int64_t yc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * static_cast<double>(size));
  return mosaic_around(tiles, size, xc, yc, filter);
}

// ---- The CPU fast path: mosaic tiles and letterboxes resampled once, in 8-bit fixed point -----------

// The integer loops below are compiled twice on x86-64 GCC/Clang, for AVX2 and the baseline, and the CPU
// picks at load time: AVX2 has 32-bit multiplies and twice the lanes (SSE2 has neither). Integer maths,
// so both give the same bytes.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__SANITIZE_ADDRESS__)
#define DETKIT_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DETKIT_VECTOR_CLONES
#endif

namespace {

bool cpu_uint8(const at::Tensor& image) {
  return image.defined() && image.device().is_cpu() && image.scalar_type() == at::kByte && image.dim() == 3 &&
         image.size(0) == 3 && image.size(1) > 0 && image.size(2) > 0;
}

bool axis_aligned(const Affine& map) { return map.m[1] == 0 && map.m[3] == 0 && map.m[0] > 0 && map.m[4] > 0; }

// The size of an image scaled so its longer side is `size` (at least 1 x 1): what the loader's load() gives.
std::pair<int64_t, int64_t> nominal_size(int64_t width, int64_t height, int64_t size) {
  const double r = static_cast<double>(size) / static_cast<double>(std::max(width, height));
  return {std::clamp<int64_t>(std::llround(static_cast<double>(width) * r), 1, size),
          std::clamp<int64_t>(std::llround(static_cast<double>(height) * r), 1, size)};
}

// Source taps along one axis for outputs j in [j0, j1): output j reads `count` consecutive source pixels
// from `first` with integer weights (11 fraction bits, summing to 2048). Output j's centre j + 0.5 maps to
// the source position u = (j + 0.5 - offset) * inv. Bilinear is LibTorch's (half-pixel centres, clamped at
// the edges; bit for bit data/raster.h's resize_linear), widened to a triangle whose support grows with
// the reduction when shrinking by more than 2 (PIL's antialiased bilinear, as resize() does); nearest is
// "nearest exact". `pairs`: every output has exactly two taps (the fast loop).
struct AxisTaps {
  std::vector<int32_t> first, count, weights;
  int stride = 0;
  int64_t lo = 0, hi = 0;  // the source pixels read: [lo, hi)
  bool pairs = false;
};

AxisTaps axis_taps(int64_t j0, int64_t j1, double offset, double inv, int64_t n, Interp interp) {
  AxisTaps t;
  const int64_t m = j1 - j0;
  const bool aa = interp == Interp::bilinear && inv > 2.0;
  t.stride = interp == Interp::nearest ? 1 : aa ? static_cast<int>(std::ceil(inv)) * 2 + 1 : 2;
  t.first.assign(static_cast<std::size_t>(m), 0);
  t.count.assign(static_cast<std::size_t>(m), 0);
  t.weights.assign(static_cast<std::size_t>(m) * t.stride, 0);
  t.pairs = interp == Interp::bilinear && !aa && n >= 2;
  std::vector<double> w(static_cast<std::size_t>(t.stride));
  for (int64_t i = 0; i < m; ++i) {
    const double u = (static_cast<double>(j0 + i) + 0.5 - offset) * inv;
    int32_t* wi = &t.weights[static_cast<std::size_t>(i) * t.stride];
    int64_t first = 0, count = 1;
    if (interp == Interp::nearest) {
      first = std::clamp<int64_t>(static_cast<int64_t>(std::floor(u)), 0, n - 1);
      wi[0] = 2048;
    } else if (!aa) {
      const double position = std::max(0.0, u - 0.5);
      const int64_t x0 = std::min(static_cast<int64_t>(position), n - 1);
      if (x0 + 1 < n) {
        first = x0, count = 2;
        const int w1 = static_cast<int>(std::lround((position - static_cast<double>(x0)) * 2048));
        wi[0] = 2048 - w1, wi[1] = w1;
      } else if (n >= 2) {  // clamped at the last pixel: all its weight, kept as a pair
        first = n - 2, count = 2;
        wi[0] = 0, wi[1] = 2048;
      } else {
        first = 0, wi[0] = 2048;
      }
    } else {
      const double support = inv;
      const int64_t lo = std::max<int64_t>(static_cast<int64_t>(u - support + 0.5), 0);
      const int64_t hi = std::min<int64_t>(static_cast<int64_t>(u + support + 0.5), n);
      double total = 0;
      count = std::clamp<int64_t>(hi - lo, 0, t.stride);
      for (int64_t k = 0; k < count; ++k) {
        const double d = std::abs((static_cast<double>(k + lo) - u + 0.5) / support);
        w[static_cast<std::size_t>(k)] = d < 1.0 ? 1.0 - d : 0.0;
        total += w[static_cast<std::size_t>(k)];
      }
      if (count <= 0 || total <= 0) {  // outside the image: the nearest edge pixel
        first = std::clamp<int64_t>(static_cast<int64_t>(std::floor(u)), 0, n - 1), count = 1;
        wi[0] = 2048;
      } else {
        first = lo;
        int sum = 0, largest = 0;
        for (int64_t k = 0; k < count; ++k) {
          wi[k] = static_cast<int32_t>(std::lround(w[static_cast<std::size_t>(k)] / total * 2048));
          sum += wi[k];
          if (wi[k] > wi[largest]) largest = static_cast<int>(k);
        }
        wi[largest] += 2048 - sum;
      }
    }
    t.first[static_cast<std::size_t>(i)] = static_cast<int32_t>(first);
    t.count[static_cast<std::size_t>(i)] = static_cast<int32_t>(count);
    t.lo = i == 0 ? first : std::min(t.lo, first);
    t.hi = i == 0 ? first + count : std::max(t.hi, first + count);
  }
  return t;
}

// Output pixels [j0, j1) x [i0, i1) of the planar uint8 image `dst` (out_w wide, out_h high) resampled from
// `src` ([3, H, W] uint8 on the CPU, any strides): output (j, i) reads the source around
// ((j + 0.5 - bx) * inv_x, (i + 0.5 - by) * inv_y). Separable, vertical pass first (each output row blends
// its source rows over the columns it needs, a contiguous run in an interleaved image), then horizontal;
// sums are exact integers (22 fraction bits) rounded once, so the order does not change the result.
DETKIT_VECTOR_CLONES void resample_into(const at::Tensor& src, uint8_t* dst, int64_t out_w, int64_t out_h, int64_t j0, int64_t j1, int64_t i0,
                   int64_t i1, double bx, double inv_x, double by, double inv_y, Interp interp) {
  const int64_t w = src.size(2), h = src.size(1);
  const AxisTaps tx = axis_taps(j0, j1, bx, inv_x, w, interp), ty = axis_taps(i0, i1, by, inv_y, h, interp);
  const int64_t nj = j1 - j0, ni = i1 - i0;
  const uint8_t* s = src.data_ptr<uint8_t>();
  const int64_t sc = src.stride(0), sy = src.stride(1), sx = src.stride(2);
  const int64_t c0 = tx.lo, span = tx.hi - tx.lo;  // source columns read
  const bool interleaved = sc == 1 && sx == 3;
  std::vector<int32_t> tmp(static_cast<std::size_t>(span * 3));
  const int64_t plane = out_h * out_w;
  const int32_t* first = tx.first.data();
  const int32_t* wx = tx.weights.data();
  for (int64_t i = 0; i < ni; ++i) {
    // Vertical: tmp[(x - c0) * 3 + c] = sum over taps of weight x source (11 fraction bits).
    const int64_t f = ty.first[static_cast<std::size_t>(i)];
    const int32_t cnt = ty.count[static_cast<std::size_t>(i)];
    const int32_t* wy = &ty.weights[static_cast<std::size_t>(i) * ty.stride];
    int32_t* t = tmp.data();
    if (interleaved) {
      const uint8_t* a = s + f * sy + c0 * 3;
      if (cnt == 2) {
        const uint8_t* b = a + sy;
        const int32_t w0 = wy[0], w1 = wy[1];
        for (int64_t k = 0; k < span * 3; ++k) t[k] = a[k] * w0 + b[k] * w1;
      } else {
        std::fill(t, t + span * 3, 0);
        for (int32_t r = 0; r < cnt; ++r) {
          const uint8_t* row = a + r * sy;
          const int32_t wr = wy[r];
          for (int64_t k = 0; k < span * 3; ++k) t[k] += row[k] * wr;
        }
      }
    } else if (sx == 1 && cnt == 2) {  // planar (a cached image at training size), two rows
      const int32_t w0 = wy[0], w1 = wy[1];
      for (int c = 0; c < 3; ++c) {
        const uint8_t* a = s + c * sc + f * sy + c0;
        const uint8_t* b = a + sy;
        for (int64_t x = 0; x < span; ++x) t[x * 3 + c] = a[x] * w0 + b[x] * w1;
      }
    } else {
      for (int64_t x = 0; x < span; ++x)
        for (int c = 0; c < 3; ++c) {
          const uint8_t* p = s + c * sc + f * sy + (c0 + x) * sx;
          int32_t acc = 0;
          for (int32_t r = 0; r < cnt; ++r) acc += p[r * sy] * wy[r];
          t[x * 3 + c] = acc;
        }
    }
    // Horizontal, rounded once to 8 bits, into the three planes.
    uint8_t* o0 = dst + (i0 + i) * out_w + j0;
    uint8_t* o1 = o0 + plane;
    uint8_t* o2 = o1 + plane;
    if (tx.pairs) {
      for (int64_t j = 0; j < nj; ++j) {
        const int32_t* q = t + (first[j] - c0) * 3;
        const int32_t w0 = wx[2 * j], w1 = wx[2 * j + 1];
        o0[j] = static_cast<uint8_t>((q[0] * w0 + q[3] * w1 + (1 << 21)) >> 22);
        o1[j] = static_cast<uint8_t>((q[1] * w0 + q[4] * w1 + (1 << 21)) >> 22);
        o2[j] = static_cast<uint8_t>((q[2] * w0 + q[5] * w1 + (1 << 21)) >> 22);
      }
    } else {
      for (int64_t j = 0; j < nj; ++j) {
        const int32_t* q = t + (first[j] - c0) * 3;
        const int32_t* wj = wx + j * tx.stride;
        int32_t r0 = 1 << 21, r1 = 1 << 21, r2 = 1 << 21;
        for (int32_t k = 0; k < tx.count[static_cast<std::size_t>(j)]; ++k, q += 3)
          r0 += q[0] * wj[k], r1 += q[1] * wj[k], r2 += q[2] * wj[k];
        o0[j] = static_cast<uint8_t>(r0 >> 22);
        o1[j] = static_cast<uint8_t>(r1 >> 22);
        o2[j] = static_cast<uint8_t>(r2 >> 22);
      }
    }
  }
}

// A tile of a composed image: its pixels scaled by (kx, ky) and shifted by (ox, oy) onto a canvas, where
// the window [wx0, wx1) x [wy0, wy1) shows them. inv_kx, inv_ky are 1/kx, 1/ky computed as source/target
// (so a plain resize is bit for bit resize_linear's). Boxes are clipped to the window and filtered there
// when `filter_at_window` (a mosaic's tiles), else only clipped.
struct Placement {
  const Sample* tile = nullptr;
  double kx = 1, ky = 1, inv_kx = 1, inv_ky = 1, ox = 0, oy = 0;
  double wx0 = 0, wy0 = 0, wx1 = 0, wy1 = 0;
  bool filter_at_window = false;
};

bool keep_box(double w, double h, double reference, const BoxFilter& filter) {
  return w > 0 && h > 0 && w >= filter.min_box_px && h >= filter.min_box_px && w * h >= reference * filter.min_visible;
}

// The canvas of `placements` mapped by the axis-aligned `map` into an out_w x out_h uint8 image, each
// output pixel read straight from its tile (the one whose window holds the pixel's centre; none: the fill
// grey). Boxes follow the same maps exactly and are clipped and filtered after the map, as warp_affine does.
Sample compose(const std::vector<Placement>& placements, const Affine& map, int64_t out_w, int64_t out_h,
               const BoxFilter& filter, Interp interp) {
  const double ax = map.m[0], bx = map.m[2], ay = map.m[4], by = map.m[5];
  Sample out;
  out.image = at::empty({3, out_h, out_w}, at::TensorOptions().dtype(at::kByte));
  uint8_t* dst = out.image.data_ptr<uint8_t>();
  std::memset(dst, kFillLevel, static_cast<std::size_t>(3 * out_h * out_w));
  std::vector<float> boxes;
  std::vector<int64_t> labels;
  for (const Placement& p : placements) {
    const Sample& t = *p.tile;
    // Pixels: the output columns and rows whose centres fall in the mapped window.
    const double lo_x = ax * p.wx0 + bx, hi_x = ax * p.wx1 + bx, lo_y = ay * p.wy0 + by, hi_y = ay * p.wy1 + by;
    auto first_centre = [](double edge, int64_t n) {
      return std::clamp<int64_t>(static_cast<int64_t>(std::ceil(edge - 0.5)), 0, n);
    };
    const int64_t j0 = first_centre(lo_x, out_w), j1 = first_centre(hi_x, out_w);
    const int64_t i0 = first_centre(lo_y, out_h), i1 = first_centre(hi_y, out_h);
    if (j1 > j0 && i1 > i0)
      resample_into(t.image, dst, out_w, out_h, j0, j1, i0, i1, ax * p.ox + bx, p.inv_kx / ax, ay * p.oy + by, p.inv_ky / ay,
                    interp);
    // Boxes: tile -> canvas (clipped to the window) -> output (clipped to the image).
    if (t.box_count() == 0) continue;
    const auto tb = t.boxes.to(at::kCPU, at::kFloat).contiguous();
    const auto tl = t.labels.to(at::kCPU, at::kLong).contiguous();
    const float* b = tb.data_ptr<float>();
    const int64_t* l = tl.data_ptr<int64_t>();
    for (int64_t k = 0; k < tb.size(0); ++k) {
      double x1 = b[4 * k] * p.kx + p.ox, y1 = b[4 * k + 1] * p.ky + p.oy;
      double x2 = b[4 * k + 2] * p.kx + p.ox, y2 = b[4 * k + 3] * p.ky + p.oy;
      const double reference = std::max(0.0, x2 - x1) * std::max(0.0, y2 - y1);
      x1 = std::clamp(x1, p.wx0, p.wx1), x2 = std::clamp(x2, p.wx0, p.wx1);
      y1 = std::clamp(y1, p.wy0, p.wy1), y2 = std::clamp(y2, p.wy0, p.wy1);
      if (p.filter_at_window ? !keep_box(x2 - x1, y2 - y1, reference, filter) : !(x2 > x1 && y2 > y1)) continue;
      double X1 = ax * x1 + bx, X2 = ax * x2 + bx, Y1 = ay * y1 + by, Y2 = ay * y2 + by;
      const double mapped = (X2 - X1) * (Y2 - Y1);
      const double W = static_cast<double>(out_w), H = static_cast<double>(out_h);
      X1 = std::clamp(X1, 0.0, W), X2 = std::clamp(X2, 0.0, W), Y1 = std::clamp(Y1, 0.0, H), Y2 = std::clamp(Y2, 0.0, H);
      if (!keep_box(X2 - X1, Y2 - Y1, mapped, filter)) continue;
      boxes.insert(boxes.end(), {static_cast<float>(X1), static_cast<float>(Y1), static_cast<float>(X2), static_cast<float>(Y2)});
      labels.push_back(l[k]);
    }
  }
  set_boxes(out, boxes, labels);
  return out;
}

// A placement of `tile` scaled to exactly tw x th at (x, y), shown in the window of its own extent.
Placement scaled_placement(const Sample& tile, int64_t tw, int64_t th, double x, double y) {
  Placement p;
  p.tile = &tile;
  const double w = static_cast<double>(tile.width()), h = static_cast<double>(tile.height());
  p.kx = static_cast<double>(tw) / w, p.ky = static_cast<double>(th) / h;
  p.inv_kx = w / static_cast<double>(tw), p.inv_ky = h / static_cast<double>(th);
  p.ox = x, p.oy = y;
  p.wx0 = x, p.wy0 = y, p.wx1 = x + static_cast<double>(tw), p.wy1 = y + static_cast<double>(th);
  return p;
}

// `tile` with its longer side `size` (unchanged when it already is).
Sample to_nominal(const Sample& tile, int64_t size, Interp interp) {
  const auto [tw, th] = nominal_size(tile.width(), tile.height(), size);
  if (tw == tile.width() && th == tile.height()) return tile;
  if (!cpu_uint8(tile.image)) return resize(tile, tw, th, interp);
  return compose({scaled_placement(tile, tw, th, 0, 0)}, Affine{}, tw, th, BoxFilter{0, 0}, interp);
}

}  // namespace

Sample mosaic_affine(const std::array<Sample, 4>& tiles, int64_t size, int64_t xc, int64_t yc, const Affine& map,
                     int64_t out_w, int64_t out_h, const BoxFilter& filter, Interp interp) {
  DETKIT_ASSERT(size > 0 && out_w > 0 && out_h > 0, "mosaic_affine needs positive sizes");
  bool fast = axis_aligned(map);
  for (const auto& t : tiles) fast = fast && cpu_uint8(t.image);
  if (!fast) {
    std::array<Sample, 4> scaled;
    for (int i = 0; i < 4; ++i) scaled[i] = to_nominal(tiles[i], size, interp);
    return warp_affine(mosaic_around(scaled, size, xc, yc, filter), map, out_w, out_h, filter, interp);
  }
  std::vector<Placement> placements;
  for (int i = 0; i < 4; ++i) {
    const auto [tw, th] = nominal_size(tiles[i].width(), tiles[i].height(), size);
    const TileWindow a = tile_window(i, tw, th, xc, yc, 2 * size);
    if (a.empty()) continue;
    Placement p = scaled_placement(tiles[i], tw, th, static_cast<double>(a.x1a - a.x1b), static_cast<double>(a.y1a - a.y1b));
    p.wx0 = static_cast<double>(a.x1a), p.wy0 = static_cast<double>(a.y1a);
    p.wx1 = static_cast<double>(a.x2a), p.wy1 = static_cast<double>(a.y2a);
    p.filter_at_window = true;
    placements.push_back(p);
  }
  return compose(placements, map, out_w, out_h, filter, interp);
}

Sample letterbox_affine(const Sample& sample, int64_t size, const Affine& map, int64_t out_w, int64_t out_h,
                        const BoxFilter& filter, Interp interp) {
  DETKIT_ASSERT(size > 0 && out_w > 0 && out_h > 0, "letterbox_affine needs positive sizes");
  if (!axis_aligned(map) || !cpu_uint8(sample.image))
    return warp_affine(letterbox(sample, size, interp).sample, map, out_w, out_h, filter, interp);
  // letterbox()'s geometry: longer side `size`, centred.
  const auto [nw, nh] = nominal_size(sample.width(), sample.height(), size);
  const Placement p = scaled_placement(sample, nw, nh, static_cast<double>((size - nw) / 2), static_cast<double>((size - nh) / 2));
  return compose({p}, map, out_w, out_h, filter, interp);
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

namespace {

using M3 = std::array<std::array<double, 3>, 3>;
constexpr double kLuma[3] = {0.299, 0.587, 0.114};

// The jitter's colour matrix before contrast (hue rotation, saturation, value).
M3 colour_matrix(const ColorJitter& j) {
  auto mul = [](const M3& a, const M3& b) {
    M3 r{};
    for (int i = 0; i < 3; ++i)
      for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 3; ++l) r[i][k] += a[i][l] * b[l][k];
    return r;
  };
  // Rotation by theta about the unit grey axis k = (1,1,1)/sqrt(3) (Rodrigues' formula).
  const double theta = 2 * kPi * j.hue, c = std::cos(theta), s = std::sin(theta) / std::sqrt(3.0), t = (1 - c) / 3;
  const M3 hue{{{c + t, t - s, t + s}, {t + s, c + t, t - s}, {t - s, t + s, c + t}}};
  M3 sat{};
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) sat[i][k] = (i == k ? j.saturation : 0.0) + (1 - j.saturation) * kLuma[k];
  M3 a = mul(sat, hue);
  for (auto& row : a)
    for (auto& v : row) v *= j.value;
  return a;
}

// Contrast scales around the mean luma of the colour-adjusted image, lᵀ A mean(x): folded into the matrix
// and the offset.
void apply_contrast(M3& a, double& offset, const ColorJitter& j, const double mean[3]) {
  if (j.contrast == 1) return;
  double m = 0;
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) m += kLuma[i] * a[i][k] * mean[k];
  offset += (1 - j.contrast) * m;
  for (auto& row : a)
    for (auto& v : row) v *= j.contrast;
}

bool is_identity(const ColorJitter& j) {
  return j.hue == 0 && j.saturation == 1 && j.value == 1 && j.contrast == 1 && j.brightness == 0;
}

// The colour step (and flips) on a uint8 CPU image in fixed point: each output level is
// round(A x + offset) with A in 14 fraction bits, saturated to 0..255, within a level of the float path.
// Returns an undefined tensor when the matrix is too large for 32-bit sums (never for sane recipes).
DETKIT_VECTOR_CLONES at::Tensor colour_u8(const at::Tensor& image, const ColorJitter& j, bool flip_v, bool flip_h) {
  const at::Tensor x = image.contiguous();
  const int64_t h = x.size(1), w = x.size(2), hw = h * w;
  const uint8_t* src = x.data_ptr<uint8_t>();
  M3 a = colour_matrix(j);
  double offset = 255.0 * j.brightness;
  if (j.contrast != 1) {
    double mean[3];
    for (int c = 0; c < 3; ++c) {
      uint64_t sum = 0;
      const uint8_t* p = src + c * hw;
      for (int64_t i = 0; i < hw; ++i) sum += p[i];
      mean[c] = static_cast<double>(sum) / static_cast<double>(std::max<int64_t>(hw, 1));
    }
    apply_contrast(a, offset, j, mean);
  }
  constexpr int kBits = 14;
  constexpr double kOne = 1 << kBits;
  int32_t m[9], o;
  for (int i = 0; i < 3; ++i) {
    double worst = std::abs(offset);
    for (int k = 0; k < 3; ++k) worst += std::abs(a[i][k]) * 255;
    if (worst > 60000) return {};  // 60000 levels x 2^14 stays below 2^31
    for (int k = 0; k < 3; ++k) m[3 * i + k] = static_cast<int32_t>(std::lround(a[i][k] * kOne));
  }
  o = static_cast<int32_t>(std::lround(offset * kOne)) + (1 << (kBits - 1));  // + a half: rounds to nearest
  at::Tensor out = at::empty({3, h, w}, x.options());
  uint8_t* dst = out.data_ptr<uint8_t>();
  std::vector<uint8_t> row(static_cast<std::size_t>(w));
  for (int c = 0; c < 3; ++c) {
    const int32_t m0 = m[3 * c], m1 = m[3 * c + 1], m2 = m[3 * c + 2];
    for (int64_t y = 0; y < h; ++y) {
      const uint8_t* r = src + y * w;
      const uint8_t* g = r + hw;
      const uint8_t* b = g + hw;
      uint8_t* d = dst + c * hw + (flip_v ? h - 1 - y : y) * w;
      uint8_t* t = flip_h ? row.data() : d;
      for (int64_t i = 0; i < w; ++i) {
        const int32_t v = (m0 * r[i] + m1 * g[i] + m2 * b[i] + o) >> kBits;
        t[i] = static_cast<uint8_t>(std::clamp(v, 0, 255));
      }
      if (flip_h) {  // reversed 8 bytes at a time
        int64_t i = 0;
        for (; i + 8 <= w; i += 8) {
          uint64_t v;
          std::memcpy(&v, t + i, 8);
          v = __builtin_bswap64(v);
          std::memcpy(d + w - 8 - i, &v, 8);
        }
        for (; i < w; ++i) d[w - 1 - i] = t[i];
      }
    }
  }
  return out;
}

}  // namespace

Sample adjust_color(const Sample& sample, const ColorJitter& j) {
  if (is_identity(j)) return sample;
  if (cpu_uint8(sample.image)) {
    const at::Tensor fast = colour_u8(sample.image, j, false, false);
    if (fast.defined()) {
      Sample out = sample;
      out.image = fast;
      return out;
    }
  }
  M3 a = colour_matrix(j);
  const auto x = as_float(sample.image).reshape({3, -1});
  double offset = 255.0 * j.brightness;
  if (j.contrast != 1) {
    const auto mean = x.mean(1).to(at::kCPU, at::kDouble).contiguous();
    apply_contrast(a, offset, j, mean.data_ptr<double>());
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
  // Loads may come at any size (the loader gives decoded images): the mosaic and the letterbox scale them
  // so their longer side is `size`, in the same resampling as the affine on the CPU fast path.
  auto geometric = [&](int64_t first, const std::function<Sample(int64_t)>& load_first) {
    if (options.mosaic && rng.chance(cfg.mosaic)) {
      std::array<Sample, 4> tiles;
      tiles[0] = load_first(first);
      for (int i = 1; i < 4; ++i) tiles[i] = load_partner(rng.below(count));
      // mosaic()'s centre, then the affine: the same draws in the same order as mosaic() + random_affine().
      const int64_t xc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * static_cast<double>(size));
      const int64_t yc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * static_cast<double>(size));
      const Affine map = random_affine(rng, cfg, 2 * size, 2 * size, size, size);
      return mosaic_affine(tiles, size, xc, yc, map, size, size, filter, options.interp);
    }
    Sample s = load_first(first);
    if (rng.chance(cfg.crop)) s = random_crop(s, rng, cfg.crop_coverage, filter);
    const Affine map = random_affine(rng, cfg, size, size, size, size);
    return letterbox_affine(s, size, map, size, size, filter, options.interp);
  };
  Sample out = geometric(index, load);
  if (rng.chance(cfg.mixup)) {
    const double ratio = rng.beta(32, 32);
    const int64_t other = rng.below(count);
    const Sample second = geometric(other, load_partner);
    out = mixup(out, second, ratio);
  }
  const ColorJitter jitter = ColorJitter::random(rng, cfg);
  const bool flip_v = rng.chance(cfg.flipud), flip_h = rng.chance(cfg.fliplr);
  // On the CPU, colour and flips are one pass over the uint8 image (the colour step is per pixel, and its
  // contrast uses the image mean, which flips do not change).
  if (cpu_uint8(out.image) && (flip_v || flip_h || !is_identity(jitter))) {
    const at::Tensor image = colour_u8(out.image, jitter, flip_v, flip_h);
    if (image.defined()) {
      if (out.box_count() > 0 && flip_v) out.boxes = flip_boxes_vertical(out.boxes, static_cast<double>(out.height()));
      if (out.box_count() > 0 && flip_h) out.boxes = flip_boxes_horizontal(out.boxes, static_cast<double>(out.width()));
      out.image = image;
      return out;
    }
  }
  out = adjust_color(out, jitter);
  if (flip_v) out = flip_vertical(out);
  if (flip_h) out = flip_horizontal(out);
  return out;
}

}  // namespace detkit::augment
