// The one EXIF field detkit needs: the Orientation tag (0x0112) of IFD0. Torch-free.
#pragma once

#include <cstddef>
#include <cstdint>

namespace detkit {

// The EXIF orientation 1..8 in `data`: either a JPEG APP1 payload that starts with "Exif\0\0", or a bare
// TIFF structure ("II*\0" little-endian or "MM\0*" big-endian) as a PNG eXIf chunk holds it.
// Returns 1 (upright) when the tag is absent, its value is outside 1..8, or the data is malformed in any
// way (offsets out of range, a short buffer, a wrong type); never reads outside [data, data + size).
// Accepts the value stored as SHORT (the standard), LONG or BYTE, as readers like PIL do.
int exif_orientation(const uint8_t* data, std::size_t size);

}  // namespace detkit
