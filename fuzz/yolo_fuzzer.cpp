// Fuzz target for the YOLO label parser: any text gives boxes (with findings) or a DataError. The first
// byte picks the class count and whether the image size is known.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/formats_read.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool sized = (data[0] & 0x40) != 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<detkit::Finding> findings;
  try {
    detkit::parse_yolo_label_text(text, "fuzz.txt", sized ? 640 : 0, sized ? 480 : 0, findings);
  } catch (const detkit::DataError&) {
  }
  return 0;
}
