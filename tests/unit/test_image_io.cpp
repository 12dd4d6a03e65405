// Image decoding: formats and colour models, EXIF orientation, DCT scaling, and every way a file can be bad.
// Inputs are made here with libjpeg/libpng (image_samples.h). Comparisons with PIL are in
// test_image_io_reference.cpp.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>  // before jpeglib.h
#include <cstdlib>
#include <fstream>
#include <new>
#include <set>

#include <jpeglib.h>

#include "core/fs.h"
#include "data/exif.h"
#include "data/image_io.h"
#include "data/image_write.h"
#include "data/synth.h"
#include "image_samples.h"
#include "test_util.h"

// The largest single operator-new request since the last reset: shows that a decompression bomb is refused
// before its pixel buffer is allocated. Replacing the global operator new is allowed by the standard and
// affects this test binary only.
namespace {
std::atomic<std::size_t> g_largest_allocation{0};
void note_allocation(std::size_t n) {
  std::size_t seen = g_largest_allocation.load(std::memory_order_relaxed);
  while (n > seen && !g_largest_allocation.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
  }
}
}  // namespace

// GCC warns that free() does not match `new` here; in the replacement functions themselves it does.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  note_allocation(n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace detkit;
using detkit::testing::TempDir;
namespace S = detkit::samples;

namespace {

DecodedImage decode(const std::string& bytes, DecodeOptions options = {}, const std::string& name = "<test>") {
  return decode_image_bytes(bytes.data(), bytes.size(), options, name);
}

DecodedImage decode_stored(const std::string& bytes) {
  DecodeOptions o;
  o.apply_orientation = false;
  return decode(bytes, o);
}

double mean_abs_diff(const RgbImage& a, const RgbImage& b) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  if (a.pixels.size() != b.pixels.size() || a.pixels.empty()) return 1e9;
  double total = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) total += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return total / a.pixels.size();
}

int max_abs_diff(const RgbImage& a, const RgbImage& b) {
  if (a.width != b.width || a.height != b.height) return 1000;
  int worst = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) worst = std::max(worst, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  return worst;
}

// The problem of the ImageError that `f` throws; fails the test if it throws something else or nothing.
template <class F>
ImageProblem problem_of(F&& f, std::string* text = nullptr) {
  try {
    f();
  } catch (const ImageError& e) {
    if (text) *text = format_error(e);
    EXPECT_EQ(e.exit_code(), ExitCode::data);
    return e.problem();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected ImageError, got: " << e.what();
    return ImageProblem::unreadable;
  }
  ADD_FAILURE() << "expected ImageError, nothing was thrown";
  return ImageProblem::unreadable;
}

ImageProblem bytes_problem(const std::string& bytes, std::string* text = nullptr, DecodeOptions options = {}) {
  return problem_of([&] { decode(bytes, options, "bad.img"); }, text);
}

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace

// ----------------------------------------------------------------------------------------------------------
// Formats and colour models

TEST(ImageIo, DetectsFormatByMagicBytes) {
  const std::string j = S::jpeg(S::pattern(8, 8)), p = S::png(S::pattern(8, 8));
  EXPECT_EQ(detect_image_format(j.data(), j.size()), ImageFormat::jpeg);
  EXPECT_EQ(detect_image_format(p.data(), p.size()), ImageFormat::png);
  EXPECT_EQ(detect_image_format("GIF89a......", 12), ImageFormat::gif);
  EXPECT_EQ(detect_image_format("RIFF\0\0\0\0WEBPVP8 ", 16), ImageFormat::webp);
  EXPECT_EQ(detect_image_format("\0\0\0\x18" "ftypheic", 12), ImageFormat::heif);
  EXPECT_EQ(detect_image_format("hello", 5), ImageFormat::unknown);
  EXPECT_EQ(detect_image_format(j.data(), 2), ImageFormat::unknown);
  EXPECT_EQ(image_format_from_extension("a/B.JPEG"), ImageFormat::jpeg);
  EXPECT_EQ(image_format_from_extension("x.png"), ImageFormat::png);
  EXPECT_EQ(image_format_from_extension("x.txt"), ImageFormat::unknown);
}

TEST(ImageIo, BaselineJpegDecodesCloseToTheSource) {
  const RgbImage source = S::pattern(67, 45);
  const DecodedImage d = decode(S::jpeg(source, {95}));
  EXPECT_EQ(d.info.format, ImageFormat::jpeg);
  EXPECT_EQ(d.info.color, ColorModel::ycbcr);
  EXPECT_EQ(d.info.channels, 3);
  EXPECT_FALSE(d.info.progressive);
  EXPECT_EQ(d.image.width, 67);
  EXPECT_EQ(d.image.height, 45);
  // 4:2:0 chroma blurs the colour edges of the pattern a little; a swapped or mis-converted channel would
  // be off by 50 or more.
  EXPECT_LT(mean_abs_diff(d.image, source), 8.0);
  EXPECT_EQ(d.scale_denominator, 1);
  EXPECT_EQ(d.warnings, 0);
  // At quality 100 with full-resolution chroma only rounding is left.
  EXPECT_LT(mean_abs_diff(decode(S::jpeg(source, {100, false, S::JpegColor::ycbcr, 0, false, 0, false})).image, source), 1.0);
}

