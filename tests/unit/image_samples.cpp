#include "image_samples.h"

#include <cstdio>  // before jpeglib.h

#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace detkit::samples {

RgbImage pattern(int width, int height, int seed) {
  RgbImage image(width, height);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      uint8_t* p = image.at(x, y);
      p[0] = static_cast<uint8_t>(width > 1 ? x * 255 / (width - 1) : 0);
      p[1] = static_cast<uint8_t>(height > 1 ? y * 255 / (height - 1) : 0);
      // Blocks of 8 pixels (on the JPEG block grid), so 4:2:0 chroma keeps them nearly intact.
      p[2] = static_cast<uint8_t>(((x / 8 + y / 8 + seed) % 2) * 120 + (x + 2 * y + seed * 37) % 96);
    }
  // A solid block in the top-left quarter-corner marks which way is up and which side is left.
  for (int y = 0; y < height / 4; ++y)
    for (int x = 0; x < width / 3; ++x) image.set(x, y, Rgb{250, 20, 20});
  return image;
}

namespace {

struct JpegError {
  jpeg_error_mgr base;
  std::jmp_buf jump;
};

void on_jpeg_error(j_common_ptr cinfo) { std::longjmp(reinterpret_cast<JpegError*>(cinfo->err)->jump, 1); }

std::string exif_segment(int orientation, bool big_endian) {
  std::string s("Exif\0\0", 6);
  const unsigned char o = static_cast<unsigned char>(orientation);
  if (big_endian) {
    const unsigned char tiff[] = {'M', 'M', 0, 0x2A, 0, 0, 0, 8,   // header, IFD0 at 8
                                  0, 2,                           // two entries
                                  0x01, 0x0F, 0, 2, 0, 0, 0, 4, 'A', 'C', 'M', 0,  // Make "ACM" (ASCII, inline)
                                  0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, o, 0, 0,        // Orientation
                                  0, 0, 0, 0};
    s.append(reinterpret_cast<const char*>(tiff), sizeof tiff);
  } else {
    const unsigned char tiff[] = {'I', 'I', 0x2A, 0, 8, 0, 0, 0,
                                  2, 0,
                                  0x0F, 0x01, 2, 0, 4, 0, 0, 0, 'A', 'C', 'M', 0,
                                  0x12, 0x01, 3, 0, 1, 0, 0, 0, o, 0, 0, 0,
                                  0, 0, 0, 0};
    s.append(reinterpret_cast<const char*>(tiff), sizeof tiff);
  }
  return s;
}

}  // namespace

