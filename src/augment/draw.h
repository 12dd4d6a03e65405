// Drawing boxes and labels on RgbImage for previews (`detkit augment --preview`). Torch-free.
#pragma once

#include <string>

#include "data/raster.h"

namespace detkit::augment {

// A built-in 5x7 bitmap font (one pixel gap, so 6 pixels per character at scale 1): digits, A-Z, space and
// - _ . : / ( ) %; lower case is drawn as upper case and anything else as '?'. Enough to name classes
// without a font file.
inline constexpr int kGlyphWidth = 5, kGlyphHeight = 7;
int text_width(const std::string& text, int scale = 1);

// Draws `text` with its top-left corner at (x, y); pixels outside the image are skipped.
void draw_text(RgbImage& image, int x, int y, const std::string& text, Rgb colour, int scale = 1);
// Fills [x0, x1) x [y0, y1), clipped to the image.
void fill_rect(RgbImage& image, int x0, int y0, int x1, int y1, Rgb colour);
// The outline of [x0, x1) x [y0, y1), `thickness` pixels drawn inwards, clipped to the image.
void draw_rect(RgbImage& image, int x0, int y0, int x1, int y1, Rgb colour, int thickness = 1);
// A straight line from (x0, y0) to (x1, y1) drawn with a square pen `thickness` pixels wide; pixels outside
// the image are skipped, and a line with a non-finite end is not drawn.
void draw_line(RgbImage& image, double x0, double y0, double x1, double y1, Rgb colour, int thickness = 1);
// A box with its label above it (inside the image when there is no room above): the label's background
// is the box colour and its text black or white, whichever reads better on it.
void draw_labelled_box(RgbImage& image, double x1, double y1, double x2, double y2, const std::string& label, Rgb colour);
// A distinct, saturated colour for class `index` (golden-ratio hues).
Rgb class_colour(int64_t index);

}  // namespace detkit::augment
