#include "data/raster.h"

#include <algorithm>
#include <cmath>

namespace detkit {

RgbImage rotate_clockwise(const RgbImage& image) {
  RgbImage out(image.height, image.width);
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* s = image.at(x, y);
      uint8_t* d = out.at(image.height - 1 - y, x);
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
    }
  return out;
}

RgbImage rotate_counter_clockwise(const RgbImage& image) {
  RgbImage out(image.height, image.width);
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* s = image.at(x, y);
      uint8_t* d = out.at(y, image.width - 1 - x);
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
    }
  return out;
}

}  // namespace detkit

namespace detkit {

RgbImage apply_orientation(const RgbImage& image, int orientation) {
  if (orientation < 2 || orientation > 8) return image;
  const int w = image.width, h = image.height;
  const bool swap = orientation >= 5;
  RgbImage out(swap ? h : w, swap ? w : h);
  // Each output pixel (x, y) reads source (sx, sy) = (ax + bx*x + cx*y, ay + by*x + cy*y).
  int ax = 0, bx = 1, cx = 0, ay = 0, by = 0, cy = 1;
  switch (orientation) {
    case 2: ax = w - 1, bx = -1; break;                                  // mirror left-right
    case 3: ax = w - 1, bx = -1, ay = h - 1, cy = -1; break;             // turn 180
    case 4: ay = h - 1, cy = -1; break;                                  // flip top-bottom
    case 5: bx = 0, cx = 1, by = 1, cy = 0; break;                       // transpose
    case 6: bx = 0, cx = 1, ay = h - 1, by = -1, cy = 0; break;          // turn 90 clockwise
    case 7: ax = w - 1, bx = 0, cx = -1, ay = h - 1, by = -1, cy = 0; break;  // transverse
    case 8: ax = w - 1, bx = 0, cx = -1, by = 1, cy = 0; break;          // turn 90 counter-clockwise
  }
  for (int y = 0; y < out.height; ++y) {
    uint8_t* d = out.at(0, y);
    int sx = ax + cx * y, sy = ay + cy * y;
    for (int x = 0; x < out.width; ++x, d += 3, sx += bx, sy += by) {
      const uint8_t* s = image.at(sx, sy);
      d[0] = s[0];
      d[1] = s[1];
      d[2] = s[2];
    }
  }
  return out;
}

namespace {

// Normalised triangle-filter weights for resampling `in` samples to `out` along one axis, as PIL's
// precompute_coeffs: output sample i covers source positions around (i + 0.5) * scale.
struct Taps {
  std::vector<int> first, count;
  std::vector<double> weights;  // `stride` per output sample
  int stride = 0;
};

Taps triangle_taps(int in, int out) {
  const double scale = static_cast<double>(in) / out;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1.0 * filter_scale;  // the triangle's radius is 1 source pixel, widened by the scale
  Taps t;
  t.stride = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out);
  t.count.resize(out);
  t.weights.assign(static_cast<std::size_t>(out) * t.stride, 0.0);
  for (int i = 0; i < out; ++i) {
    const double center = (i + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in);
    double total = 0;
    double* w = &t.weights[static_cast<std::size_t>(i) * t.stride];
    for (int k = 0; k < hi - lo; ++k) {
      const double d = std::abs((k + lo - center + 0.5) / filter_scale);
      w[k] = d < 1.0 ? 1.0 - d : 0.0;
      total += w[k];
    }
    if (total > 0)
      for (int k = 0; k < hi - lo; ++k) w[k] /= total;
    t.first[i] = lo;
    t.count[i] = hi - lo;
  }
  return t;
}

uint8_t round_to_byte(double v) { return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }

}  // namespace

