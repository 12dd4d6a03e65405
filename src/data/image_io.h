// Reading JPEG and PNG images safely and fast. Torch-free.
//
// What it does
//   probe_image()   reads only the header: format, stored and displayed size, EXIF orientation, colour
//                   model. No pixels are decoded; a file costs one or two small reads. For `detkit check`.
//   decode_image()  decodes to 8-bit RGB (RgbImage) through libjpeg-turbo or libpng, with EXIF orientation
//                   applied and, for JPEG, DCT-domain downscaling when the caller asks for a small target.
//
// Guarantees (every function here)
//   - The format is taken from the magic bytes, never from the file name: a PNG called x.jpg decodes as
//     PNG, and ImageInfo::extension_mismatch says so.
//   - Bad input never crashes the process: every problem with the file is an ImageError (a DataError, exit
//     code 4) whose `where` is the file (or the name given for in-memory bytes) and whose problem() says
//     which of ImageProblem it is. A header claiming more pixels than DecodeOptions::max_pixels is refused
//     before any pixel memory is allocated.
//   - Thread-safe: no shared state; call from any number of threads.
//
// Decisions (each one documented where it is made, summarised here)
//   - Colour: grayscale becomes R=G=B; palette is expanded; 16-bit samples keep their high byte (as PIL
//     does for 16-bit colour PNGs); CMYK and YCCK JPEGs are converted with R = (255-C)(255-K)/255 (PIL's
//     formula), and are taken as inverted (as Photoshop writes them) when they carry an Adobe APP14 marker,
//     as plain otherwise. (PIL assumes inversion even without the marker; such files are rare.)
//   - Alpha is dropped by default (the colour values under it are kept), as PIL's convert("RGB") and
//     OpenCV's imread do, so a model sees what other tools show it. AlphaMode::composite blends over
//     DecodeOptions::background instead.
//   - A JPEG must reach its end-of-image marker and a PNG its IEND chunk: a file that ends early is
//     `truncated`, even when libjpeg would only warn ("Premature end of JPEG file") and fill the rest with
//     grey. A JPEG whose entropy-coded data is damaged (libjpeg's "premature end of data segment", a bad
//     Huffman code, a lost restart marker) is `corrupt`. Harmless warnings (extraneous bytes before a
//     marker, unknown JFIF versions) are tolerated and counted in DecodedImage::warnings.
//   - EXIF orientation comes from the first APP1 "Exif" segment of a JPEG, or the eXIf chunk of a PNG that
//     precedes the image data; a missing, malformed or out-of-range value means 1 (upright). The transform
//     for each of the 8 values equals PIL's ImageOps.exif_transpose.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "data/raster.h"

namespace detkit {

// What the magic bytes say the file is. Only jpeg and png are decoded; the others are recognised so that
// the error can say "this is a WebP image" instead of "unknown format".
enum class ImageFormat { unknown, jpeg, png, gif, bmp, webp, tiff, heif };
const char* image_format_name(ImageFormat format);  // "JPEG", "PNG", "GIF", ... "unknown"

// Why an image could not be read.
enum class ImageProblem {
  unreadable,      // missing, a directory, no permission, an I/O error
  empty,           // zero bytes
  unknown_format,  // the magic bytes are not an image format detkit knows
  unsupported,     // a known format or variant detkit does not decode (GIF, WebP, 12-bit JPEG, ...)
  corrupt,         // the data contradicts the format (bad header, bad marker, bad CRC, damaged data)
  truncated,       // the file ends before the image does
  too_large,       // the header claims more pixels than the limit (a decompression bomb, or just too big)
};
const char* image_problem_name(ImageProblem problem);  // "unreadable", "empty", ... as spelled above

// A DataError (exit code 4) that also says which ImageProblem it is, so `check` can group findings.
class ImageError : public DataError {
 public:
  ImageError(ImageProblem problem, ErrorInfo info) : DataError(std::move(info)), problem_(problem) {}
  ImageProblem problem() const { return problem_; }

 private:
  ImageProblem problem_;
};

// The default pixel limit: PIL's, where Image.open raises DecompressionBombError (2 * MAX_IMAGE_PIXELS,
// 178,956,970 pixels, about 13,377 x 13,377). At 3 bytes per pixel that is 512 MiB of RGB output.
inline constexpr uint64_t kDefaultMaxImagePixels = 178956970;

// How the stored samples are organised (JPEG: after libjpeg's reading of JFIF/Adobe markers).
enum class ColorModel { gray, gray_alpha, rgb, rgba, palette, ycbcr, cmyk, ycck };
const char* color_model_name(ColorModel model);  // "gray", "gray+alpha", "RGB", "RGBA", "palette", ...

struct ImageInfo {
  ImageFormat format = ImageFormat::unknown;
  int stored_width = 0;   // as in the file's header
  int stored_height = 0;
  int orientation = 1;    // EXIF orientation 1..8 (1 = upright, also when absent or invalid)
  int width = 0;          // as displayed: stored size with width/height swapped for orientations 5..8
  int height = 0;
  int channels = 0;       // samples per pixel in the file: 1 gray, 2 gray+alpha, 3 colour, 4 RGBA/CMYK/YCCK
                          // (a palette PNG counts 1; its tRNS transparency is not looked for)
  int bit_depth = 8;      // bits per sample: JPEG 8 (or 12, unsupported), PNG 1, 2, 4, 8 or 16
  ColorModel color = ColorModel::rgb;
  bool progressive = false;         // progressive JPEG, or Adam7-interlaced PNG
  bool extension_mismatch = false;  // the path's extension names another format (.jpg holding a PNG)
  // Only from probe_image: whether an end marker (JPEG EOI, PNG IEND) was seen within the last 4 KiB of the
  // file. false means the file is probably truncated, or carries data after its end (some phones append
  // a video to a JPEG): decode_image() tells which.
  bool end_marker_seen = false;
  uint64_t file_size = 0;