TEST(ImageIo, ProgressiveJpegDecodesToTheSamePixelsAsBaseline) {
  // Same quantisation, different order of the same coefficients: the pixels must be identical.
  const RgbImage source = S::pattern(120, 90);
  S::JpegSpec spec;
  const DecodedImage baseline = decode(S::jpeg(source, spec));
  spec.progressive = true;
  const DecodedImage progressive = decode(S::jpeg(source, spec));
  EXPECT_TRUE(progressive.info.progressive);
  EXPECT_EQ(max_abs_diff(baseline.image, progressive.image), 0);
}

TEST(ImageIo, RestartIntervalsDecode) {
  const RgbImage source = S::pattern(64, 64);
  S::JpegSpec spec;
  spec.restart_interval = 2;
  EXPECT_LT(mean_abs_diff(decode(S::jpeg(source, spec)).image, source), 8.0);
}

TEST(ImageIo, GrayAndRgbJpegBecomeRgb) {
  const RgbImage source = S::pattern(40, 30);
  S::JpegSpec spec{95};
  spec.color = S::JpegColor::gray;
  const DecodedImage gray = decode(S::jpeg(source, spec));
  EXPECT_EQ(gray.info.color, ColorModel::gray);
  EXPECT_EQ(gray.info.channels, 1);
  double err = 0;
  for (int y = 0; y < 30; ++y)
    for (int x = 0; x < 40; ++x) {
      const uint8_t* p = gray.image.at(x, y);
      ASSERT_EQ(p[0], p[1]);
      ASSERT_EQ(p[1], p[2]);
      err += std::abs(int(p[0]) - int(source.at(x, y)[0]));
    }
  EXPECT_LT(err / (40 * 30), 4.0);
  spec.color = S::JpegColor::rgb;  // Adobe transform 0: stored as RGB, no YCbCr conversion
  const DecodedImage rgb = decode(S::jpeg(source, spec));
  EXPECT_EQ(rgb.info.color, ColorModel::rgb);
  EXPECT_LT(mean_abs_diff(rgb.image, source), 4.0);
}

TEST(ImageIo, CmykAndYcckJpegsAreConvertedWithAdobeInversion) {
  // The samples encode C = 255 - R etc. with a small K, so R = (255 - C)(255 - K)/255 = R * (255 - K)/255.
  const RgbImage source = S::pattern(48, 32);
  RgbImage expected = source;
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 48; ++x)
      for (int c = 0; c < 3; ++c) {
        const int k = (x * 7 + y * 3) % 64;
        expected.at(x, y)[c] = static_cast<uint8_t>((source.at(x, y)[c] * (255 - k) + 127) / 255);
      }
  for (auto color : {S::JpegColor::cmyk, S::JpegColor::cmyk_adobe_inverted, S::JpegColor::ycck_adobe_inverted}) {
    S::JpegSpec spec{98};
    spec.color = color;
    spec.subsample_420 = false;
    const DecodedImage d = decode(S::jpeg(source, spec));
    EXPECT_EQ(d.info.channels, 4);
    EXPECT_EQ(d.info.color, color == S::JpegColor::ycck_adobe_inverted ? ColorModel::ycck : ColorModel::cmyk);
    // Taking inverted data as plain (or the reverse) would give a negative-like picture: error near 128.
    EXPECT_LT(mean_abs_diff(d.image, expected), 4.0) << "colour kind " << int(color);
  }
}

TEST(ImageIo, PngEveryColourTypeAndDepthIsExact) {
  const RgbImage source = S::pattern(37, 23);
  struct Case {
    S::PngColor color;
    int depth;
  };
  const Case cases[] = {{S::PngColor::gray, 1},  {S::PngColor::gray, 2},       {S::PngColor::gray, 4},
                        {S::PngColor::gray, 8},  {S::PngColor::gray, 16},      {S::PngColor::gray_alpha, 8},
                        {S::PngColor::gray_alpha, 16}, {S::PngColor::rgb, 8}, {S::PngColor::rgb, 16},
                        {S::PngColor::rgba, 8},  {S::PngColor::rgba, 16},      {S::PngColor::palette, 1},
                        {S::PngColor::palette, 2}, {S::PngColor::palette, 4}, {S::PngColor::palette, 8}};
  for (const Case& c : cases)
    for (bool interlaced : {false, true}) {
      S::PngSpec spec;
      spec.color = c.color;
      spec.bit_depth = c.depth;
      spec.interlaced = interlaced;
      const DecodedImage d = decode(S::png(source, spec));
      EXPECT_EQ(d.info.format, ImageFormat::png);
      EXPECT_EQ(d.info.bit_depth, c.depth);
      EXPECT_EQ(d.info.progressive, interlaced);
      EXPECT_EQ(max_abs_diff(d.image, S::png_expected(source, spec)), 0)
          << "colour " << int(c.color) << " depth " << c.depth << " interlaced " << interlaced;
    }
}

