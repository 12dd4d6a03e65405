// Encoding RGB images to JPEG (libjpeg-turbo) and PNG (libpng) in memory. Torch-free.
#pragma once

#include <string>

#include "data/raster.h"

namespace detkit {

// JPEG bytes at `quality` (1..100). When `exif_orientation` is 1..8 an EXIF APP1 segment with that
// Orientation tag is written, as phone cameras do (6 = the stored picture must be turned 90 degrees
// clockwise to display upright). Throws RunError if the encoder fails.
std::string encode_jpeg(const RgbImage& image, int quality, int exif_orientation = 0);

// PNG bytes (8-bit RGB, default compression). Throws RunError if the encoder fails.
std::string encode_png(const RgbImage& image);

}  // namespace detkit