RgbImage resize_bilinear(const RgbImage& image, int width, int height) {
  if (width == image.width && height == image.height) return image;
  RgbImage horizontal = image;
  if (width != image.width) {
    const Taps t = triangle_taps(image.width, width);
    horizontal = RgbImage(width, image.height);
    for (int y = 0; y < image.height; ++y)
      for (int x = 0; x < width; ++x) {
        const double* w = &t.weights[static_cast<std::size_t>(x) * t.stride];
        const uint8_t* s = image.at(t.first[x], y);
        double r = 0, g = 0, b = 0;
        for (int k = 0; k < t.count[x]; ++k, s += 3) r += w[k] * s[0], g += w[k] * s[1], b += w[k] * s[2];
        uint8_t* d = horizontal.at(x, y);
        d[0] = round_to_byte(r), d[1] = round_to_byte(g), d[2] = round_to_byte(b);
      }
  }
  if (height == image.height) return horizontal;
  const Taps t = triangle_taps(image.height, height);
  RgbImage out(width, height);
  const std::size_t row = static_cast<std::size_t>(width) * 3;
  for (int y = 0; y < height; ++y) {
    const double* w = &t.weights[static_cast<std::size_t>(y) * t.stride];
    uint8_t* d = out.at(0, y);
    for (std::size_t i = 0; i < row; ++i) {
      const uint8_t* s = &horizontal.pixels[static_cast<std::size_t>(t.first[y]) * row + i];
      double v = 0;
      for (int k = 0; k < t.count[y]; ++k, s += row) v += w[k] * *s;
      d[i] = round_to_byte(v);
    }
  }
  return out;
}

namespace {

// Source positions and weights along one axis for resize_linear: output i reads source x0[i] and x1[i]
// with weight w1[i] / 2048 on x1 (half-pixel centres, clamped at the edges as LibTorch does).
struct LinearTaps {
  std::vector<int> x0, x1, w1;
};

LinearTaps linear_taps(int source, int target) {
  LinearTaps taps;
  const double scale = static_cast<double>(source) / target;
  for (int i = 0; i < target; ++i) {
    const double position = std::max(0.0, (i + 0.5) * scale - 0.5);
    const int x0 = std::min(static_cast<int>(position), source - 1);
    const int x1 = std::min(x0 + 1, source - 1);
    taps.x0.push_back(x0);
    taps.x1.push_back(x1);
    taps.w1.push_back(static_cast<int>(std::lround((position - x0) * 2048)));
  }
  return taps;
}

}  // namespace

RgbImage resize_linear(const RgbImage& image, int width, int height) {
  RgbImage out(width, height);
  if (image.width <= 0 || image.height <= 0) return out;
  const LinearTaps tx = linear_taps(image.width, width), ty = linear_taps(image.height, height);
  // Horizontal pass over the source rows the vertical pass needs, kept with 11 fraction bits.
  std::vector<int32_t> rows(static_cast<std::size_t>(image.height) * width * 3, 0);
  std::vector<char> needed(static_cast<std::size_t>(image.height), 0);
  for (int y = 0; y < height; ++y) needed[ty.x0[y]] = needed[ty.x1[y]] = 1;
  for (int sy = 0; sy < image.height; ++sy) {
    if (!needed[sy]) continue;
    const uint8_t* src = image.at(0, sy);
    int32_t* dst = &rows[static_cast<std::size_t>(sy) * width * 3];
    for (int x = 0; x < width; ++x) {
      const uint8_t* a = src + 3 * tx.x0[x];
      const uint8_t* b = src + 3 * tx.x1[x];
      const int w = tx.w1[x];
      for (int c = 0; c < 3; ++c) dst[3 * x + c] = a[c] * (2048 - w) + b[c] * w;
    }
  }
  for (int y = 0; y < height; ++y) {
    const int32_t* a = &rows[static_cast<std::size_t>(ty.x0[y]) * width * 3];
    const int32_t* b = &rows[static_cast<std::size_t>(ty.x1[y]) * width * 3];
    const int64_t w = ty.w1[y];
    uint8_t* dst = out.at(0, y);
    for (int k = 0; k < width * 3; ++k)
      dst[k] = static_cast<uint8_t>((a[k] * (2048 - w) + b[k] * w + (int64_t{1} << 21)) >> 22);
  }
  return out;
}

}  // namespace detkit
