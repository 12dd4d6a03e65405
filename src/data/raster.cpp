#include "data/raster.h"

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