std::string jpeg(const RgbImage& image, const JpegSpec& spec) {
  jpeg_compress_struct cinfo{};
  JpegError error{};
  cinfo.err = jpeg_std_error(&error.base);
  error.base.error_exit = on_jpeg_error;
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  std::vector<uint8_t> row;
  if (setjmp(error.jump)) {
    jpeg_destroy_compress(&cinfo);
    std::free(buffer);
    throw std::runtime_error("samples::jpeg: libjpeg failed");
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(image.width);
  cinfo.image_height = static_cast<JDIMENSION>(image.height);
  const bool cmyk = spec.color == JpegColor::cmyk || spec.color == JpegColor::cmyk_adobe_inverted ||
                    spec.color == JpegColor::ycck_adobe_inverted;
  const bool inverted = spec.color == JpegColor::cmyk_adobe_inverted || spec.color == JpegColor::ycck_adobe_inverted;
  cinfo.input_components = spec.color == JpegColor::gray ? 1 : cmyk ? 4 : 3;
  cinfo.in_color_space = spec.color == JpegColor::gray ? JCS_GRAYSCALE : cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, spec.quality, TRUE);
  switch (spec.color) {
    case JpegColor::rgb: jpeg_set_colorspace(&cinfo, JCS_RGB); break;  // writes Adobe transform 0
    case JpegColor::cmyk:
      jpeg_set_colorspace(&cinfo, JCS_CMYK);
      cinfo.write_Adobe_marker = FALSE;  // plain CMYK: readers take the samples as they are
      break;
    case JpegColor::cmyk_adobe_inverted: jpeg_set_colorspace(&cinfo, JCS_CMYK); break;
    case JpegColor::ycck_adobe_inverted: jpeg_set_colorspace(&cinfo, JCS_YCCK); break;
    default: break;
  }
  if (!spec.subsample_420 || spec.color == JpegColor::rgb)
    for (int c = 0; c < cinfo.num_components; ++c) cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
  if (spec.progressive) jpeg_simple_progression(&cinfo);
  cinfo.restart_interval = static_cast<unsigned>(spec.restart_interval);
  jpeg_start_compress(&cinfo, TRUE);
  if (spec.exif_orientation >= 1 && spec.exif_orientation <= 8) {
    const std::string exif = exif_segment(spec.exif_orientation, spec.exif_big_endian);
    jpeg_write_marker(&cinfo, JPEG_APP0 + 1, reinterpret_cast<const JOCTET*>(exif.data()), static_cast<unsigned>(exif.size()));
  }
  row.resize(static_cast<std::size_t>(image.width) * 4);
  while (cinfo.next_scanline < cinfo.image_height) {
    const int y = static_cast<int>(cinfo.next_scanline);
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* p = image.at(x, y);
      if (spec.color == JpegColor::gray) {
        row[x] = p[0];
      } else if (cmyk) {
        uint8_t v[4] = {static_cast<uint8_t>(255 - p[0]), static_cast<uint8_t>(255 - p[1]),
                        static_cast<uint8_t>(255 - p[2]), static_cast<uint8_t>((x * 7 + y * 3) % 64)};
        for (int c = 0; c < 4; ++c) row[x * 4 + c] = inverted ? static_cast<uint8_t>(255 - v[c]) : v[c];
      } else {
        std::memcpy(&row[x * 3], p, 3);
      }
    }
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&cinfo, &r, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string bytes(reinterpret_cast<const char*>(buffer), size);
  std::free(buffer);
  return bytes;
}

namespace {

void append(png_structp png, png_bytep data, png_size_t n) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), n);
}
void flush(png_structp) {}

int levels(int depth) { return (1 << depth) - 1; }

// One sample of the PNG at (x, y), channel `c` of the spec's colour type, at the spec's bit depth.
unsigned sample(const RgbImage& image, const PngSpec& spec, int x, int y, int c) {
  const uint8_t* p = image.at(x, y);
  const int channels_no_alpha = (spec.color == PngColor::rgb || spec.color == PngColor::rgba) ? 3 : 1;
  if (c >= channels_no_alpha) {  // alpha
    const unsigned a = image.width > 1 ? static_cast<unsigned>(x * 255 / (image.width - 1)) : 255;
    return spec.bit_depth == 16 ? a * 257 : a;
  }
  const unsigned v = p[c];
  if (spec.bit_depth == 16) return v * 257 + (x % 7);
  if (spec.bit_depth < 8) return v * levels(spec.bit_depth) / 255;
  return v;
}

}  // namespace

