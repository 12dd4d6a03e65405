// image_io against an independent decoder: Debian's python3 PIL decodes the same files (ImageOps.exif_transpose,
// convert("RGB"), draft() for DCT scaling, resize(BILINEAR)) and detkit must produce the same pixels.
// PIL links the same system libjpeg-turbo, so JPEG pixels are expected to be identical, not merely close.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/fs.h"
#include "data/image_io.h"
#include "image_samples.h"
#include "test_util.h"

using namespace detkit;
using detkit::testing::TempDir;
namespace S = detkit::samples;

namespace {

// For each line "IN OUT MODE W H" of a job file: decode IN with PIL and write OUT as "W H\n" + raw RGB.
// MODE: full (exif_transpose + convert RGB), draft (Image.draft to W x H, no transpose: detkit's target
// is then in stored orientation too), resize (full, then resize to W x H with BILINEAR).
const char* kPilScript = R"PY(
import sys
from PIL import Image, ImageOps
for line in open(sys.argv[1]):
    src, dst, mode, w, h = line.split()
    im = Image.open(src)
    if mode == "draft":
        im.draft("RGB", (int(w), int(h)))
        im = im.convert("RGB")
    else:
        im = ImageOps.exif_transpose(im).convert("RGB")
        if mode == "resize":
            im = im.resize((int(w), int(h)), Image.BILINEAR)
    with open(dst, "wb") as f:
        f.write(b"%d %d\n" % im.size)
        f.write(im.tobytes())
)PY";

struct Job {
  std::string name;
  std::string mode = "full";
  int width = 0, height = 0;
};

RgbImage read_raw(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  int w = 0, h = 0;
  in >> w >> h;
  in.get();
  RgbImage image(w, h);
  in.read(reinterpret_cast<char*>(image.pixels.data()), static_cast<std::streamsize>(image.pixels.size()));
  EXPECT_TRUE(in) << "short PIL output " << path;
  return image;
}

// Runs PIL over `jobs` (files in `dir`) and returns its images, in order.
std::vector<RgbImage> pil_decode(const fs::path& dir, const std::vector<Job>& jobs) {
  {
    std::ofstream(dir / "pil.py") << kPilScript;
    std::ofstream list(dir / "jobs.txt");
    for (std::size_t i = 0; i < jobs.size(); ++i)
      list << (dir / jobs[i].name).string() << ' ' << (dir / ("pil-" + std::to_string(i) + ".rgb")).string() << ' '
           << jobs[i].mode << ' ' << jobs[i].width << ' ' << jobs[i].height << '\n';
  }
  const std::string command = std::string(DETKIT_PYTHON) + " " + (dir / "pil.py").string() + " " + (dir / "jobs.txt").string();
  const int rc = std::system(command.c_str());
  EXPECT_EQ(rc, 0) << command << " (Debian's python3-pil is needed: scripts/bootstrap installs it)";
  std::vector<RgbImage> out;
  if (rc != 0) return out;
  for (std::size_t i = 0; i < jobs.size(); ++i) out.push_back(read_raw(dir / ("pil-" + std::to_string(i) + ".rgb")));
  return out;
}

int max_abs_diff(const RgbImage& a, const RgbImage& b) {
  if (a.width != b.width || a.height != b.height) return 1000;
  int worst = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) worst = std::max(worst, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  return worst;
}

void write(const fs::path& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

}  // namespace