TEST(ImageIo, AlphaIsDroppedByDefaultAndCompositedOnRequest) {
  const RgbImage source = S::pattern(20, 10);
  S::PngSpec spec;
  spec.color = S::PngColor::rgba;  // alpha runs 0 at the left to 255 at the right
  const std::string bytes = S::png(source, spec);
  EXPECT_EQ(max_abs_diff(decode(bytes).image, source), 0);
  DecodeOptions o;
  o.alpha = AlphaMode::composite;
  o.background = Rgb{10, 200, 30};
  const DecodedImage c = decode(bytes, o);
  for (int y = 0; y < 10; ++y) {
    EXPECT_EQ(c.image.at(0, y)[1], 200);  // fully transparent: the background
    EXPECT_EQ(c.image.at(19, y)[0], source.at(19, y)[0]);  // opaque: the pixel
    const unsigned a = 9 * 255 / 19;
    EXPECT_EQ(c.image.at(9, y)[2], (source.at(9, y)[2] * a + 30 * (255 - a) + 127) / 255);
  }
  // Palette transparency (tRNS): entry 0 is transparent, so composited pixels of index 0 show the background.
  S::PngSpec pal;
  pal.color = S::PngColor::palette;
  pal.bit_depth = 2;
  pal.trns = true;
  const std::string pbytes = S::png(source, pal);
  EXPECT_EQ(max_abs_diff(decode(pbytes).image, S::png_expected(source, pal)), 0);
  const DecodedImage pc = decode(pbytes, o);
  int background_pixels = 0;
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 20; ++x)
      if (source.at(x, y)[0] * 3 / 255 == 0) {
        EXPECT_EQ(pc.image.at(x, y)[1], 200);
        ++background_pixels;
      }
  EXPECT_GT(background_pixels, 0);
}

// ----------------------------------------------------------------------------------------------------------
// EXIF orientation

