#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/fs.h"
#include "core/progress.h"
#include "core/threads.h"
#include "data/image_write.h"
#include "data/synth.h"
#include "test_util.h"

using namespace detkit;
using detkit::testing::TempDir;

namespace {

SynthOptions small_options() {
  SynthOptions o;
  o.train_images = 14;
  o.val_images = 4;
  o.sizes = {"160x120", "96x128"};
  o.seed = 11;
  return o;
}

// All files under `root` with their contents, keyed by relative path.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(root))
    if (entry.is_regular_file()) files[fs::relative(entry.path(), root).string()] = read_file(entry.path());
  return files;
}

RgbImage decode_png(const std::string& bytes) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  EXPECT_TRUE(png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()));
  image.format = PNG_FORMAT_RGB;
  RgbImage out(static_cast<int>(image.width), static_cast<int>(image.height));
  EXPECT_TRUE(png_image_finish_read(&image, nullptr, out.pixels.data(), 0, nullptr));
  return out;
}

struct JpegInfo {
  int width = 0, height = 0;
  bool has_exif = false;
};

struct JpegErr {
  jpeg_error_mgr base;
  std::jmp_buf jump;
};

JpegInfo read_jpeg_header(const std::string& bytes) {
  jpeg_decompress_struct cinfo{};
  JpegErr err{};
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = [](j_common_ptr c) { std::longjmp(reinterpret_cast<JpegErr*>(c->err)->jump, 1); };
  JpegInfo info;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return info;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  info.width = static_cast<int>(cinfo.image_width);
  info.height = static_cast<int>(cinfo.image_height);
  for (auto* m = cinfo.marker_list; m; m = m->next)
    if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 && std::string(reinterpret_cast<char*>(m->data), 4) == "Exif")
      info.has_exif = true;
  jpeg_destroy_decompress(&cinfo);
  return info;
}

}  // namespace

TEST(SynthImage, BoxesBoundExactlyTheVisiblePixels) {
  SynthOptions o = small_options();
  o.sizes = {"200x150"};
  o.max_objects = 20;
  int checked = 0;
  for (int64_t index = 0; index < 12; ++index) {
    const SynthImage image = render_synthetic_image(o, index);
    for (std::size_t k = 0; k < image.annotations.size(); ++k) {
      int x1 = 1 << 30, y1 = 1 << 30, x2 = -1, y2 = -1;
      for (int y = 0; y < image.pixels.height; ++y)
        for (int x = 0; x < image.pixels.width; ++x)
          if (image.owner[static_cast<std::size_t>(y) * image.pixels.width + x] == static_cast<int32_t>(k)) {
            x1 = std::min(x1, x); y1 = std::min(y1, y); x2 = std::max(x2, x + 1); y2 = std::max(y2, y + 1);
          }
      const Box& b = image.annotations[k].box;
      EXPECT_EQ(b.a, x1); EXPECT_EQ(b.b, y1); EXPECT_EQ(b.c, x2); EXPECT_EQ(b.d, y2);
      EXPECT_GE(b.a, 0); EXPECT_LE(b.c, 200); EXPECT_GE(b.b, 0); EXPECT_LE(b.d, 150);
      EXPECT_GE(image.annotations[k].category_id, 1);
      EXPECT_LE(image.annotations[k].category_id, o.classes);
      ++checked;
    }
  }
  EXPECT_GT(checked, 30);
}

