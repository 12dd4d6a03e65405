// Fuzz target for the image decoders (fuzz_jpeg, fuzz_png): decode_image_bytes and probe_image_bytes on
// arbitrary bytes must return or throw ImageError; never crash, hang, leak or touch memory they do not own.
// Any other exception escapes and libFuzzer reports it. DETKIT_FUZZ_ONLY=jpeg|png skips inputs of the other
// formats so the fuzzer spends its time on one decoder.
#include <cstddef>
#include <cstdint>

#include "data/image_io.h"

namespace {
constexpr detkit::ImageFormat only() {
#define DETKIT_STR2(x) #x
#define DETKIT_STR(x) DETKIT_STR2(x)
  constexpr char name[] = DETKIT_STR(DETKIT_FUZZ_ONLY);
  return name[0] == 'j' ? detkit::ImageFormat::jpeg : name[0] == 'p' ? detkit::ImageFormat::png : detkit::ImageFormat::unknown;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace detkit;
  if (only() != ImageFormat::unknown && detect_image_format(data, size) != only()) return -1;  // not kept
  // The last byte picks the options, so the fuzzer explores them too; mutating it changes only the options.
  const uint8_t pick = size ? data[size - 1] : 0;
  DecodeOptions options;
  options.max_pixels = 1 << 22;  // 4 megapixels: big enough for every code path, small enough to stay fast
  options.apply_orientation = (pick & 1) != 0;
  options.alpha = (pick & 2) ? AlphaMode::composite : AlphaMode::drop;
  if (pick & 4) {
    options.target_width = 1 + ((pick >> 3) & 7) * 9;
    options.target_height = 1 + ((pick >> 5) & 3) * 13;
    options.resize_to_target = (pick & 0x80) != 0;
  }
  ImageInfo probed;
  bool probe_ok = false;
  try {
    probed = probe_image_bytes(data, size, "fuzz.img");
    probe_ok = true;
  } catch (const ImageError&) {
  }
  try {
    const DecodedImage d = decode_image_bytes(data, size, options, "fuzz.img");
    // What a successful decode promises.
    if (d.image.width <= 0 || d.image.height <= 0 ||
        d.image.pixels.size() != static_cast<size_t>(d.image.width) * d.image.height * 3)
      __builtin_trap();
    // probe reads the same header: it must have succeeded and agree on the size and orientation.
    if (!probe_ok || probed.stored_width != d.info.stored_width || probed.stored_height != d.info.stored_height ||
        probed.orientation != d.info.orientation || probed.format != d.info.format)
      __builtin_trap();
    if (options.resize_to_target && (d.image.width != options.target_width || d.image.height != options.target_height))
      __builtin_trap();
    if (!options.resize_to_target && options.apply_orientation && d.scale_denominator == 1 &&
        (d.image.width != d.info.width || d.image.height != d.info.height))
      __builtin_trap();
  } catch (const ImageError&) {
  }
  return 0;
}