TEST(Exif, ReadsOrientationInBothByteOrdersAndTypes) {
  // Little-endian, SHORT, with and without the "Exif\0\0" prefix.
  const uint8_t le[] = {'I', 'I', 0x2A, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(exif_orientation(le, sizeof le), 6);
  std::string prefixed = std::string("Exif\0\0", 6) + std::string(reinterpret_cast<const char*>(le), sizeof le);
  EXPECT_EQ(exif_orientation(reinterpret_cast<const uint8_t*>(prefixed.data()), prefixed.size()), 6);
  const uint8_t be[] = {'M', 'M', 0, 0x2A, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(exif_orientation(be, sizeof be), 8);
  uint8_t as_long[sizeof le];
  std::copy(le, le + sizeof le, as_long);
  as_long[12] = 4;  // type LONG
  EXPECT_EQ(exif_orientation(as_long, sizeof as_long), 6);
  as_long[12] = 1;  // type BYTE
  EXPECT_EQ(exif_orientation(as_long, sizeof as_long), 6);
}

TEST(Exif, MalformedDataMeansUpright) {
  const uint8_t good[] = {'I', 'I', 0x2A, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0};
  ASSERT_EQ(exif_orientation(good, sizeof good), 3);
  EXPECT_EQ(exif_orientation(nullptr, 0), 1);
  EXPECT_EQ(exif_orientation(good, 7), 1);          // shorter than a TIFF header
  EXPECT_EQ(exif_orientation(good, 19), 1);         // entry cut inside its value
  uint8_t bad[sizeof good];
  std::copy(good, good + sizeof good, bad);
  bad[18] = 9;  // out of range
  EXPECT_EQ(exif_orientation(bad, sizeof bad), 1);
  bad[18] = 0;
  EXPECT_EQ(exif_orientation(bad, sizeof bad), 1);
  std::copy(good, good + sizeof good, bad);
  bad[4] = 0xF0, bad[7] = 0x7F;  // IFD offset far past the end
  EXPECT_EQ(exif_orientation(bad, sizeof bad), 1);
  std::copy(good, good + sizeof good, bad);
  bad[8] = 0xFF, bad[9] = 0xFF;  // 65535 entries claimed
  EXPECT_EQ(exif_orientation(bad, sizeof bad), 3);  // the whole entries still count; the rest ends the search
  std::copy(good, good + sizeof good, bad);
  bad[12] = 7;  // UNDEFINED type
  EXPECT_EQ(exif_orientation(bad, sizeof bad), 1);
  std::copy(good, good + sizeof good, bad);
  bad[0] = 'X';  // not a TIFF byte order
  EXPECT_EQ(exif_orientation(bad, sizeof bad), 1);
  // Every prefix and every single-byte change of a valid block stays in bounds (ASan/UBSan in the fuzzers
  // check the same) and yields a value in 1..8.
  for (std::size_t n = 0; n <= sizeof good; ++n) {
    const int o = exif_orientation(good, n);
    EXPECT_TRUE(o >= 1 && o <= 8);
  }
  for (std::size_t i = 0; i < sizeof good; ++i)
    for (int v : {0, 1, 0x7F, 0x80, 0xFF}) {
      std::copy(good, good + sizeof good, bad);
      bad[i] = static_cast<uint8_t>(v);
      const int o = exif_orientation(bad, sizeof bad);
      EXPECT_TRUE(o >= 1 && o <= 8);
    }
}

TEST(Orientation, EachValueMovesTheCornersAsExifDefines) {
  // A 3x2 image whose pixels are numbered; where the stored top-left and top-right pixels end up in the
  // displayed image, for each orientation (EXIF 2.32, table of Orientation values).
  RgbImage stored(3, 2);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x) stored.set(x, y, Rgb{static_cast<uint8_t>(10 * y + x), 0, 0});
  struct Where {
    int tl_x, tl_y, tr_x, tr_y;
  };
  // Displayed sizes: 3x2 for 1..4, 2x3 for 5..8. (tl = stored (0,0) value 0; tr = stored (2,0) value 2.)
  const Where expected[9] = {{},          {0, 0, 2, 0}, {2, 0, 0, 0}, {2, 1, 0, 1}, {0, 1, 2, 1},
                             {0, 0, 0, 2}, {1, 0, 1, 2}, {1, 2, 1, 0}, {0, 2, 0, 0}};
  for (int o = 1; o <= 8; ++o) {
    const RgbImage d = apply_orientation(stored, o);
    EXPECT_EQ(d.width, o >= 5 ? 2 : 3);
    EXPECT_EQ(d.height, o >= 5 ? 3 : 2);
    EXPECT_EQ(d.at(expected[o].tl_x, expected[o].tl_y)[0], 0) << "orientation " << o;
    EXPECT_EQ(d.at(expected[o].tr_x, expected[o].tr_y)[0], 2) << "orientation " << o;
    // Each transform is a permutation: every value appears once.
    std::multiset<int> values;
    for (int y = 0; y < d.height; ++y)
      for (int x = 0; x < d.width; ++x) values.insert(d.at(x, y)[0]);
    EXPECT_EQ(values, (std::multiset<int>{0, 1, 2, 10, 11, 12}));
  }
  EXPECT_EQ(max_abs_diff(apply_orientation(stored, 6), rotate_clockwise(stored)), 0);
  EXPECT_EQ(max_abs_diff(apply_orientation(stored, 8), rotate_counter_clockwise(stored)), 0);
}

TEST(Orientation, JpegAndPngExifIsAppliedAndReported) {
  const RgbImage source = S::pattern(48, 32);
  for (bool big_endian : {false, true})
    for (int o = 1; o <= 8; ++o) {
      S::JpegSpec spec{95};
      spec.exif_orientation = o;
      spec.exif_big_endian = big_endian;
      const std::string bytes = S::jpeg(source, spec);
      const DecodedImage shown = decode(bytes);
      const DecodedImage stored = decode_stored(bytes);
      EXPECT_EQ(shown.info.orientation, o);
      EXPECT_EQ(shown.info.stored_width, 48);
      EXPECT_EQ(shown.info.width, o >= 5 ? 32 : 48);
      EXPECT_EQ(stored.image.width, 48);
      EXPECT_EQ(max_abs_diff(shown.image, apply_orientation(stored.image, o)), 0) << "orientation " << o;
    }
  S::PngSpec spec;
  spec.exif_orientation = 6;
  const DecodedImage png = decode(S::png(source, spec));
  EXPECT_EQ(png.info.orientation, 6);
  EXPECT_EQ(max_abs_diff(png.image, rotate_clockwise(source)), 0);
  // detkit's own encoder (synth's EXIF-rotated images) agrees.
  const DecodedImage ours = decode(encode_jpeg(rotate_counter_clockwise(source), 95, 6));
  EXPECT_EQ(ours.image.width, 48);
  EXPECT_LT(mean_abs_diff(ours.image, source), 8.0);
}

TEST(Orientation, MalformedExifInAJpegDecodesUpright) {
  std::string bytes = S::jpeg(S::pattern(16, 8), {90, false, S::JpegColor::ycbcr, 6});
  const std::size_t tiff = bytes.find("Exif") + 6;
  bytes[tiff + 4] = '\x7F';  // IFD0 offset points far outside the segment
  const DecodedImage d = decode(bytes);
  EXPECT_EQ(d.info.orientation, 1);
  EXPECT_EQ(d.image.width, 16);
}

// ----------------------------------------------------------------------------------------------------------
// Target size and DCT scaling

TEST(Scaling, ScaleDenominatorIsTheSmallestScaleCoveringTheTarget) {
  EXPECT_EQ(jpeg_scale_denominator(640, 480, 0, 0), 8);  // no constraint at all; decode_image skips scaling then
  EXPECT_EQ(jpeg_scale_denominator(640, 480, 320, 240), 2);
  EXPECT_EQ(jpeg_scale_denominator(640, 480, 321, 240), 1);
  EXPECT_EQ(jpeg_scale_denominator(640, 480, 160, 120), 4);
  EXPECT_EQ(jpeg_scale_denominator(640, 480, 100, 100), 4);  // 1/8 would give 80x60
  EXPECT_EQ(jpeg_scale_denominator(640, 480, 80, 0), 8);
  EXPECT_EQ(jpeg_scale_denominator(641, 480, 81, 60), 8);   // libjpeg rounds 641/8 up to 81
  EXPECT_EQ(jpeg_scale_denominator(640, 480, 416, 312), 1);  // more than half: full decode
}

TEST(Scaling, HalfSizeTargetUsesTheDctScaleAndStaysCloseToAFullDecodeResized) {
  const RgbImage source = S::pattern(640, 480);
  const std::string bytes = S::jpeg(source, {92});
  DecodeOptions o;
  o.target_width = 320;
  o.target_height = 240;
  const DecodedImage half = decode(bytes, o);
  EXPECT_EQ(half.scale_denominator, 2);
  EXPECT_EQ(half.image.width, 320);
  EXPECT_EQ(half.image.height, 240);
  EXPECT_EQ(half.info.width, 640);  // info describes the file
  EXPECT_LT(mean_abs_diff(half.image, resize_bilinear(decode(bytes).image, 320, 240)), 8.0);

  o.target_width = 100;
  o.target_height = 0;
  const DecodedImage eighth = decode(bytes, o);
  EXPECT_EQ(eighth.scale_denominator, 4);
  EXPECT_EQ(eighth.image.width, 160);

  o.target_width = 500;  // not at most half: full size
  EXPECT_EQ(decode(bytes, o).scale_denominator, 1);

  o.target_width = 200;
  o.target_height = 150;
  o.resize_to_target = true;  // 1/2 gives 320x240, then exactly 200x150
  const DecodedImage exact = decode(bytes, o);
  EXPECT_EQ(exact.scale_denominator, 2);
  EXPECT_EQ(exact.image.width, 200);
  EXPECT_EQ(exact.image.height, 150);
  EXPECT_LT(mean_abs_diff(exact.image, resize_bilinear(source, 200, 150)), 4.0);

  // PNG: always full size, then the optional resize.
  const DecodedImage png = decode(S::png(source), o);
  EXPECT_EQ(png.scale_denominator, 1);
  EXPECT_EQ(png.image.width, 200);
}

TEST(Scaling, TargetIsInDisplayedOrientation) {
  // Stored 640x480 with orientation 6: displayed 480x640. A 240x320 target is half the displayed size.
  const std::string bytes = S::jpeg(S::pattern(640, 480), {90, false, S::JpegColor::ycbcr, 6});
  DecodeOptions o;
  o.target_width = 240;
  o.target_height = 320;
  const DecodedImage d = decode(bytes, o);
  EXPECT_EQ(d.scale_denominator, 2);
  EXPECT_EQ(d.image.width, 240);
  EXPECT_EQ(d.image.height, 320);
  o.target_width = 300;  // 300 > 480/2: full size
  EXPECT_EQ(decode(bytes, o).scale_denominator, 1);
}

TEST(Scaling, ResizeBilinearAveragesAndKeepsFlatAreasFlat) {
  RgbImage flat(50, 30);
  for (auto& v : flat.pixels) v = 77;
  const RgbImage small = resize_bilinear(flat, 7, 5);
  for (auto v : small.pixels) EXPECT_EQ(v, 77);
  const RgbImage large = resize_bilinear(flat, 123, 71);
  for (auto v : large.pixels) EXPECT_EQ(v, 77);
  // A 2x reduction of a 1-pixel checkerboard averages to mid-grey (a point sampler would give 0 or 255).
  RgbImage checker(64, 64);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) {
      const uint8_t v = (x + y) % 2 ? 255 : 0;
      checker.set(x, y, Rgb{v, v, v});
    }
  const RgbImage half = resize_bilinear(checker, 32, 32);
  for (int y = 2; y < 30; ++y)
    for (int x = 2; x < 30; ++x) EXPECT_NEAR(half.at(x, y)[0], 128, 2);
}