TEST(SynthImage, SimpleSetsHaveWholeUprightShapesOnAPlainBackground) {
  SynthOptions o = small_options();
  o.sizes = {"200x150"};
  o.max_objects = 4;
  o.min_object_px = 20;
  o.noise = 0;
  o.simple = true;
  int whole = 0, total = 0;
  for (int64_t index = 0; index < 12; ++index) {
    const SynthImage image = render_synthetic_image(o, index);
    for (const auto& a : image.annotations) {
      const Box& b = a.box;
      // Never cut by the border (occlusion by a later shape may still shrink a box).
      EXPECT_GT(b.a, 0); EXPECT_LT(b.c, 200); EXPECT_GT(b.b, 0); EXPECT_LT(b.d, 150);
      whole += std::abs(b.width() - b.height()) <= 2 ? 1 : 0;  // circles and squares stay round / square
      ++total;
    }
    // No clutter: a pixel owned by no object is the background gradient, the same across each row.
    for (int y = 0; y < image.pixels.height; ++y) {
      const uint8_t* first = nullptr;
      for (int x = 0; x < image.pixels.width; ++x) {
        if (image.owner[static_cast<std::size_t>(y) * image.pixels.width + x] >= 0) continue;
        const uint8_t* p = image.pixels.at(x, y);
        if (!first) first = p;
        ASSERT_TRUE(p[0] == first[0] && p[1] == first[1] && p[2] == first[2]) << "image " << index << " row " << y;
      }
    }
  }
  EXPECT_GT(total, 10);
  EXPECT_GT(whole, total / 2);
}

TEST(SynthImage, SizesSpanTinyToLarge) {
  SynthOptions o;
  o.max_objects = 15;
  double smallest = 1e9, largest = 0;
  for (int64_t index = 0; index < 40; ++index)
    for (const auto& a : render_synthetic_image(o, index).annotations) {
      smallest = std::min(smallest, std::max(a.box.width(), a.box.height()));
      largest = std::max(largest, std::max(a.box.width(), a.box.height()));
    }
  EXPECT_LE(smallest, 8);
  EXPECT_GE(largest, 250);
}

TEST(Synth, SameSeedSameBytesWhateverTheThreadCount) {
  TempDir dir;
  set_thread_count(1);
  generate_synthetic_dataset(small_options(), dir / "a");
  set_thread_count(2);
  generate_synthetic_dataset(small_options(), dir / "b");
  EXPECT_EQ(snapshot(dir / "a"), snapshot(dir / "b"));
  SynthOptions other = small_options();
  other.seed = 12;
  generate_synthetic_dataset(other, dir / "c");
  EXPECT_NE(snapshot(dir / "a"), snapshot(dir / "c"));
  set_thread_count(0);
}

TEST(Synth, WritesEachLayout) {
  TempDir dir;
  for (auto format : {AnnotationFormat::coco, AnnotationFormat::yolo, AnnotationFormat::voc}) {
    SynthOptions o = small_options();
    o.format = format;
    const fs::path root = dir / to_string(format);
    const SynthResult r = generate_synthetic_dataset(o, root);
    EXPECT_EQ(r.dataset.image_count(), 18u);
    for (const auto& split : r.dataset.splits)
      for (const auto& im : split.images) EXPECT_TRUE(fs::exists(root / image_relative_path(format, split.name, im.file_name))) << im.file_name;
    EXPECT_TRUE(fs::exists(root / "synth.json"));
  }
  EXPECT_TRUE(fs::exists(dir / "coco" / "annotations" / "instances_train.json"));
  EXPECT_TRUE(fs::exists(dir / "yolo" / "data.yaml"));
  EXPECT_TRUE(fs::exists(dir / "yolo" / "labels" / "val"));
  EXPECT_TRUE(fs::exists(dir / "voc" / "ImageSets" / "Main" / "train.txt"));
}