TEST(ImageReference, DecodedPixelsAndOrientationEqualPil) {
  TempDir dir;
  std::vector<Job> jobs;
  auto add = [&](const std::string& name, const std::string& bytes) {
    write(dir / name, bytes);
    jobs.push_back({name});
  };
  const RgbImage source = S::pattern(67, 43);
  add("baseline.jpg", S::jpeg(source));
  add("q75-444.jpg", S::jpeg(source, {75, false, S::JpegColor::ycbcr, 0, false, 0, false}));
  add("progressive.jpg", S::jpeg(source, {85, true}));
  add("restart.jpg", S::jpeg(source, {90, false, S::JpegColor::ycbcr, 0, false, 3}));
  add("gray.jpg", S::jpeg(source, {90, false, S::JpegColor::gray}));
  add("rgb.jpg", S::jpeg(source, {90, false, S::JpegColor::rgb}));
  add("cmyk-adobe.jpg", S::jpeg(source, {90, false, S::JpegColor::cmyk_adobe_inverted}));
  add("ycck-adobe.jpg", S::jpeg(source, {90, true, S::JpegColor::ycck_adobe_inverted}));
  for (int o = 1; o <= 8; ++o) {
    add("exif-le-" + std::to_string(o) + ".jpg", S::jpeg(source, {90, false, S::JpegColor::ycbcr, o, false}));
    add("exif-be-" + std::to_string(o) + ".jpg", S::jpeg(source, {90, o % 2 == 0, S::JpegColor::ycbcr, o, true}));
  }
  struct P {
    const char* name;
    S::PngSpec spec;
  };
  // 16-bit gray is left out on purpose: PIL's convert("RGB") clips I;16 values instead of scaling them.
  const P pngs[] = {{"rgb.png", {}},
                    {"rgb16.png", {S::PngColor::rgb, 16}},
                    {"rgba.png", {S::PngColor::rgba, 8}},
                    {"rgba16-interlaced.png", {S::PngColor::rgba, 16, true}},
                    {"gray.png", {S::PngColor::gray, 8}},
                    {"gray1.png", {S::PngColor::gray, 1}},
                    {"gray4-interlaced.png", {S::PngColor::gray, 4, true}},
                    {"gray-alpha.png", {S::PngColor::gray_alpha, 8}},
                    {"palette2-trns.png", {S::PngColor::palette, 2, false, true}},
                    {"palette8-interlaced.png", {S::PngColor::palette, 8, true}},
                    {"rgb-exif6.png", {S::PngColor::rgb, 8, false, false, 6}},
                    {"rgb-exif7.png", {S::PngColor::rgb, 8, true, false, 7}}};
  for (const P& p : pngs) add(p.name, S::png(source, p.spec));
  // A PNG named .jpg: both decoders go by content.
  add("png-named.jpg", S::png(source));

  const std::vector<RgbImage> pil = pil_decode(dir.path(), jobs);
  ASSERT_EQ(pil.size(), jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const DecodedImage ours = decode_image(dir / jobs[i].name);
    EXPECT_EQ(ours.image.width, pil[i].width) << jobs[i].name;
    EXPECT_EQ(ours.image.height, pil[i].height) << jobs[i].name;
    EXPECT_EQ(max_abs_diff(ours.image, pil[i]), 0) << jobs[i].name;
  }
}

TEST(ImageReference, DctScaledDecodeEqualsPilDraft) {
  // PIL's draft() asks libjpeg for the same scale when the target divides the size exactly.
  TempDir dir;
  std::vector<Job> jobs;
  std::vector<std::pair<int, int>> targets = {{320, 240}, {160, 120}, {80, 60}};
  write(dir / "pattern.jpg", S::jpeg(S::pattern(640, 480), {90}));
  write(dir / "pattern-prog.jpg", S::jpeg(S::pattern(640, 480, 3), {80, true}));
  std::vector<std::string> files = {"pattern.jpg", "pattern-prog.jpg"};
  const fs::path bccd = fs::path(DETKIT_TEST_DATA_DIR) / "bccd-trainval/JPEGImages";
  int n = 0;
  for (const auto& entry : fs::directory_iterator(bccd))
    if (entry.path().extension() == ".jpg" && n++ < 3) {
      fs::copy_file(entry.path(), dir / entry.path().filename());
      files.push_back(entry.path().filename().string());
    }
  ASSERT_EQ(n >= 3, true) << "fewer than 3 JPEG files in " << bccd;
  for (const std::string& f : files)
    for (auto [w, h] : targets) jobs.push_back({f, "draft", w, h});
  const std::vector<RgbImage> pil = pil_decode(dir.path(), jobs);
  ASSERT_EQ(pil.size(), jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    DecodeOptions o;
    o.target_width = jobs[i].width;
    o.target_height = jobs[i].height;
    o.apply_orientation = false;
    const DecodedImage ours = decode_image(dir / jobs[i].name, o);
    EXPECT_EQ(ours.image.width, jobs[i].width) << jobs[i].name;
    EXPECT_EQ(max_abs_diff(ours.image, pil[i]), 0) << jobs[i].name << " at " << jobs[i].width << "x" << jobs[i].height;
  }
}

TEST(ImageReference, ResizeBilinearMatchesPilWithinOneLevel) {
  TempDir dir;
  const RgbImage source = S::pattern(97, 61, 5);
  write(dir / "src.png", S::png(source));
  const std::vector<std::pair<int, int>> sizes = {{40, 30}, {48, 61}, {97, 20}, {13, 7}, {200, 100}, {150, 61}};
  std::vector<Job> jobs;
  for (auto [w, h] : sizes) jobs.push_back({"src.png", "resize", w, h});
  const std::vector<RgbImage> pil = pil_decode(dir.path(), jobs);
  ASSERT_EQ(pil.size(), jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i)
    EXPECT_LE(max_abs_diff(resize_bilinear(source, jobs[i].width, jobs[i].height), pil[i]), 1)
        << jobs[i].width << "x" << jobs[i].height;
}