// ----------------------------------------------------------------------------------------------------------
// Probe

TEST(Probe, AgreesWithDecodeWithoutDecoding) {
  TempDir dir;
  const RgbImage source = S::pattern(60, 40);
  struct Case {
    std::string name, bytes;
    ColorModel color;
    bool progressive;
    int channels;
  };
  S::JpegSpec prog{90, true};
  S::JpegSpec cmyk{90};
  cmyk.color = S::JpegColor::ycck_adobe_inverted;
  S::JpegSpec rotated{90, false, S::JpegColor::ycbcr, 8, true};
  S::PngSpec interlaced;
  interlaced.interlaced = true;
  interlaced.color = S::PngColor::gray_alpha;
  interlaced.exif_orientation = 5;
  S::PngSpec pal;
  pal.color = S::PngColor::palette;
  pal.bit_depth = 4;
  const std::vector<Case> cases = {
      {"a.jpg", S::jpeg(source), ColorModel::ycbcr, false, 3},
      {"b.jpg", S::jpeg(source, prog), ColorModel::ycbcr, true, 3},
      {"c.jpg", S::jpeg(source, cmyk), ColorModel::ycck, false, 4},
      {"d.jpg", S::jpeg(source, rotated), ColorModel::ycbcr, false, 3},
      {"e.png", S::png(source, interlaced), ColorModel::gray_alpha, true, 2},
      {"f.png", S::png(source, pal), ColorModel::palette, false, 1},
  };
  for (const Case& c : cases) {
    write(dir / c.name, c.bytes);
    const ImageInfo p = probe_image(dir / c.name);
    const DecodedImage d = decode_image(dir / c.name);
    EXPECT_EQ(p.format, d.info.format) << c.name;
    EXPECT_EQ(p.stored_width, d.info.stored_width) << c.name;
    EXPECT_EQ(p.stored_height, d.info.stored_height) << c.name;
    EXPECT_EQ(p.orientation, d.info.orientation) << c.name;
    EXPECT_EQ(p.width, d.image.width) << c.name;
    EXPECT_EQ(p.height, d.image.height) << c.name;
    EXPECT_EQ(p.channels, c.channels) << c.name;
    EXPECT_EQ(p.color, c.color) << c.name;
    EXPECT_EQ(p.progressive, c.progressive) << c.name;
    EXPECT_EQ(p.file_size, c.bytes.size()) << c.name;
    EXPECT_TRUE(p.end_marker_seen) << c.name;
    EXPECT_FALSE(p.extension_mismatch) << c.name;
    const ImageInfo m = probe_image_bytes(c.bytes.data(), c.bytes.size(), c.name);
    EXPECT_EQ(m.width, p.width);
    EXPECT_EQ(m.orientation, p.orientation);
    EXPECT_TRUE(m.end_marker_seen);
  }
  EXPECT_EQ(probe_image(dir / "d.jpg").orientation, 8);
  EXPECT_EQ(probe_image(dir / "d.jpg").width, 40);
  EXPECT_EQ(probe_image(dir / "e.png").height, 60);
}

