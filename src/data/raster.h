// An 8-bit interleaved RGB image in memory, for the synthetic data generator and image writers.
// Torch-free (tensors come later, in the loader).
#pragma once

#include <cstdint>
#include <vector>

namespace detkit {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // row-major, 3 bytes per pixel

  RgbImage() = default;
  RgbImage(int w, int h) : width(w), height(h), pixels(static_cast<std::size_t>(w) * h * 3, 0) {}

  uint8_t* at(int x, int y) { return &pixels[(static_cast<std::size_t>(y) * width + x) * 3]; }
  const uint8_t* at(int x, int y) const { return &pixels[(static_cast<std::size_t>(y) * width + x) * 3]; }
  void set(int x, int y, Rgb c) {
    uint8_t* p = at(x, y);
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }
};

// The image turned 90 degrees clockwise (width and height swap).
RgbImage rotate_clockwise(const RgbImage& image);
// The image turned 90 degrees counter-clockwise.
RgbImage rotate_counter_clockwise(const RgbImage& image);

// The image as displayed for EXIF orientation `orientation` (1..8; anything else is taken as 1 and returns a
// copy): 2 mirror, 3 turn 180, 4 flip vertically, 5 transpose, 6 turn 90 clockwise, 7 transverse, 8 turn 90
// counter-clockwise; the same transforms as PIL's ImageOps.exif_transpose. Orientations 5..8 swap width
// and height.
RgbImage apply_orientation(const RgbImage& image, int orientation);

// `image` resized to `width` x `height` (both > 0) with a triangle (bilinear) filter whose support widens
// with the reduction factor, so downscaling averages every source pixel instead of skipping some: the
// filter of PIL's Image.resize(..., BILINEAR), within 1 level. Separable: horizontal pass, then vertical,
// each rounded to 8 bits as PIL does.
RgbImage resize_bilinear(const RgbImage& image, int width, int height);

// Plain bilinear resampling (two taps per axis, half-pixel centres: LibTorch's upsample_bilinear2d with
// align_corners=false), in 8-bit fixed point. For shrinking to no less than half size (or enlarging),
// where two taps miss no source pixel; several times faster than resize_bilinear. Within one grey level
// of LibTorch's float result. Needs width, height > 0.
RgbImage resize_linear(const RgbImage& image, int width, int height);

}  // namespace detkit