  uint64_t pixel_count() const { return static_cast<uint64_t>(stored_width) * static_cast<uint64_t>(stored_height); }
};

// Reads the header of the image at `path`: the first 64 KiB (more when the header is longer, as with
// large EXIF or ICC segments) and the last 4 KiB. Does not apply a pixel limit (see check_pixel_limit).
// Throws ImageError: unreadable, empty, unknown_format, unsupported (a recognised non-JPEG/PNG format),
// truncated (the file ends inside the header) or corrupt (an invalid header, a zero width or height).
// A file whose header is fine may still fail to decode: probe is a cheap filter, not a proof.
ImageInfo probe_image(const fs::path& path);
// The same for bytes in memory; `name` is the `where` of errors. end_marker_seen looks at the last 4 KiB.
ImageInfo probe_image_bytes(const void* data, std::size_t size, const std::string& name = "<memory>");

// Throws ImageError(too_large) naming `where`, the size and the limit when info's stored pixel count is
// above `max_pixels`. decode_image applies it; `check` can call it on probed headers.
void check_pixel_limit(const ImageInfo& info, uint64_t max_pixels, const std::string& where);

enum class AlphaMode {
  drop,       // keep the colour under the alpha as it is (PIL convert("RGB"), OpenCV imread)
  composite,  // blend over DecodeOptions::background
};

struct DecodeOptions {
  uint64_t max_pixels = kDefaultMaxImagePixels;  // larger stored images are refused before allocation
  bool apply_orientation = true;                 // turn/flip to the displayed orientation (EXIF 1..8)
  // Target size in displayed orientation; 0 = no constraint on that side, both 0 = full size.
  // For a JPEG, decoding uses the smallest DCT scale of 1/2, 1/4, 1/8 whose result still covers the target
  // (width >= target_width and height >= target_height); so it only takes effect when the target is at
  // most half the image. PNGs always decode at full size. The result is therefore at least the target
  // (or the full image, when that is smaller) and at most twice it, with the stored aspect ratio kept.
  int target_width = 0;
  int target_height = 0;
  // When true, the decoded image is then resized to exactly target_width x target_height (both must be
  // > 0) with resize_bilinear; the aspect ratio is the caller's business.
  bool resize_to_target = false;
  AlphaMode alpha = AlphaMode::drop;
  Rgb background{255, 255, 255};  // for AlphaMode::composite
};

struct DecodedImage {
  RgbImage image;            // 8-bit RGB, displayed orientation when options.apply_orientation
  ImageInfo info;            // of the file (end_marker_seen is not filled)
  int scale_denominator = 1; // the JPEG was decoded at 1/scale_denominator of its stored size (1, 2, 4, 8)
  int warnings = 0;          // tolerated libjpeg/libpng warnings (see "Decisions" above)
};

// Decodes the image at `path`. Needs: options.max_pixels > 0; target sizes >= 0, and both > 0 when
// resize_to_target. Throws UsageError for invalid options, ImageError for any problem with the file.
DecodedImage decode_image(const fs::path& path, const DecodeOptions& options = {});
// Decodes image bytes from memory; `name` is the `where` of errors (and decides extension_mismatch when
// it ends in an image extension).
DecodedImage decode_image_bytes(const void* data, std::size_t size, const DecodeOptions& options = {},
                                const std::string& name = "<memory>");

// The format named by the magic bytes at the start of `data` (unknown when none matches or `size` is short).
ImageFormat detect_image_format(const void* data, std::size_t size);
// The format a file name's extension suggests (unknown for other extensions); case-insensitive.
ImageFormat image_format_from_extension(const fs::path& path);

// The DCT scale denominator (1, 2, 4 or 8) decode_image uses for a `width` x `height` stored JPEG and a
// target in the same (stored) orientation: the largest d with ceil(width/d) >= target_width and
// ceil(height/d) >= target_height. Exposed for callers that map boxes and for the tests.
int jpeg_scale_denominator(int width, int height, int target_width, int target_height);

}  // namespace detkit
