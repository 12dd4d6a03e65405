// Writes the fuzzers' seed corpus: small valid inputs of every kind each parser handles, made from code so
// that no binary files live in the repository. Usage: detkit_fuzz_seeds OUTDIR (writes OUTDIR/<kind>/...).
#include <exception>
#include <fstream>
#include <iostream>
#include <string>

#include "core/fs.h"
#include "image_samples.h"
#include "pt_samples.h"

namespace S = detkit::samples;
namespace pt = detkit::samples::pt;
namespace fs = std::filesystem;

namespace {

void put(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary);
  out << bytes;
  if (!out) throw std::runtime_error("cannot write " + (dir / name).string());
}

void images(const fs::path& out) {
  // Small pictures: the fuzzer mutates every byte, and a small image keeps each run in microseconds.
  const detkit::RgbImage a = S::pattern(16, 12), b = S::pattern(9, 17, 2);
  const fs::path j = out / "jpeg";
  put(j, "baseline.jpg", S::jpeg(a));
  put(j, "progressive.jpg", S::jpeg(b, {80, true}));
  put(j, "restart-444.jpg", S::jpeg(a, {90, false, S::JpegColor::ycbcr, 0, false, 1, false}));
  put(j, "gray.jpg", S::jpeg(b, {90, false, S::JpegColor::gray}));
  put(j, "rgb.jpg", S::jpeg(a, {90, false, S::JpegColor::rgb}));
  put(j, "cmyk.jpg", S::jpeg(a, {90, false, S::JpegColor::cmyk}));
  put(j, "ycck-progressive.jpg", S::jpeg(b, {90, true, S::JpegColor::ycck_adobe_inverted}));
  put(j, "exif6-le.jpg", S::jpeg(a, {90, false, S::JpegColor::ycbcr, 6, false}));
  put(j, "exif5-be.jpg", S::jpeg(b, {90, false, S::JpegColor::ycbcr, 5, true}));
  const fs::path p = out / "png";
  int n = 0;
  for (S::PngColor c : {S::PngColor::gray, S::PngColor::gray_alpha, S::PngColor::rgb, S::PngColor::rgba, S::PngColor::palette})
    for (int depth : {1, 4, 8, 16}) {
      const bool palette = c == S::PngColor::palette, gray = c == S::PngColor::gray;
      if (depth < 8 && !palette && !gray) continue;
      if (depth == 16 && palette) continue;
      S::PngSpec spec;
      spec.color = c;
      spec.bit_depth = depth;
      spec.interlaced = (n % 2) == 1;
      spec.trns = (palette || gray) && depth == 4;
      spec.exif_orientation = (n % 3 == 0) ? 1 + n % 8 : 0;
      put(p, "png-" + std::to_string(n) + ".png", S::png(n % 2 ? a : b, spec));
      ++n;
    }
}

void annotations(const fs::path& out) {
  put(out / "coco", "small.json", R"({"images":[{"id":1,"file_name":"a.jpg","width":640,"height":480},
 {"id":2,"file_name":"b.png","width":32,"height":16}],
 "annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[10,20,30.5,40],"area":1220,"iscrowd":0},
 {"id":2,"image_id":2,"category_id":2,"bbox":[0,0,32,16],"area":512,"iscrowd":1,"segmentation":[]},
 {"id":3,"image_id":9,"category_id":3,"bbox":[1,2,3],"iscrowd":0}],
 "categories":[{"id":1,"name":"cat"},{"id":2,"name":"dog"}]})");
  put(out / "coco", "empty.json", R"({"images":[],"annotations":[],"categories":[]})");
  // YOLO: the first byte is the harness's selector (class count and whether the size is known).
  put(out / "yolo", "labels.txt", std::string("\x45") + "0 0.5 0.5 0.25 0.5\n1 0.1 0.2 0.05 0.05\n4 0.9 0.9 0.2 0.2\n");
  put(out / "yolo", "odd.txt", std::string("\x03") + "0 0.5 0.5 0.25\n2 nan 0.5 0.1 0.1\r\n7 1.5 -0.2 0.3 0.3\n\n# c\n");
  put(out / "voc", "one.xml", R"(<annotation><folder>VOC</folder><filename>000001.jpg</filename>
<size><width>640</width><height>480</height><depth>3</depth></size>
<object><name>cat</name><truncated>0</truncated><difficult>1</difficult>
<bndbox><xmin>10</xmin><ymin>20</ymin><xmax>110</xmax><ymax>220.5</ymax></bndbox></object>
<object><name>dog</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>4</xmax></bndbox></object>
</annotation>)");
}

// PyTorch checkpoints (pt_samples.h, shared with the pt_file tests): the zip and legacy forms torch.save
// writes, and bare pickles for the pickle reader the harness also runs.
void checkpoints(const fs::path& out) {
  const fs::path d = out / "pt";
  const std::string four = pt::floats({1, 2, 3, 4});
  put(d, "state_dict.pt", pt::small_torch_zip());
  // A parameter in float16, a transposed view and two views of one storage, written big-endian.
  pt::TensorSpec half, transposed, row;
  half.name = "half";
  half.storage_type = "HalfStorage";
  half.shape = {4};
  half.stride = {1};
  half.parameter = true;
  transposed.name = "t";
  transposed.storage_key = "1";
  transposed.stride = {1, 2};
  row.name = "row";
  row.storage_key = "1";
  row.offset = 2;
  row.shape = {2};
  row.stride = {1};
  std::string be = four;
  for (std::size_t i = 0; i < be.size(); i += 4) std::swap(be[i], be[i + 3]), std::swap(be[i + 1], be[i + 2]);
  put(d, "views-big-endian.pt",
      pt::torch_zip(pt::state_dict_pickle({half, transposed, row}), {{"0", std::string("\x3c\x00\x40\x00\x42\x00\x44\x00", 8)}, {"1", be}},
                    "model", "big"));
  pt::TensorSpec weight, running;
  weight.name = "weight";
  running.name = "running";
  running.storage_key = "1";
  running.storage_numel = 2;
  running.shape = {2};
  running.stride = {1};
  put(d, "module-tree.pt", pt::torch_zip(pt::module_tree_pickle(weight, running), {{"0", four}, {"1", pt::floats({5, 6})}}));
  put(d, "legacy.pt", pt::torch_legacy(pt::state_dict_pickle({pt::TensorSpec{}}, true), {{"0", four}}));
  put(d, "state_dict.pkl", pt::state_dict_pickle({pt::TensorSpec{}}));
  put(d, "protocol0.pkl", "((lp0\nI1\naVcaf\\u00e9\nF1.5\nS'q\\n'\np1\ng1\nccollections\nOrderedDict\n(tRVa\nL12345678901234567890L\nsI01\n"
                          "(I1\nimymod\nT\n(dVk\nNsbPid\ntp2\n.");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: detkit_fuzz_seeds OUTDIR\n";
    return 2;
  }
  try {
    images(argv[1]);
    annotations(argv[1]);
    checkpoints(argv[1]);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
