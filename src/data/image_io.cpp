#include "data/image_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdio>  // before jpeglib.h, which uses FILE
#include <cstring>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "core/text.h"
#include "data/exif.h"

namespace detkit {

const char* image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::jpeg: return "JPEG";
    case ImageFormat::png: return "PNG";
    case ImageFormat::gif: return "GIF";
    case ImageFormat::bmp: return "BMP";
    case ImageFormat::webp: return "WebP";
    case ImageFormat::tiff: return "TIFF";
    case ImageFormat::heif: return "HEIF/AVIF";
    case ImageFormat::unknown: break;
  }
  return "unknown";
}

const char* image_problem_name(ImageProblem problem) {
  switch (problem) {
    case ImageProblem::unreadable: return "unreadable";
    case ImageProblem::empty: return "empty";
    case ImageProblem::unknown_format: return "unknown_format";
    case ImageProblem::unsupported: return "unsupported";
    case ImageProblem::corrupt: return "corrupt";
    case ImageProblem::truncated: return "truncated";
    case ImageProblem::too_large: return "too_large";
  }
  return "unreadable";
}

const char* color_model_name(ColorModel model) {
  switch (model) {
    case ColorModel::gray: return "gray";
    case ColorModel::gray_alpha: return "gray+alpha";
    case ColorModel::rgb: return "RGB";
    case ColorModel::rgba: return "RGBA";
    case ColorModel::palette: return "palette";
    case ColorModel::ycbcr: return "YCbCr";
    case ColorModel::cmyk: return "CMYK";
    case ColorModel::ycck: return "YCCK";
  }
  return "RGB";
}

ImageFormat detect_image_format(const void* data, std::size_t size) {
  const auto* b = static_cast<const uint8_t*>(data);
  auto starts = [&](std::size_t at, const char* magic, std::size_t n) {
    return size >= at + n && std::memcmp(b + at, magic, n) == 0;
  };
  if (starts(0, "\xFF\xD8\xFF", 3)) return ImageFormat::jpeg;
  if (starts(0, "\x89PNG\r\n\x1A\n", 8)) return ImageFormat::png;
  if (starts(0, "GIF87a", 6) || starts(0, "GIF89a", 6)) return ImageFormat::gif;
  if (starts(0, "RIFF", 4) && starts(8, "WEBP", 4)) return ImageFormat::webp;
  if (starts(0, "II*\0", 4) || starts(0, "MM\0*", 4)) return ImageFormat::tiff;
  if (starts(4, "ftyp", 4) && (starts(8, "heic", 4) || starts(8, "heix", 4) || starts(8, "mif1", 4) ||
                               starts(8, "msf1", 4) || starts(8, "avif", 4)))
    return ImageFormat::heif;
  if (starts(0, "BM", 2) && size >= 26) return ImageFormat::bmp;
  return ImageFormat::unknown;
}

ImageFormat image_format_from_extension(const fs::path& path) {
  const std::string ext = to_lower(path.extension().string());
  if (ext == ".jpg" || ext == ".jpeg" || ext == ".jpe" || ext == ".jfif") return ImageFormat::jpeg;
  if (ext == ".png") return ImageFormat::png;
  if (ext == ".gif") return ImageFormat::gif;
  if (ext == ".bmp" || ext == ".dib") return ImageFormat::bmp;
  if (ext == ".webp") return ImageFormat::webp;
  if (ext == ".tif" || ext == ".tiff") return ImageFormat::tiff;
  if (ext == ".heic" || ext == ".heif" || ext == ".avif") return ImageFormat::heif;
  return ImageFormat::unknown;
}

int jpeg_scale_denominator(int width, int height, int target_width, int target_height) {
  for (int d : {8, 4, 2}) {
    const int w = (width + d - 1) / d, h = (height + d - 1) / d;  // libjpeg rounds scaled sizes up
    if (w >= target_width && h >= target_height) return d;
  }
  return 1;
}

void check_pixel_limit(const ImageInfo& info, uint64_t max_pixels, const std::string& where) {
  if (info.pixel_count() <= max_pixels) return;
  throw ImageError(ImageProblem::too_large,
                   {cat("image too large: the header claims ", info.stored_width, "x", info.stored_height, " = ",
                        info.pixel_count(), " pixels, above the limit of ", max_pixels),
                    "a header this large is either a decompression bomb (a small file that would expand to "
                    "gigabytes) or an image far bigger than a detector needs",
                    "downscale the image before training, or raise the pixel limit if the image is genuine",
                    where});
}

