#include "data/exif.h"

#include <cstring>

namespace detkit {

namespace {

// Bounds-checked reads of a TIFF structure in its byte order.
struct TiffReader {
  const uint8_t* data;
  std::size_t size;
  bool little_endian;

  bool u16(std::size_t at, uint32_t& out) const {
    if (at > size || size - at < 2) return false;
    out = little_endian ? (data[at] | data[at + 1] << 8) : (data[at] << 8 | data[at + 1]);
    return true;
  }
  bool u32(std::size_t at, uint32_t& out) const {
    if (at > size || size - at < 4) return false;
    const uint8_t* p = data + at;
    out = little_endian ? (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24)
                        : (uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]));
    return true;
  }
};

constexpr uint32_t kOrientationTag = 0x0112;
constexpr uint32_t kTypeByte = 1, kTypeShort = 3, kTypeLong = 4;

}  // namespace

int exif_orientation(const uint8_t* data, std::size_t size) {
  if (data == nullptr) return 1;
  if (size >= 6 && std::memcmp(data, "Exif\0\0", 6) == 0) {
    data += 6;
    size -= 6;
  }
  if (size < 8) return 1;
  TiffReader tiff{data, size, true};
  if (std::memcmp(data, "II*\0", 4) == 0) {
    tiff.little_endian = true;
  } else if (std::memcmp(data, "MM\0*", 4) == 0) {
    tiff.little_endian = false;
  } else {
    return 1;
  }
  uint32_t ifd = 0, count = 0;
  if (!tiff.u32(4, ifd) || !tiff.u16(ifd, count)) return 1;
  // Each entry is 12 bytes: tag, type, count (u32), value or offset (4 bytes). Entries past the end of the
  // buffer end the search: a truncated IFD still yields the tags that are whole.
  for (uint32_t i = 0; i < count; ++i) {
    const std::size_t entry = static_cast<std::size_t>(ifd) + 2 + static_cast<std::size_t>(i) * 12;
    uint32_t tag = 0, type = 0, n = 0;
    if (!tiff.u16(entry, tag) || !tiff.u16(entry + 2, type) || !tiff.u32(entry + 4, n)) return 1;
    if (tag != kOrientationTag) continue;
    if (n < 1) return 1;
    uint32_t value = 0;
    if (type == kTypeShort) {
      if (!tiff.u16(entry + 8, value)) return 1;
    } else if (type == kTypeLong) {
      if (!tiff.u32(entry + 8, value)) return 1;
    } else if (type == kTypeByte) {
      if (entry + 8 >= size) return 1;
      value = data[entry + 8];
    } else {
      return 1;
    }
    return value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
  }
  return 1;
}

}  // namespace detkit