std::string png(const RgbImage& image, const PngSpec& spec) {
  std::string bytes;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  std::vector<uint8_t> row;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw std::runtime_error("samples::png: libpng failed");
  }
  png_set_write_fn(png, &bytes, append, flush);
  const int type = spec.color == PngColor::gray         ? PNG_COLOR_TYPE_GRAY
                   : spec.color == PngColor::gray_alpha ? PNG_COLOR_TYPE_GRAY_ALPHA
                   : spec.color == PngColor::rgb        ? PNG_COLOR_TYPE_RGB
                   : spec.color == PngColor::rgba       ? PNG_COLOR_TYPE_RGB_ALPHA
                                                        : PNG_COLOR_TYPE_PALETTE;
  png_set_IHDR(png, info, static_cast<png_uint_32>(image.width), static_cast<png_uint_32>(image.height), spec.bit_depth,
               type, spec.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  std::vector<png_color> palette;
  if (spec.color == PngColor::palette) {
    // A gray ramp: index i is level i of 2^depth, like the gray kind of the same depth.
    for (int i = 0; i <= levels(spec.bit_depth); ++i) {
      const auto v = static_cast<png_byte>(i * 255 / levels(spec.bit_depth));
      palette.push_back(png_color{v, v, v});
    }
    png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  }
  png_byte trans_alpha[1] = {0};
  png_color_16 trans_color{};
  if (spec.trns) {
    if (spec.color == PngColor::palette) png_set_tRNS(png, info, trans_alpha, 1, nullptr);
    else png_set_tRNS(png, info, nullptr, 0, &trans_color);  // colour 0 (black) is transparent
  }
  std::string exif;
  if (spec.exif_orientation >= 1 && spec.exif_orientation <= 8) {
    exif = exif_segment(spec.exif_orientation, false).substr(6);  // eXIf holds the TIFF part only
    png_set_eXIf_1(png, info, static_cast<png_uint_32>(exif.size()), reinterpret_cast<png_bytep>(exif.data()));
  }
  png_write_info(png, info);
  if (spec.bit_depth < 8) png_set_packing(png);
  if (spec.bit_depth == 16) png_set_swap(png);  // we fill rows little-endian; PNG stores big-endian
  const int channels = spec.color == PngColor::gray || spec.color == PngColor::palette ? 1
                       : spec.color == PngColor::gray_alpha                            ? 2
                       : spec.color == PngColor::rgb                                   ? 3
                                                                                       : 4;
  const int bytes_per_sample = spec.bit_depth == 16 ? 2 : 1;
  row.resize(static_cast<std::size_t>(image.width) * channels * bytes_per_sample);
  const int passes = png_set_interlace_handling(png);
  for (int pass = 0; pass < passes; ++pass)
    for (int y = 0; y < image.height; ++y) {
      for (int x = 0; x < image.width; ++x)
        for (int c = 0; c < channels; ++c) {
          const unsigned v = sample(image, spec, x, y, c);
          const std::size_t at = (static_cast<std::size_t>(x) * channels + c) * bytes_per_sample;
          if (bytes_per_sample == 2) {
            row[at] = static_cast<uint8_t>(v & 0xFF);
            row[at + 1] = static_cast<uint8_t>(v >> 8);
          } else {
            row[at] = static_cast<uint8_t>(v);
          }
        }
      png_write_row(png, row.data());
    }
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return bytes;
}

RgbImage png_expected(const RgbImage& image, const PngSpec& spec) {
  RgbImage out(image.width, image.height);
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      uint8_t* d = out.at(x, y);
      const bool color = spec.color == PngColor::rgb || spec.color == PngColor::rgba;
      for (int c = 0; c < 3; ++c) {
        unsigned v = sample(image, spec, x, y, color ? c : 0);
        if (spec.bit_depth == 16) v >>= 8;                                        // the high byte
        else if (spec.bit_depth < 8) v = v * 255 / levels(spec.bit_depth);     // expanded (gray: bit replication)
        d[c] = static_cast<uint8_t>(v);
      }
    }
  return out;
}

namespace {
uint32_t crc32(const uint8_t* data, std::size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}
void put_be32(std::string& s, std::size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (24 - 8 * i)) & 0xFF);
}
}  // namespace

std::string jpeg_claiming(int width, int height) {
  std::string bytes = jpeg(pattern(16, 16));
  // Patch the SOF0 frame header: FF C0, length (2), precision (1), height (2), width (2).
  const std::size_t sof = bytes.find("\xFF\xC0", 2);
  bytes[sof + 5] = static_cast<char>(height >> 8), bytes[sof + 6] = static_cast<char>(height & 0xFF);
  bytes[sof + 7] = static_cast<char>(width >> 8), bytes[sof + 8] = static_cast<char>(width & 0xFF);
  return bytes;
}

std::string png_claiming(uint32_t width, uint32_t height) {
  std::string bytes = png(pattern(16, 16));
  // IHDR starts at byte 8: length (4), "IHDR", width, height, 5 more bytes, then the CRC over type+data.
  put_be32(bytes, 16, width);
  put_be32(bytes, 20, height);
  put_be32(bytes, 29, crc32(reinterpret_cast<const uint8_t*>(bytes.data()) + 12, 17));
  return bytes;
}

}  // namespace detkit::samples