namespace {

// ---------------------------------------------------------------------------------------------------------
// Errors

[[noreturn]] void fail(ImageProblem problem, const std::string& where, std::string what, std::string why = {}) {
  std::string remedy;
  switch (problem) {
    case ImageProblem::unreadable: remedy = "check that the file exists and can be read"; break;
    case ImageProblem::empty: remedy = "re-export or re-download the image, or remove it from the dataset"; break;
    case ImageProblem::unknown_format:
    case ImageProblem::unsupported: remedy = "convert the image to JPEG or PNG (e.g. with ImageMagick: convert IN OUT.png)"; break;
    case ImageProblem::corrupt: remedy = "re-export or re-download the image, or remove it from the dataset"; break;
    case ImageProblem::truncated: remedy = "the file was cut short (an interrupted copy or download): copy it again from the source, or remove it"; break;
    case ImageProblem::too_large: remedy = "downscale the image, or raise the pixel limit"; break;
  }
  throw ImageError(problem, {std::move(what), std::move(why), std::move(remedy), where});
}

[[noreturn]] void fail_format(ImageFormat format, const uint8_t* data, std::size_t size, const std::string& where) {
  if (format != ImageFormat::unknown)
    fail(ImageProblem::unsupported, where, cat("unsupported image format: this is a ", image_format_name(format), " image"),
         "detkit decodes JPEG and PNG");
  std::string head;
  for (std::size_t i = 0; i < std::min<std::size_t>(size, 8); ++i) head += cat(i ? " " : "", std::hex, int(data[i]) >> 4, int(data[i]) & 15);
  fail(ImageProblem::unknown_format, where, "not an image: the first bytes are not JPEG or PNG",
       cat("the file starts with bytes ", head));
}

void set_extension_mismatch(ImageInfo& info, const std::string& name) {
  const ImageFormat by_name = image_format_from_extension(fs::path(name));
  info.extension_mismatch = by_name != ImageFormat::unknown && by_name != info.format;
}

void finish_info(ImageInfo& info, const std::string& where) {
  if (info.stored_width <= 0 || info.stored_height <= 0)
    fail(ImageProblem::corrupt, where, cat("invalid image header: size ", info.stored_width, "x", info.stored_height));
  const bool swap = info.orientation >= 5;
  info.width = swap ? info.stored_height : info.stored_width;
  info.height = swap ? info.stored_width : info.stored_height;
}

// ---------------------------------------------------------------------------------------------------------
// Header scanners, shared by probe (a prefix of the file) and decode (the whole file), so both read the same
// orientation from the same bytes.

enum class Scan { ok, need_more, corrupt, unsupported };

struct HeaderScan {
  Scan result = Scan::need_more;
  std::string why;          // for corrupt / unsupported
  std::size_t header_end = 0;  // offset just after the last byte the scan needed (JPEG: the SOS segment)
  std::size_t junk = 0;        // JPEG: bytes between segments that are not markers (libjpeg skips them)
};

uint32_t be16(const uint8_t* p) { return uint32_t(p[0]) << 8 | p[1]; }
uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// Walks JPEG marker segments from SOI to the first SOS, the part of the file libjpeg's jpeg_read_header reads.
HeaderScan scan_jpeg(const uint8_t* data, std::size_t size, ImageInfo& info) {
  HeaderScan scan;
  bool have_sof = false, have_exif = false, jfif = false;
  int adobe_transform = -1;
  int component_ids[4] = {0, 0, 0, 0};
  std::size_t at = 2;  // after SOI
  while (true) {
    // Markers are 0xFF then a code; any number of 0xFF fill bytes may come first. Other bytes between
    // segments (and FF 00) are skipped, as libjpeg's next_marker does (it warns "extraneous bytes").
    while (at < size && data[at] != 0xFF) ++at, ++scan.junk;
    while (at < size && data[at] == 0xFF) ++at;
    if (at >= size) return scan;
    const int marker = data[at++];
    if (marker == 0x00) {
      scan.junk += 2;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // TEM, RSTn: no length
    if (marker == 0xD8 || marker == 0xD9) {
      scan.result = Scan::corrupt;
      scan.why = marker == 0xD9 ? "the image ends (EOI) before any image data" : cat("unexpected marker 0x", std::hex, marker);
      return scan;
    }
    if (at + 2 > size) return scan;
    const std::size_t length = be16(data + at);
    if (length < 2) {
      scan.result = Scan::corrupt;
      scan.why = cat("marker segment 0x", std::hex, marker, std::dec, " has an invalid length ", length);
      return scan;
    }
    if (at + length > size) return scan;
    const uint8_t* seg = data + at + 2;
    const std::size_t seg_size = length - 2;
    if (marker == 0xE1 && !have_exif && seg_size >= 6 && std::memcmp(seg, "Exif\0\0", 6) == 0) {
      have_exif = true;
      info.orientation = exif_orientation(seg, seg_size);
    } else if (marker == 0xE0 && seg_size >= 5 && std::memcmp(seg, "JFIF\0", 5) == 0) {
      jfif = true;
    } else if (marker == 0xEE && seg_size >= 12 && std::memcmp(seg, "Adobe", 5) == 0) {
      adobe_transform = seg[11];
    } else if ((marker >= 0xC0 && marker <= 0xCF) && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
      if (have_sof || seg_size < 6) {
        scan.result = Scan::corrupt;
        scan.why = have_sof ? "two frame headers (SOF)" : "short frame header (SOF)";
        return scan;
      }
      have_sof = true;
      info.bit_depth = seg[0];
      info.stored_height = static_cast<int>(be16(seg + 1));
      info.stored_width = static_cast<int>(be16(seg + 3));
      info.channels = seg[5];
      info.progressive = marker == 0xC2 || marker == 0xC6 || marker == 0xCA || marker == 0xCE;
      if (seg_size < 6 + 3u * info.channels || info.channels == 0) {
        scan.result = Scan::corrupt;
        scan.why = cat("frame header (SOF) with ", info.channels, " components is too short");
        return scan;
      }
      for (int c = 0; c < std::min(info.channels, 4); ++c) component_ids[c] = seg[6 + 3 * c];
      if (marker == 0xC3 || marker == 0xC7 || marker == 0xCB || marker == 0xCF) {
        scan.result = Scan::unsupported;
        scan.why = "lossless JPEG";
        return scan;
      }
      if (info.stored_height == 0) {  // the height would come from a DNL marker, which libjpeg does not support
        scan.result = Scan::unsupported;
        scan.why = "the image height is given by a DNL marker";
        return scan;
      }
    } else if (marker == 0xDA) {
      scan.header_end = at + length;
      if (!have_sof) {
        scan.result = Scan::corrupt;
        scan.why = "image data (SOS) before the frame header (SOF)";
        return scan;
      }
      break;
    }
    at += length;
  }
  // The colour space, decided as libjpeg's default_decompress_parms does.
  switch (info.channels) {
    case 1: info.color = ColorModel::gray; break;
    case 3:
      if (jfif) info.color = ColorModel::ycbcr;
      else if (adobe_transform >= 0) info.color = adobe_transform == 0 ? ColorModel::rgb : ColorModel::ycbcr;
      else if (component_ids[0] == 'R' && component_ids[1] == 'G' && component_ids[2] == 'B') info.color = ColorModel::rgb;
      else info.color = ColorModel::ycbcr;
      break;
    case 4: info.color = adobe_transform == 2 ? ColorModel::ycck : ColorModel::cmyk; break;
    default:
      scan.result = Scan::unsupported;
      scan.why = cat("a JPEG with ", info.channels, " components");
      return scan;
  }
  if (info.bit_depth != 8) {
    scan.result = Scan::unsupported;
    scan.why = cat(info.bit_depth, "-bit JPEG samples (libjpeg-turbo here decodes 8-bit)");
    return scan;
  }
  scan.result = Scan::ok;
  return scan;
}

// Walks PNG chunks from IHDR up to the first IDAT: size, colour type, interlacing, eXIf orientation.
HeaderScan scan_png(const uint8_t* data, std::size_t size, ImageInfo& info) {
  HeaderScan scan;
  std::size_t at = 8;
  bool have_ihdr = false, have_exif = false;
  while (true) {
    if (at + 8 > size) return scan;
    const std::size_t length = be32(data + at);
    const uint8_t* type = data + at + 4;
    if (length > 0x7FFFFFFFu) {
      scan.result = Scan::corrupt;
      scan.why = "a chunk length above 2^31";
      return scan;
    }
    if (!have_ihdr) {
      if (std::memcmp(type, "IHDR", 4) != 0 || length != 13) {
        scan.result = Scan::corrupt;
        scan.why = "the first chunk is not a 13-byte IHDR";
        return scan;
      }
    }
    if (std::memcmp(type, "IDAT", 4) == 0) {
      scan.header_end = at + 8;
      break;
    }
    if (at + 12 + length > size) return scan;
    const uint8_t* body = data + at + 8;
    if (std::memcmp(type, "IHDR", 4) == 0) {
      if (have_ihdr) {
        scan.result = Scan::corrupt;
        scan.why = "two IHDR chunks";
        return scan;
      }
      have_ihdr = true;
      const uint32_t w = be32(body), h = be32(body + 4);
      if (w > 0x7FFFFFFFu || h > 0x7FFFFFFFu) {
        scan.result = Scan::corrupt;
        scan.why = "width or height above 2^31";
        return scan;
      }
      info.stored_width = static_cast<int>(w);
      info.stored_height = static_cast<int>(h);
      info.bit_depth = body[8];
      const int color_type = body[9];
      info.progressive = body[12] == 1;
      switch (color_type) {
        case 0: info.color = ColorModel::gray, info.channels = 1; break;
        case 2: info.color = ColorModel::rgb, info.channels = 3; break;
        case 3: info.color = ColorModel::palette, info.channels = 1; break;
        case 4: info.color = ColorModel::gray_alpha, info.channels = 2; break;
        case 6: info.color = ColorModel::rgba, info.channels = 4; break;
        default:
          scan.result = Scan::corrupt;
          scan.why = cat("invalid colour type ", color_type);
          return scan;
      }
      const int d = info.bit_depth;
      const bool depth_ok = color_type == 0   ? (d == 1 || d == 2 || d == 4 || d == 8 || d == 16)
                            : color_type == 3 ? (d == 1 || d == 2 || d == 4 || d == 8)
                                              : (d == 8 || d == 16);
      if (!depth_ok) {
        scan.result = Scan::corrupt;
        scan.why = cat("invalid bit depth ", d, " for colour type ", color_type);
        return scan;
      }
    } else if (std::memcmp(type, "eXIf", 4) == 0 && !have_exif) {
      have_exif = true;
      info.orientation = exif_orientation(body, length);
    } else if (std::memcmp(type, "IEND", 4) == 0) {
      scan.result = Scan::corrupt;
      scan.why = "the image ends (IEND) before any image data";
      return scan;
    }
    at += 12 + length;
  }
  scan.result = Scan::ok;
  return scan;
}

// Scans the header of a JPEG or PNG held (wholly or as a prefix) in memory. `complete` says whether
// `size` is the whole file: if so a header that runs past the end is truncation, else the caller must
// read more (returned as Scan::need_more).
Scan scan_header(const uint8_t* data, std::size_t size, bool complete, const std::string& where, ImageInfo& info,
                 HeaderScan* facts = nullptr) {
  info.format = detect_image_format(data, size);
  if (info.format != ImageFormat::jpeg && info.format != ImageFormat::png) {
    if (!complete && size < 32) return Scan::need_more;
    fail_format(info.format, data, size, where);
  }
  const HeaderScan scan = info.format == ImageFormat::jpeg ? scan_jpeg(data, size, info) : scan_png(data, size, info);
  switch (scan.result) {
    case Scan::ok: break;
    case Scan::need_more:
      if (!complete) return Scan::need_more;
      // Junk between the segments means the bytes are damaged, and the end was reached by skipping it.
      if (scan.junk > 0)
        fail(ImageProblem::corrupt, where, "corrupt JPEG header",
             cat(scan.junk, " bytes between marker segments are not markers, and no image data follows"));
      fail(ImageProblem::truncated, where, cat("truncated ", image_format_name(info.format), ": the file ends inside its header"),
           cat("the file has only ", size, " bytes"));
    case Scan::corrupt:
      fail(ImageProblem::corrupt, where, cat("corrupt ", image_format_name(info.format), " header"), scan.why);
    case Scan::unsupported:
      fail(ImageProblem::unsupported, where, cat("unsupported ", image_format_name(info.format), " variant: ", scan.why),
           "detkit decodes baseline and progressive 8-bit JPEG, and every standard PNG");
  }
  finish_info(info, where);
  if (facts) *facts = scan;
  return Scan::ok;
}

bool find_end_marker(ImageFormat format, const uint8_t* tail, std::size_t n) {
  // In JPEG entropy-coded data a 0xFF byte is always followed by 0x00 or a restart code, so FF D9 past
  // the header is the end-of-image marker. PNG: the 8 bytes of IEND's type and CRC.
  static const uint8_t eoi[] = {0xFF, 0xD9};
  static const uint8_t iend[] = {'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
  const uint8_t* needle = format == ImageFormat::jpeg ? eoi : iend;
  const std::size_t k = format == ImageFormat::jpeg ? sizeof eoi : sizeof iend;
  return n >= k && std::search(tail, tail + n, needle, needle + k) != tail + n;
}

// ---------------------------------------------------------------------------------------------------------
// File access

struct File {
  int fd = -1;
  ~File() {
    if (fd >= 0) ::close(fd);
  }
};

[[noreturn]] void fail_os(const fs::path& path, const char* action, int err) {
  std::error_code ec;
  if (err == ENOENT) fail(ImageProblem::unreadable, path.string(), "image file not found");
  if (err == EISDIR || fs::is_directory(path, ec))
    fail(ImageProblem::unreadable, path.string(), "expected an image file but found a directory");
  fail(ImageProblem::unreadable, path.string(), cat("cannot ", action, " the image file"), std::strerror(err));
}

uint64_t open_file(const fs::path& path, File& file) {
  file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0) fail_os(path, "open", errno);
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) fail_os(path, "stat", errno);
  if (S_ISDIR(st.st_mode)) fail_os(path, "read", EISDIR);
  if (!S_ISREG(st.st_mode)) fail(ImageProblem::unreadable, path.string(), "not a regular file");
  if (st.st_size == 0) fail(ImageProblem::empty, path.string(), "empty image file (0 bytes)");
  return static_cast<uint64_t>(st.st_size);
}

// Reads `n` bytes at `offset` into `out`; returns how many were read (less only at the end of the file).
std::size_t read_at(const fs::path& path, const File& file, uint64_t offset, std::size_t n, uint8_t* out) {
  std::size_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(file.fd, out + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      fail_os(path, "read", errno);
    }
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  return done;
}

// ---------------------------------------------------------------------------------------------------------
// JPEG decoding

// libjpeg warnings that mean pixels are missing or wrong. libjpeg only warns for these and fills the gap
// with grey; detkit refuses the image instead, because training on half-grey pictures is silent damage.
bool jpeg_warning_is_fatal(int code, ImageProblem& problem) {
  switch (code) {
    case JWRN_JPEG_EOF:  // the data ran out: libjpeg inserted a fake EOI
      problem = ImageProblem::truncated;
      return true;
    case JWRN_HIT_MARKER:       // "premature end of data segment": a scan's data stops early
    case JWRN_MUST_RESYNC:      // a restart marker was lost
    case JWRN_HUFF_BAD_CODE:    // undecodable entropy-coded data
    case JWRN_ARITH_BAD_CODE:
    case JWRN_BOGUS_PROGRESSION:  // a progressive scan refines data never sent
    case JWRN_NOT_SEQUENTIAL:
      problem = ImageProblem::corrupt;
      return true;
    default:
      return false;
  }
}

struct JpegErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  ImageProblem problem = ImageProblem::corrupt;
  int tolerated = 0;
};