TEST(Probe, ReadsHeadersLongerThanItsFirstRead) {
  // An APP2 segment of 60 KB (like an ICC profile) plus the EXIF after it push the frame header past 64 KiB.
  TempDir dir;
  std::string bytes = S::jpeg(S::pattern(30, 20), {90, false, S::JpegColor::ycbcr, 6});
  std::string app2 = "\xFF\xE2";
  app2 += static_cast<char>(0xEA), app2 += static_cast<char>(0x62);  // length 60002
  app2 += std::string(60000, 'x');
  bytes.insert(2, app2 + app2);
  write(dir / "big-header.jpg", bytes);
  const ImageInfo info = probe_image(dir / "big-header.jpg");
  EXPECT_EQ(info.orientation, 6);
  EXPECT_EQ(info.width, 20);
  EXPECT_EQ(decode_image(dir / "big-header.jpg").image.width, 20);
}

TEST(Probe, SeesAMissingEndAndAWrongExtension) {
  TempDir dir;
  std::string jpg = S::jpeg(S::pattern(64, 64));
  write(dir / "cut.jpg", jpg.substr(0, jpg.size() * 6 / 10));
  const ImageInfo cut = probe_image(dir / "cut.jpg");
  EXPECT_EQ(cut.width, 64);  // the header is whole
  EXPECT_FALSE(cut.end_marker_seen);
  std::string png = S::png(S::pattern(64, 64));
  write(dir / "cut.png", png.substr(0, png.size() - 12));  // without IEND
  EXPECT_FALSE(probe_image(dir / "cut.png").end_marker_seen);

  write(dir / "really-a-png.jpg", png);
  const ImageInfo mismatch = probe_image(dir / "really-a-png.jpg");
  EXPECT_EQ(mismatch.format, ImageFormat::png);
  EXPECT_TRUE(mismatch.extension_mismatch);
  const DecodedImage d = decode_image(dir / "really-a-png.jpg");  // decodes fine, by its magic bytes
  EXPECT_TRUE(d.info.extension_mismatch);
  EXPECT_EQ(max_abs_diff(d.image, S::pattern(64, 64)), 0);
}

TEST(Probe, ReportsABombWithoutRefusingIt) {
  const std::string bomb = S::png_claiming(100000, 100000);
  const ImageInfo info = probe_image_bytes(bomb.data(), bomb.size());
  EXPECT_EQ(info.pixel_count(), 10000000000ull);
  std::string text;
  EXPECT_EQ(problem_of([&] { check_pixel_limit(info, kDefaultMaxImagePixels, "bomb.png"); }, &text),
            ImageProblem::too_large);
  EXPECT_NE(text.find("bomb.png"), std::string::npos) << text;
  EXPECT_NE(text.find("100000x100000"), std::string::npos) << text;
  check_pixel_limit(info, 10000000000ull, "bomb.png");  // at the limit: accepted
}

// ----------------------------------------------------------------------------------------------------------
// Bad files

TEST(BadFiles, MissingDirectoryAndEmptyFilesNameTheFile) {
  TempDir dir;
  std::string text;
  EXPECT_EQ(problem_of([&] { decode_image(dir / "nope.jpg"); }, &text), ImageProblem::unreadable);
  EXPECT_NE(text.find("nope.jpg"), std::string::npos) << text;
  EXPECT_NE(text.find("not found"), std::string::npos) << text;
  EXPECT_EQ(problem_of([&] { probe_image(dir.path()); }), ImageProblem::unreadable);
  write(dir / "empty.png", "");
  EXPECT_EQ(problem_of([&] { decode_image(dir / "empty.png"); }, &text), ImageProblem::empty);
  EXPECT_NE(text.find("empty.png"), std::string::npos) << text;
  EXPECT_EQ(problem_of([&] { probe_image(dir / "empty.png"); }), ImageProblem::empty);
}

TEST(BadFiles, UnknownAndUnsupportedFormats) {
  std::string text;
  EXPECT_EQ(bytes_problem("this is a text file, not an image", &text), ImageProblem::unknown_format);
  EXPECT_NE(text.find("bad.img"), std::string::npos) << text;
  EXPECT_NE(text.find("74 68 69 73"), std::string::npos) << text;  // "this" in hex
  EXPECT_EQ(bytes_problem("GIF89a\x10\0\x10\0\0\0\0;", &text), ImageProblem::unsupported);
  EXPECT_NE(text.find("GIF"), std::string::npos) << text;
  EXPECT_NE(text.find("convert"), std::string::npos) << text;
  EXPECT_EQ(bytes_problem("\xFF\xD8\xFF"), ImageProblem::truncated);  // JPEG magic, nothing else
  // A 12-bit JPEG header (SOF1 with precision 12): recognised, not decodable by an 8-bit libjpeg.
  std::string twelve = S::jpeg(S::pattern(8, 8));
  twelve[twelve.find("\xFF\xC0") + 4] = 12;
  EXPECT_EQ(bytes_problem(twelve, &text), ImageProblem::unsupported);
  EXPECT_NE(text.find("12-bit"), std::string::npos) << text;
}

