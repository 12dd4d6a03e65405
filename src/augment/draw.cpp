#include "augment/draw.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <utility>

namespace detkit::augment {

namespace {

// Column-major glyphs: byte i is column i, bit 0 the top row (the classic 5x7 LCD font).
struct Glyph {
  char c;
  std::array<uint8_t, 5> columns;
};
constexpr Glyph kGlyphs[] = {
    {' ', {0x00, 0x00, 0x00, 0x00, 0x00}}, {'?', {0x02, 0x01, 0x51, 0x09, 0x06}}, {'-', {0x08, 0x08, 0x08, 0x08, 0x08}},
    {'_', {0x40, 0x40, 0x40, 0x40, 0x40}}, {'.', {0x00, 0x60, 0x60, 0x00, 0x00}}, {':', {0x00, 0x36, 0x36, 0x00, 0x00}},
    {'/', {0x20, 0x10, 0x08, 0x04, 0x02}}, {'(', {0x00, 0x1C, 0x22, 0x41, 0x00}}, {')', {0x00, 0x41, 0x22, 0x1C, 0x00}},
    {'%', {0x23, 0x13, 0x08, 0x64, 0x62}}, {'0', {0x3E, 0x51, 0x49, 0x45, 0x3E}}, {'1', {0x00, 0x42, 0x7F, 0x40, 0x00}},
    {'2', {0x42, 0x61, 0x51, 0x49, 0x46}}, {'3', {0x21, 0x41, 0x45, 0x4B, 0x31}}, {'4', {0x18, 0x14, 0x12, 0x7F, 0x10}},
    {'5', {0x27, 0x45, 0x45, 0x45, 0x39}}, {'6', {0x3C, 0x4A, 0x49, 0x49, 0x30}}, {'7', {0x01, 0x71, 0x09, 0x05, 0x03}},
    {'8', {0x36, 0x49, 0x49, 0x49, 0x36}}, {'9', {0x06, 0x49, 0x49, 0x29, 0x1E}}, {'A', {0x7C, 0x12, 0x11, 0x12, 0x7C}},
    {'B', {0x7F, 0x49, 0x49, 0x49, 0x36}}, {'C', {0x3E, 0x41, 0x41, 0x41, 0x22}}, {'D', {0x7F, 0x41, 0x41, 0x22, 0x1C}},
    {'E', {0x7F, 0x49, 0x49, 0x49, 0x41}}, {'F', {0x7F, 0x09, 0x09, 0x09, 0x01}}, {'G', {0x3E, 0x41, 0x49, 0x49, 0x7A}},
    {'H', {0x7F, 0x08, 0x08, 0x08, 0x7F}}, {'I', {0x00, 0x41, 0x7F, 0x41, 0x00}}, {'J', {0x20, 0x40, 0x41, 0x3F, 0x01}},
    {'K', {0x7F, 0x08, 0x14, 0x22, 0x41}}, {'L', {0x7F, 0x40, 0x40, 0x40, 0x40}}, {'M', {0x7F, 0x02, 0x0C, 0x02, 0x7F}},
    {'N', {0x7F, 0x04, 0x08, 0x10, 0x7F}}, {'O', {0x3E, 0x41, 0x41, 0x41, 0x3E}}, {'P', {0x7F, 0x09, 0x09, 0x09, 0x06}},
    {'Q', {0x3E, 0x41, 0x51, 0x21, 0x5E}}, {'R', {0x7F, 0x09, 0x19, 0x29, 0x46}}, {'S', {0x46, 0x49, 0x49, 0x49, 0x31}},
    {'T', {0x01, 0x01, 0x7F, 0x01, 0x01}}, {'U', {0x3F, 0x40, 0x40, 0x40, 0x3F}}, {'V', {0x1F, 0x20, 0x40, 0x20, 0x1F}},
    {'W', {0x3F, 0x40, 0x38, 0x40, 0x3F}}, {'X', {0x63, 0x14, 0x08, 0x14, 0x63}}, {'Y', {0x07, 0x08, 0x70, 0x08, 0x07}},
    {'Z', {0x61, 0x51, 0x49, 0x45, 0x43}},
};

const std::array<uint8_t, 5>& glyph(char c) {
  const char upper = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const auto& g : kGlyphs)
    if (g.c == upper) return g.columns;
  return kGlyphs[1].columns;  // '?'
}

}  // namespace

int text_width(const std::string& text, int scale) {
  return text.empty() ? 0 : static_cast<int>(text.size()) * (kGlyphWidth + 1) * scale - scale;
}

void fill_rect(RgbImage& image, int x0, int y0, int x1, int y1, Rgb colour) {
  x0 = std::max(x0, 0), y0 = std::max(y0, 0), x1 = std::min(x1, image.width), y1 = std::min(y1, image.height);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) image.set(x, y, colour);
}