void jpeg_on_error(j_common_ptr cinfo) {
  auto* m = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, m->message);
  const int code = cinfo->err->msg_code;
  // Arithmetic coding's message codes differ between libjpeg flavours (some lack them): recognise the
  // failure by its text ("Sorry, arithmetic code not supported", "Arithmetic table 0x.. was not defined").
  const bool arithmetic = std::strstr(m->message, "rithmetic") != nullptr;
  m->problem = code == JERR_BAD_PRECISION || code == JERR_CONVERSION_NOTIMPL || code == JERR_NOT_COMPILED || arithmetic
                   ? ImageProblem::unsupported
               : code == JERR_OUT_OF_MEMORY ? ImageProblem::too_large
               : code == JERR_INPUT_EMPTY || code == JERR_INPUT_EOF ? ImageProblem::truncated
                                                                    : ImageProblem::corrupt;
  std::longjmp(m->jump, 1);
}

void jpeg_on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  auto* m = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  if (jpeg_warning_is_fatal(cinfo->err->msg_code, m->problem)) {
    (*cinfo->err->format_message)(cinfo, m->message);
    std::longjmp(m->jump, 1);
  }
  ++m->tolerated;
}

// Progressive JPEGs can hold thousands of tiny scans that each cost a pass over the image: a 100 KB file
// that takes minutes (libjpeg-turbo's djpeg -maxscan guards the same way). Real encoders write at most
// about a dozen scans per component.
constexpr int kMaxJpegScans = 500;