TEST(BadFiles, TruncatedJpegsAreTruncatedWhereverTheyEnd) {
  for (bool progressive : {false, true}) {
    const std::string bytes = S::jpeg(S::pattern(96, 64), {90, progressive});
    std::string text;
    EXPECT_EQ(bytes_problem(bytes.substr(0, bytes.size() * 6 / 10), &text), ImageProblem::truncated);
    EXPECT_NE(text.find("truncated"), std::string::npos) << text;
    EXPECT_NE(text.find("bad.img"), std::string::npos) << text;
    // Only the 2-byte end-of-image marker is missing: libjpeg has every scanline but the file is cut.
    EXPECT_EQ(bytes_problem(bytes.substr(0, bytes.size() - 2)), ImageProblem::truncated);
    EXPECT_EQ(bytes_problem(bytes.substr(0, 30)), ImageProblem::truncated);  // inside the header
    // Every cut point gives an ImageError, never a crash or a grey-filled image.
    for (std::size_t n = 3; n < bytes.size(); n += 37) {  // from the 3 magic bytes on
      const ImageProblem p = bytes_problem(bytes.substr(0, n));
      EXPECT_TRUE(p == ImageProblem::truncated || p == ImageProblem::corrupt) << "cut at " << n;
    }
  }
}

TEST(BadFiles, DamagedEntropyDataIsCorrupt) {
  // An EOI marker in the middle of the scan: libjpeg warns "premature end of data segment" and would fill
  // the rest with grey; detkit refuses the image.
  std::string bytes = S::jpeg(S::pattern(96, 96));
  const std::size_t sos = bytes.find("\xFF\xDA");
  const std::size_t mid = sos + (bytes.size() - sos) / 2;
  bytes[mid] = '\xFF';
  bytes[mid + 1] = '\xD9';
  std::string text;
  EXPECT_EQ(bytes_problem(bytes, &text), ImageProblem::corrupt);
  EXPECT_NE(text.find("premature end of data segment"), std::string::npos) << text;
  // Garbled header bytes (synth's corrupt_image defect: random bytes after the first 20).
  std::string garbled = S::jpeg(S::pattern(96, 96));
  uint32_t state = 12345;
  for (std::size_t i = 20; i < garbled.size(); ++i) garbled[i] = static_cast<char>((state = state * 1103515245u + 12345u) >> 24);
  EXPECT_EQ(bytes_problem(garbled), ImageProblem::corrupt);
}

TEST(BadFiles, HarmlessJpegWarningsAreTolerated) {
  // Stray bytes between two marker segments: libjpeg warns "extraneous bytes before marker" and decodes
  // every pixel, as PIL and browsers do.
  std::string bytes = S::jpeg(S::pattern(32, 32));
  const std::size_t dqt = bytes.find("\xFF\xDB");
  bytes.insert(dqt, "\x00\x00\x00", 3);
  const DecodedImage d = decode(bytes);
  EXPECT_GE(d.warnings, 1);
  EXPECT_EQ(max_abs_diff(d.image, decode(S::jpeg(S::pattern(32, 32))).image), 0);
}

