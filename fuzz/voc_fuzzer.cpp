// Fuzz target for the Pascal VOC XML parser: any text gives a record (with findings) or a DataError.
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
    detkit::parse_voc_xml_text(text, "fuzz.xml", findings);
  } catch (const detkit::DataError&) {
  }
  return 0;
}