struct JpegProgress {
  jpeg_progress_mgr base;
  JpegErrorManager* errors;
};

void jpeg_on_progress(j_common_ptr cinfo) {
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->is_decompressor && d->input_scan_number > kMaxJpegScans) {
    auto* p = reinterpret_cast<JpegProgress*>(cinfo->progress);
    std::snprintf(p->errors->message, sizeof p->errors->message, "more than %d progressive scans", kMaxJpegScans);
    p->errors->problem = ImageProblem::corrupt;
    std::longjmp(p->errors->jump, 1);
  }
}

// CMYK to RGB as PIL's cmyk2rgb: R = (255 - C) * (255 - K) / 255, rounded. `inverted` (Adobe files, as
// Photoshop writes them) stores 255 - C etc., which turns the formula into C' * K' / 255.
inline uint8_t mul_div_255(unsigned a, unsigned b) {
  const unsigned t = a * b + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

void cmyk_row_to_rgb(const uint8_t* in, uint8_t* out, int width, bool inverted) {
  for (int x = 0; x < width; ++x, in += 4, out += 3) {
    if (inverted) {
      out[0] = mul_div_255(in[0], in[3]);
      out[1] = mul_div_255(in[1], in[3]);
      out[2] = mul_div_255(in[2], in[3]);
    } else {
      const unsigned k = 255u - in[3];
      out[0] = mul_div_255(255u - in[0], k);
      out[1] = mul_div_255(255u - in[1], k);
      out[2] = mul_div_255(255u - in[2], k);
    }
  }
}

// Everything the setjmp frame touches after a longjmp must live outside it (no locals with destructors
// between setjmp and longjmp): this struct is owned by the caller.
struct JpegJob {
  jpeg_decompress_struct cinfo{};
  JpegErrorManager errors{};
  JpegProgress progress{};
  std::vector<uint8_t> cmyk_rows;
  std::vector<JSAMPROW> rows;
  bool created = false;
  ~JpegJob() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

void decode_jpeg(const uint8_t* data, std::size_t size, const DecodeOptions& options, const std::string& where,
                 std::size_t header_junk, DecodedImage& out) {
  JpegJob job;
  job.cinfo.err = jpeg_std_error(&job.errors.base);
  job.errors.base.error_exit = jpeg_on_error;
  job.errors.base.emit_message = jpeg_on_message;
  if (setjmp(job.errors.jump)) {
    const ImageProblem problem = job.errors.problem;
    const std::string message = job.errors.message;
    // A damaged header (junk between segments) makes libjpeg run off the end of what it took for data:
    // that file is corrupt, not cut short.
    if (problem == ImageProblem::truncated && header_junk == 0)
      fail(problem, where, "truncated JPEG: the file ends before the image data does", message);
    if (problem == ImageProblem::truncated)
      fail(ImageProblem::corrupt, where, "corrupt JPEG data",
           cat(message, " (after ", header_junk, " bytes of junk between the header's segments)"));
    if (problem == ImageProblem::unsupported) fail(problem, where, "unsupported JPEG variant", message);
    if (problem == ImageProblem::too_large) fail(problem, where, "JPEG needs more memory than libjpeg may use", message);
    fail(problem, where, "corrupt JPEG data", message);
  }
  jpeg_create_decompress(&job.cinfo);
  job.created = true;
  job.progress.base.progress_monitor = jpeg_on_progress;
  job.progress.errors = &job.errors;
  job.cinfo.progress = &job.progress.base;
  jpeg_mem_src(&job.cinfo, data, static_cast<unsigned long>(size));
  if (jpeg_read_header(&job.cinfo, TRUE) != JPEG_HEADER_OK)
    fail(ImageProblem::corrupt, where, "JPEG holds only tables, no image");
  // libjpeg has the final word on size and components; the scanner (already run by the caller) on EXIF.
  out.info.stored_width = static_cast<int>(job.cinfo.image_width);
  out.info.stored_height = static_cast<int>(job.cinfo.image_height);
  out.info.channels = job.cinfo.num_components;
  out.info.progressive = job.cinfo.progressive_mode;
  finish_info(out.info, where);
  check_pixel_limit(out.info, options.max_pixels, where);

  // The target is in displayed orientation; the DCT scale applies to the stored picture.
  const bool swap = options.apply_orientation && out.info.orientation >= 5;
  const int tw = swap ? options.target_height : options.target_width;
  const int th = swap ? options.target_width : options.target_height;
  const int denom = (tw > 0 || th > 0) ? jpeg_scale_denominator(out.info.stored_width, out.info.stored_height, tw, th) : 1;
  job.cinfo.scale_num = 1;
  job.cinfo.scale_denom = static_cast<unsigned>(denom);
  out.scale_denominator = denom;

  const bool cmyk = job.cinfo.jpeg_color_space == JCS_CMYK || job.cinfo.jpeg_color_space == JCS_YCCK;
  const bool inverted = cmyk && job.cinfo.saw_Adobe_marker;
  job.cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_EXT_RGB;
  jpeg_start_decompress(&job.cinfo);
  const int w = static_cast<int>(job.cinfo.output_width), h = static_cast<int>(job.cinfo.output_height);
  out.image = RgbImage(w, h);
  if (cmyk) {
    const int batch = std::max(1, job.cinfo.rec_outbuf_height);
    job.cmyk_rows.resize(static_cast<std::size_t>(w) * 4 * batch);
    job.rows.resize(batch);
    for (int i = 0; i < batch; ++i) job.rows[i] = &job.cmyk_rows[static_cast<std::size_t>(i) * w * 4];
    while (job.cinfo.output_scanline < job.cinfo.output_height) {
      const int y = static_cast<int>(job.cinfo.output_scanline);
      const int got = static_cast<int>(jpeg_read_scanlines(&job.cinfo, job.rows.data(), static_cast<JDIMENSION>(batch)));
      for (int i = 0; i < got; ++i) cmyk_row_to_rgb(job.rows[i], out.image.at(0, y + i), w, inverted);
    }
  } else {
    // Rows go straight into the output: one call can return several rows (rec_outbuf_height).
    job.rows.resize(h);
    for (int y = 0; y < h; ++y) job.rows[y] = out.image.at(0, y);
    while (job.cinfo.output_scanline < job.cinfo.output_height) {
      const JDIMENSION y = job.cinfo.output_scanline;
      jpeg_read_scanlines(&job.cinfo, job.rows.data() + y, job.cinfo.output_height - y);
    }
  }
  // Reads up to EOI, so a file cut after its last scanline is still reported as truncated.
  jpeg_finish_decompress(&job.cinfo);
  out.warnings = job.errors.tolerated;
}

// ---------------------------------------------------------------------------------------------------------
// PNG decoding

struct PngSource {
  const uint8_t* data;
  std::size_t size;
  std::size_t at;
  bool ran_out = false;
};

void png_read_memory(png_structp png, png_bytep out, png_size_t n) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (src->size - src->at < n) {
    src->ran_out = true;
    png_error(png, "the file ends before the image data does");
  }
  std::memcpy(out, src->data + src->at, n);
  src->at += n;
}

struct PngErrors {
  char message[256] = {0};
  int warnings = 0;
};

void png_on_error(png_structp png, png_const_charp message) {
  auto* e = static_cast<PngErrors*>(png_get_error_ptr(png));
  std::snprintf(e->message, sizeof e->message, "%s", message ? message : "unknown libpng error");
  png_longjmp(png, 1);
}

void png_on_warning(png_structp png, png_const_charp) { ++static_cast<PngErrors*>(png_get_error_ptr(png))->warnings; }

struct PngJob {
  png_structp png = nullptr;
  png_infop info = nullptr;
  PngErrors errors;
  PngSource source{};
  std::vector<uint8_t> rgba;  // AlphaMode::composite only
  std::vector<png_bytep> rows;
  ~PngJob() {
    if (png) png_destroy_read_struct(&png, &info, nullptr);
  }
};

void decode_png(const uint8_t* data, std::size_t size, const DecodeOptions& options, const std::string& where,
                DecodedImage& out) {
  PngJob job;
  job.source = {data, size, 0};
  job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job.errors, png_on_error, png_on_warning);
  if (job.png) job.info = png_create_info_struct(job.png);
  if (!job.png || !job.info) throw OutOfMemoryError({"cannot start the PNG decoder", "out of memory", "free memory and retry", where});
  if (setjmp(png_jmpbuf(job.png))) {
    if (job.source.ran_out) fail(ImageProblem::truncated, where, "truncated PNG: the file ends before the image does", job.errors.message);
    fail(ImageProblem::corrupt, where, "corrupt PNG data", job.errors.message);
  }
  png_set_read_fn(job.png, &job.source, png_read_memory);
  // detkit's own pixel limit replaces libpng's default 1,000,000-pixel-per-side limit.
  png_set_user_limits(job.png, 0x7FFFFFFF, 0x7FFFFFFF);
  png_read_info(job.png, job.info);
  const int color_type = png_get_color_type(job.png, job.info);
  const int depth = png_get_bit_depth(job.png, job.info);
  out.info.stored_width = static_cast<int>(png_get_image_width(job.png, job.info));
  out.info.stored_height = static_cast<int>(png_get_image_height(job.png, job.info));
  finish_info(out.info, where);
  check_pixel_limit(out.info, options.max_pixels, where);

  const bool composite = options.alpha == AlphaMode::composite;
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(job.png);
  if (color_type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(job.png);
  // A tRNS chunk (transparency for palette, gray or RGB) only matters when compositing.
  if (composite && png_get_valid(job.png, job.info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(job.png);
  if (depth == 16) png_set_strip_16(job.png);  // keep the high byte, as PIL does for 16-bit colour
  if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(job.png);
  if (composite) {
    png_set_add_alpha(job.png, 0xFF, PNG_FILLER_AFTER);  // opaque images get alpha 255: one code path
  } else {
    png_set_strip_alpha(job.png);
  }
  png_set_interlace_handling(job.png);  // Adam7: png_read_image runs the passes over the whole image
  png_read_update_info(job.png, job.info);
  const std::size_t pixel_bytes = composite ? 4 : 3;
  const int w = out.info.stored_width, h = out.info.stored_height;
  if (png_get_rowbytes(job.png, job.info) != static_cast<std::size_t>(w) * pixel_bytes)
    fail(ImageProblem::corrupt, where, "PNG row size does not match its header");
  out.image = RgbImage(w, h);
  job.rows.resize(h);
  if (composite) {
    job.rgba.resize(static_cast<std::size_t>(w) * h * 4);
    for (int y = 0; y < h; ++y) job.rows[y] = &job.rgba[static_cast<std::size_t>(y) * w * 4];
  } else {
    for (int y = 0; y < h; ++y) job.rows[y] = out.image.at(0, y);
  }
  png_read_image(job.png, job.rows.data());
  png_read_end(job.png, nullptr);  // to IEND: a file missing its last chunks is truncated
  out.warnings = job.errors.warnings;
  if (composite) {
    const Rgb bg = options.background;
    const uint8_t* s = job.rgba.data();
    uint8_t* d = out.image.pixels.data();
    for (std::size_t i = 0, n = static_cast<std::size_t>(w) * h; i < n; ++i, s += 4, d += 3) {
      const unsigned a = s[3];
      d[0] = static_cast<uint8_t>((s[0] * a + bg.r * (255 - a) + 127) / 255);
      d[1] = static_cast<uint8_t>((s[1] * a + bg.g * (255 - a) + 127) / 255);
      d[2] = static_cast<uint8_t>((s[2] * a + bg.b * (255 - a) + 127) / 255);
    }
  }
}

void validate(const DecodeOptions& options) {
  if (options.max_pixels == 0)
    throw UsageError({"the pixel limit must be positive", "", "set DecodeOptions::max_pixels to at least 1"});
  if (options.target_width < 0 || options.target_height < 0)
    throw UsageError({cat("negative decode target ", options.target_width, "x", options.target_height), "",
                      "use 0 for 'no constraint'"});
  if (options.resize_to_target && (options.target_width <= 0 || options.target_height <= 0))
    throw UsageError({"resize_to_target needs a target width and height", "", "set both target_width and target_height"});
}

}  // namespace

ImageInfo probe_image_bytes(const void* data, std::size_t size, const std::string& name) {
  if (size == 0) fail(ImageProblem::empty, name, "empty image (0 bytes)");
  const auto* bytes = static_cast<const uint8_t*>(data);
  ImageInfo info;
  HeaderScan facts;
  scan_header(bytes, size, true, name, info, &facts);
  info.file_size = size;
  const std::size_t tail = std::min<std::size_t>(4096, size - facts.header_end);
  info.end_marker_seen = find_end_marker(info.format, bytes + size - tail, tail);
  set_extension_mismatch(info, name);
  return info;
}

ImageInfo probe_image(const fs::path& path) {
  const std::string where = path.string();
  File file;
  const uint64_t size = open_file(path, file);
  // Most headers fit in 64 KiB; large EXIF (with a thumbnail) or ICC segments need more: read on.
  std::vector<uint8_t> head;
  std::size_t want = 64 * 1024;
  ImageInfo info;
  HeaderScan facts;
  while (true) {
    const std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(want, size));
    head.resize(n);
    head.resize(read_at(path, file, 0, n, head.data()));
    info = ImageInfo{};
    const bool complete = head.size() >= size;
    if (scan_header(head.data(), head.size(), complete, where, info, &facts) == Scan::ok) break;
    if (complete) break;  // not reached: scan_header throws on a complete file that needs more
    want *= 4;
  }
  info.file_size = size;
  const std::size_t tail_n = static_cast<std::size_t>(std::min<uint64_t>(4096, size - facts.header_end));
  std::vector<uint8_t> tail(tail_n);
  tail.resize(read_at(path, file, size - tail_n, tail_n, tail.data()));
  info.end_marker_seen = find_end_marker(info.format, tail.data(), tail.size());
  set_extension_mismatch(info, where);
  return info;
}

DecodedImage decode_image_bytes(const void* data, std::size_t size, const DecodeOptions& options, const std::string& name) {
  validate(options);
  if (size == 0) fail(ImageProblem::empty, name, "empty image (0 bytes)");
  const auto* bytes = static_cast<const uint8_t*>(data);
  DecodedImage out;
  HeaderScan facts;
  scan_header(bytes, size, true, name, out.info, &facts);
  out.info.file_size = size;
  set_extension_mismatch(out.info, name);
  // Refuse a bomb on the scanned header, before libjpeg/libpng allocate anything for it.
  check_pixel_limit(out.info, options.max_pixels, name);
  if (out.info.format == ImageFormat::jpeg) {
    decode_jpeg(bytes, size, options, name, facts.junk, out);
  } else {
    decode_png(bytes, size, options, name, out);
  }
  if (options.apply_orientation && out.info.orientation != 1)
    out.image = apply_orientation(out.image, out.info.orientation);
  if (options.resize_to_target) out.image = resize_bilinear(out.image, options.target_width, options.target_height);
  return out;
}

DecodedImage decode_image(const fs::path& path, const DecodeOptions& options) {
  validate(options);
  File file;
  const uint64_t size = open_file(path, file);
  if (size > (uint64_t(1) << 32))
    fail(ImageProblem::too_large, path.string(), cat("image file of ", size, " bytes"), "detkit reads image files up to 4 GiB");
  std::vector<uint8_t> bytes(static_cast<std::size_t>(size));
  bytes.resize(read_at(path, file, 0, bytes.size(), bytes.data()));
  return decode_image_bytes(bytes.data(), bytes.size(), options, path.string());
}

}  // namespace detkit
