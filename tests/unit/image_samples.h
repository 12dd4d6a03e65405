// Encoded JPEG and PNG test images of every kind the decoder must handle, written directly with libjpeg and
// libpng (detkit's own encoders write only 8-bit RGB). Used by the image tests and by the fuzzers' seed
// corpus generator, so no binary files live in the repository.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/raster.h"

namespace detkit::samples {

// A deterministic, asymmetric test picture (gradients plus a marked top-left corner), so that any flip or
// turn changes it.
RgbImage pattern(int width, int height, int seed = 0);

enum class JpegColor { ycbcr, gray, rgb /* Adobe transform 0 */, cmyk, cmyk_adobe_inverted, ycck_adobe_inverted };

struct JpegSpec {
  int quality = 90;
  bool progressive = false;
  JpegColor color = JpegColor::ycbcr;
  int exif_orientation = 0;     // 1..8 writes an APP1 Exif segment; 0 writes none
  bool exif_big_endian = false; // "MM" TIFF byte order
  int restart_interval = 0;     // MCUs between restart markers
  bool subsample_420 = true;    // 4:2:0 chroma (libjpeg's default) or 4:4:4
};

// `image` as a JPEG. For the CMYK kinds the 4 samples are C = 255 - R, M = 255 - G, Y = 255 - B,
// K = (x * 7 + y * 3) % 64 (stored inverted for the *_adobe_inverted kinds, as Photoshop does).
std::string jpeg(const RgbImage& image, const JpegSpec& spec = {});

enum class PngColor { gray, gray_alpha, rgb, rgba, palette };

struct PngSpec {
  PngColor color = PngColor::rgb;
  int bit_depth = 8;          // 1, 2, 4 (gray, palette), 8, 16 (not palette)
  bool interlaced = false;    // Adam7
  bool trns = false;          // a tRNS chunk (palette: entry 0 transparent; gray/rgb: one colour)
  int exif_orientation = 0;   // 1..8 writes an eXIf chunk before IDAT
};

// `image` as a PNG of the given kind. Gray takes the R channel; alpha is (x * 255) / (width - 1);
// 16-bit samples are v * 257 + (x % 7) (so the low byte differs from the high one); palette images
// quantise R to 2^bit_depth levels with a gray palette.
std::string png(const RgbImage& image, const PngSpec& spec = {});

// What a correct decoder returns for png(image, spec) with alpha dropped and no orientation applied.
RgbImage png_expected(const RgbImage& image, const PngSpec& spec);

// A header-only JPEG that claims `width` x `height` and a PNG whose IHDR does (with a valid CRC), followed by
// a little image data: decompression bombs that must be refused before allocation.
std::string jpeg_claiming(int width, int height);
std::string png_claiming(uint32_t width, uint32_t height);

}  // namespace detkit::samples
