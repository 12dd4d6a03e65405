// Fuzz target for the COCO JSON parser: any text gives a document (with findings) or a DataError.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/formats_read.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<detkit::Finding> findings;
  try {
    detkit::parse_coco_dataset_text(text, "fuzz.json", findings);
  } catch (const detkit::DataError&) {
  }
  return 0;
}