TEST(BadFiles, TooManyProgressiveScansAreRefused) {
  // A valid but hostile progressive JPEG: 631 scans (one per AC coefficient and bit), each a pass over the
  // image. libjpeg would decode it; detkit stops at 500 scans.
  RgbImage source = S::pattern(16, 16);
  std::vector<jpeg_scan_info> script;
  script.push_back({1, {0}, 0, 0, 0, 0});
  for (int k = 1; k < 64; ++k) script.push_back({1, {0}, k, k, 0, 9});
  for (int al = 8; al >= 0; --al)
    for (int k = 1; k < 64; ++k) script.push_back({1, {0}, k, k, al + 1, al});
  ASSERT_GT(script.size(), 500u);
  // Encode with libjpeg directly: the samples helper only knows jpeg_simple_progression.
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr err{};
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = cinfo.image_height = 16;
  cinfo.input_components = 1;
  cinfo.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  cinfo.scan_info = script.data();
  cinfo.num_scans = static_cast<int>(script.size());
  jpeg_start_compress(&cinfo, TRUE);
  std::vector<uint8_t> row(16);
  while (cinfo.next_scanline < 16) {
    for (int x = 0; x < 16; ++x) row[x] = source.at(x, static_cast<int>(cinfo.next_scanline))[0];
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&cinfo, &r, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  const std::string bytes(reinterpret_cast<const char*>(buffer), size);
  std::free(buffer);
  std::string text;
  EXPECT_EQ(bytes_problem(bytes, &text), ImageProblem::corrupt);
  EXPECT_NE(text.find("500 progressive scans"), std::string::npos) << text;
}

TEST(BadFiles, TruncatedAndCorruptPngs) {
  const std::string bytes = S::png(S::pattern(64, 48));
  std::string text;
  EXPECT_EQ(bytes_problem(bytes.substr(0, bytes.size() * 6 / 10), &text), ImageProblem::truncated);
  EXPECT_NE(text.find("truncated"), std::string::npos) << text;
  EXPECT_EQ(bytes_problem(bytes.substr(0, bytes.size() - 12)), ImageProblem::truncated);  // no IEND
  EXPECT_EQ(bytes_problem(bytes.substr(0, 20)), ImageProblem::truncated);                 // inside IHDR
  for (std::size_t n = 8; n < bytes.size(); n += 23) {  // from the 8-byte signature on
    const ImageProblem p = bytes_problem(bytes.substr(0, n));
    EXPECT_TRUE(p == ImageProblem::truncated || p == ImageProblem::corrupt) << "cut at " << n;
  }
  std::string flipped = bytes;
  const std::size_t idat = flipped.find("IDAT");
  flipped[idat + 10] ^= 0x55;  // a changed byte in the compressed data: zlib sees it first
  EXPECT_EQ(bytes_problem(flipped, &text), ImageProblem::corrupt);
  std::string bad_crc = bytes;
  const std::size_t idat_length = (uint8_t(bytes[idat - 4]) << 24) | (uint8_t(bytes[idat - 3]) << 16) |
                                  (uint8_t(bytes[idat - 2]) << 8) | uint8_t(bytes[idat - 1]);
  bad_crc[idat + 4 + idat_length] ^= 0x01;  // the data is intact, its CRC is not
  EXPECT_EQ(bytes_problem(bad_crc, &text), ImageProblem::corrupt);
  EXPECT_NE(text.find("CRC"), std::string::npos) << text;
  EXPECT_EQ(bytes_problem(S::png_claiming(0, 10), &text), ImageProblem::corrupt);
  std::string bad_type = bytes;
  bad_type[25] = 5;  // colour type 5 does not exist (CRC not fixed: the scanner rejects it first)
  EXPECT_EQ(bytes_problem(bad_type), ImageProblem::corrupt);
}

TEST(BadFiles, DecompressionBombsAreRefusedBeforeAllocating) {
  for (const std::string& bomb : {S::jpeg_claiming(60000, 60000), S::png_claiming(60000, 60000)}) {
    g_largest_allocation = 0;
    std::string text;
    EXPECT_EQ(bytes_problem(bomb, &text), ImageProblem::too_large);
    EXPECT_LT(g_largest_allocation.load(), 1u << 20) << "a buffer was allocated for the bomb";
    EXPECT_NE(text.find("60000x60000"), std::string::npos) << text;
    EXPECT_NE(text.find(std::to_string(kDefaultMaxImagePixels)), std::string::npos) << text;
  }
  // The limit is configurable and inclusive.
  const std::string small = S::png(S::pattern(16, 16));
  DecodeOptions o;
  o.max_pixels = 255;
  EXPECT_EQ(bytes_problem(small, nullptr, o), ImageProblem::too_large);
  o.max_pixels = 256;
  EXPECT_EQ(decode(small, o).image.width, 16);
  // A header under the limit that claims more than its data holds is corrupt (found while decoding).
  EXPECT_EQ(bytes_problem(S::png_claiming(2000, 2000)), ImageProblem::corrupt);
}

TEST(BadFiles, InvalidOptionsAreUsageErrors) {
  const std::string bytes = S::png(S::pattern(4, 4));
  DecodeOptions o;
  o.max_pixels = 0;
  EXPECT_THROW(decode(bytes, o), UsageError);
  o = {};
  o.target_width = -1;
  EXPECT_THROW(decode(bytes, o), UsageError);
  o = {};
  o.resize_to_target = true;
  o.target_width = 10;
  EXPECT_THROW(decode(bytes, o), UsageError);
}

TEST(BadFiles, RandomMutationsNeverEscapeAsAnythingButImageError) {
  // A small, deterministic stand-in for the fuzzers, so the plain unit tests also exercise hostile input.
  const std::string seeds[] = {S::jpeg(S::pattern(24, 16)), S::jpeg(S::pattern(24, 16), {80, true}),
                               S::png(S::pattern(24, 16)), S::png(S::pattern(24, 16), {S::PngColor::palette, 4, true})};
  uint32_t state = 7;
  auto next = [&] { return (state = state * 1664525u + 1013904223u) >> 8; };
  int decoded = 0, refused = 0;
  for (const std::string& seed : seeds)
    for (int round = 0; round < 150; ++round) {
      std::string m = seed;
      const int edits = 1 + next() % 4;
      for (int e = 0; e < edits; ++e) m[next() % m.size()] = static_cast<char>(next());
      try {
        DecodeOptions o;
        o.max_pixels = 1 << 22;
        decode(m, o);
        ++decoded;
      } catch (const ImageError&) {
        ++refused;
      }
      try {
        probe_image_bytes(m.data(), m.size());
      } catch (const ImageError&) {
      }
    }
  EXPECT_EQ(decoded + refused, 600);
  EXPECT_GT(refused, 0);
}

// ----------------------------------------------------------------------------------------------------------
// The planted defects of `detkit synth --plant-defects` are seen as what they are.

TEST(SynthDefects, DecodeSeesCorruptTruncatedAndRotatedImages) {
  TempDir dir;
  SynthOptions options;
  options.train_images = 16;
  options.val_images = 4;
  options.sizes = {"160x120", "96x128"};
  options.plant_defects = true;
  options.seed = 5;
  const SynthResult result = generate_synthetic_dataset(options, dir / "ds");
  int checked = 0;
  for (const PlantedDefect& d : result.defects) {
    const fs::path file = dir / "ds" / d.file;
    if (d.kind == "corrupt_image") {
      EXPECT_EQ(problem_of([&] { decode_image(file); }), ImageProblem::corrupt) << d.file;
      ++checked;
    } else if (d.kind == "truncated_image") {
      EXPECT_EQ(problem_of([&] { decode_image(file); }), ImageProblem::truncated) << d.file;
      EXPECT_FALSE(probe_image(file).end_marker_seen) << d.file;
      ++checked;
    } else if (d.kind == "exif_rotated") {
      const ImageInfo info = probe_image(file);
      EXPECT_EQ(info.orientation, 6);
      for (const Split& split : result.dataset.splits)
        for (const ImageRecord& im : split.images)
          if (im.id == d.image_id) {
            EXPECT_EQ(info.width, im.width);
            EXPECT_EQ(info.height, im.height);
            EXPECT_NE(info.stored_width, im.width);
            const DecodedImage decoded = decode_image(file);
            EXPECT_EQ(decoded.image.width, im.width);
            ++checked;
          }
    }
  }
  EXPECT_EQ(checked, 3);
}