void draw_rect(RgbImage& image, int x0, int y0, int x1, int y1, Rgb colour, int thickness) {
  fill_rect(image, x0, y0, x1, y0 + thickness, colour);
  fill_rect(image, x0, y1 - thickness, x1, y1, colour);
  fill_rect(image, x0, y0, x0 + thickness, y1, colour);
  fill_rect(image, x1 - thickness, y0, x1, y1, colour);
}

void draw_line(RgbImage& image, double x0, double y0, double x1, double y1, Rgb colour, int thickness) {
  if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(x1) || !std::isfinite(y1)) return;
  // Clip to the image (plus the pen) first (Liang-Barsky), so a line far outside costs nothing.
  const double lo_x = -thickness, lo_y = -thickness, hi_x = image.width + thickness, hi_y = image.height + thickness;
  double t0 = 0, t1 = 1;
  const double dx = x1 - x0, dy = y1 - y0;
  for (const auto& [p, q] : {std::pair{-dx, x0 - lo_x}, std::pair{dx, hi_x - x0}, std::pair{-dy, y0 - lo_y},
                             std::pair{dy, hi_y - y0}}) {
    if (p == 0) {
      if (q < 0) return;  // parallel to this edge and outside it
      continue;
    }
    const double r = q / p;
    if (p < 0) t0 = std::max(t0, r);
    else t1 = std::min(t1, r);
    if (t0 > t1) return;
  }
  x1 = x0 + t1 * dx, y1 = y0 + t1 * dy;
  x0 = x0 + t0 * dx, y0 = y0 + t0 * dy;
  const int steps = std::max(1, static_cast<int>(std::ceil(std::max(std::fabs(x1 - x0), std::fabs(y1 - y0)))));
  const int half = thickness / 2;
  for (int i = 0; i <= steps; ++i) {
    const double t = static_cast<double>(i) / steps;
    const int x = static_cast<int>(std::lround(x0 + (x1 - x0) * t)) - half;
    const int y = static_cast<int>(std::lround(y0 + (y1 - y0) * t)) - half;
    fill_rect(image, x, y, x + thickness, y + thickness, colour);
  }
}

void draw_text(RgbImage& image, int x, int y, const std::string& text, Rgb colour, int scale) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto& columns = glyph(text[i]);
    const int gx = x + static_cast<int>(i) * (kGlyphWidth + 1) * scale;
    for (int cx = 0; cx < kGlyphWidth; ++cx)
      for (int cy = 0; cy < kGlyphHeight; ++cy)
        if (columns[static_cast<std::size_t>(cx)] & (1u << cy))
          fill_rect(image, gx + cx * scale, y + cy * scale, gx + (cx + 1) * scale, y + (cy + 1) * scale, colour);
  }
}

void draw_labelled_box(RgbImage& image, double x1, double y1, double x2, double y2, const std::string& label, Rgb colour) {
  // Box edges in continuous coordinates: the outline covers the pixels just inside them.
  const int ix0 = static_cast<int>(std::floor(x1)), iy0 = static_cast<int>(std::floor(y1));
  const int ix1 = static_cast<int>(std::ceil(x2)), iy1 = static_cast<int>(std::ceil(y2));
  draw_rect(image, ix0, iy0, ix1, iy1, colour, 1);
  if (label.empty()) return;
  const int w = text_width(label) + 2, h = kGlyphHeight + 2;
  const int ty = iy0 - h >= 0 ? iy0 - h : iy0;  // above the box, or inside it at the image's top edge
  const int tx = std::clamp(ix0, 0, std::max(0, image.width - w));
  fill_rect(image, tx, ty, tx + w, ty + h, colour);
  const double luma = 0.299 * colour.r + 0.587 * colour.g + 0.114 * colour.b;
  draw_text(image, tx + 1, ty + 1, label, luma > 140 ? Rgb{0, 0, 0} : Rgb{255, 255, 255});
}

Rgb class_colour(int64_t index) {
  // Hue steps of the golden ratio spread any number of classes far apart; full saturation, 90 % value.
  const double h = std::fmod(0.1 + 0.618033988749895 * static_cast<double>(index), 1.0) * 6.0;
  const double f = h - std::floor(h), v = 230.0;
  const auto q = static_cast<uint8_t>(v * (1 - f)), t = static_cast<uint8_t>(v * f), p = uint8_t{0}, V = static_cast<uint8_t>(v);
  switch (static_cast<int>(h)) {
    case 0: return {V, t, p};
    case 1: return {q, V, p};
    case 2: return {p, V, t};
    case 3: return {p, q, V};
    case 4: return {t, p, V};
    default: return {V, p, q};
  }
}

}  // namespace detkit::augment
