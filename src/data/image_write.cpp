#include "data/image_write.h"

#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "core/text.h"

namespace detkit {

namespace {

struct JpegErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* manager = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, manager->message);
  std::longjmp(manager->jump, 1);
}

// An EXIF APP1 payload holding a single IFD0 entry: Orientation (0x0112, SHORT).
std::string exif_orientation_segment(int orientation) {
  std::string s("Exif\0\0", 6);
  const unsigned char tiff[] = {
      'I', 'I', 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00,  // little-endian TIFF header, IFD0 at offset 8
      0x01, 0x00,                                    // one entry
      0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00,  // tag 0x0112, type SHORT, count 1
      static_cast<unsigned char>(orientation), 0x00, 0x00, 0x00,  // value, padded
      0x00, 0x00, 0x00, 0x00,                        // no next IFD
  };
  s.append(reinterpret_cast<const char*>(tiff), sizeof tiff);
  return s;
}

}  // namespace

std::string encode_jpeg(const RgbImage& image, int quality, int exif_orientation) {
  jpeg_compress_struct cinfo{};
  JpegErrorManager error{};
  cinfo.err = jpeg_std_error(&error.base);
  error.base.error_exit = jpeg_error_exit;
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  if (setjmp(error.jump)) {
    jpeg_destroy_compress(&cinfo);
    std::free(buffer);
    throw RunError({cat("JPEG encoding failed: ", error.message), "", "report this as a detkit bug"});
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(image.width);
  cinfo.image_height = static_cast<JDIMENSION>(image.height);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  if (exif_orientation >= 1 && exif_orientation <= 8) {
    const std::string exif = exif_orientation_segment(exif_orientation);
    jpeg_write_marker(&cinfo, JPEG_APP0 + 1, reinterpret_cast<const JOCTET*>(exif.data()),
                      static_cast<unsigned int>(exif.size()));
  }
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(image.at(0, static_cast<int>(cinfo.next_scanline)));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string bytes(reinterpret_cast<const char*>(buffer), size);
  std::free(buffer);
  return bytes;
}

namespace {
void png_append(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), length);
}
void png_flush_nothing(png_structp) {}
}  // namespace

std::string encode_png(const RgbImage& image) {
  std::string bytes;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_write_struct(&png, &info);
    throw RunError({"PNG encoder could not start", "out of memory", "free memory and retry"});
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw RunError({"PNG encoding failed", "", "report this as a detkit bug"});
  }
  png_set_write_fn(png, &bytes, png_append, png_flush_nothing);
  png_set_IHDR(png, info, static_cast<png_uint_32>(image.width), static_cast<png_uint_32>(image.height), 8,
               PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < image.height; ++y) png_write_row(png, const_cast<png_bytep>(image.at(0, y)));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return bytes;
}

}  // namespace detkit