TEST(Synth, PlantedDefectsAreRealAndListed) {
  TempDir dir;
  SynthOptions o = small_options();
  o.plant_defects = true;
  const SynthResult r = generate_synthetic_dataset(o, dir / "d");
  std::set<std::string> kinds;
  for (const auto& d : r.defects) kinds.insert(d.kind);
  EXPECT_EQ(kinds, (std::set<std::string>{"out_of_bounds_box", "degenerate_box", "unknown_class", "corrupt_image",
                                          "truncated_image", "duplicate_image", "train_val_leakage", "exif_rotated",
                                          "size_mismatch"}));
  const auto manifest = nlohmann::json::parse(read_file(dir / "d" / "synth.json"));
  EXPECT_EQ(manifest["defects"].size(), r.defects.size());
  std::map<std::string, const PlantedDefect*> by_kind;
  for (const auto& d : r.defects) by_kind[d.kind] = &d;
  const fs::path root = dir / "d";
  // The duplicate and the leaked image have exactly the bytes of their source.
  const std::string source = by_kind["duplicate_image"]->detail.substr(std::string("same bytes as ").size());
  EXPECT_EQ(read_file(root / by_kind["duplicate_image"]->file), read_file(root / source));
  EXPECT_EQ(read_file(root / by_kind["train_val_leakage"]->file), read_file(root / source));
  // The EXIF image is stored sideways and carries the EXIF segment.
  const JpegInfo exif = read_jpeg_header(read_file(root / by_kind["exif_rotated"]->file));
  EXPECT_TRUE(exif.has_exif);
  for (const auto& split : r.dataset.splits)
    for (const auto& im : split.images)
      if (im.id == by_kind["exif_rotated"]->image_id) {
        EXPECT_EQ(exif.width, im.height);
        EXPECT_EQ(exif.height, im.width);
      }
  // The corrupt and the truncated files are no longer decodable JPEGs of full length.
  EXPECT_EQ(read_jpeg_header(read_file(root / by_kind["corrupt_image"]->file)).width, 0);
  EXPECT_GT(by_kind["out_of_bounds_box"]->annotation_id, 0);
}

TEST(Synth, NeverWritesIntoANonEmptyDirectory) {
  TempDir dir;
  write_file_atomic(dir / "taken" / "keep.txt", "precious");
  EXPECT_THROW_WITH(generate_synthetic_dataset(small_options(), dir / "taken"), UsageError,
                    "exists and is not empty", "choose a new directory");
  EXPECT_EQ(read_file(dir / "taken" / "keep.txt"), "precious");
  SynthOptions bad = small_options();
  bad.sizes = {"640by480"};
  EXPECT_THROW_WITH(generate_synthetic_dataset(bad, dir / "x"), UsageError, "'640by480' is not WIDTHxHEIGHT", "640x480");
  bad = small_options();
  bad.plant_defects = true;
  bad.train_images = 5;
  EXPECT_THROW_WITH(generate_synthetic_dataset(bad, dir / "x"), UsageError, "at least 12 train", "--train 12");
  EXPECT_FALSE(fs::exists(dir / "x"));
}

TEST(Synth, InterruptedRunLeavesNothingBehind) {
  TempDir dir;
  set_interrupt_requested(true);
  EXPECT_THROW_WITH(generate_synthetic_dataset(small_options(), dir / "i"), InterruptedError, "interrupted", "again");
  set_interrupt_requested(false);
  EXPECT_TRUE(fs::is_empty(dir.path())) << "a partial dataset was left behind";
}

TEST(ImageWrite, PngIsLosslessAndJpegHasTheRightSize) {
  RgbImage image(37, 23);
  for (int y = 0; y < 23; ++y)
    for (int x = 0; x < 37; ++x) image.set(x, y, {static_cast<uint8_t>(x * 7), static_cast<uint8_t>(y * 11), 200});
  const RgbImage back = decode_png(encode_png(image));
  EXPECT_EQ(back.width, 37);
  EXPECT_EQ(back.pixels, image.pixels);
  const JpegInfo j = read_jpeg_header(encode_jpeg(image, 90));
  EXPECT_EQ(j.width, 37);
  EXPECT_EQ(j.height, 23);
  EXPECT_FALSE(j.has_exif);
  EXPECT_TRUE(read_jpeg_header(encode_jpeg(image, 90, 6)).has_exif);
  const RgbImage turned = rotate_counter_clockwise(rotate_clockwise(image));
  EXPECT_EQ(turned.pixels, image.pixels);
}
