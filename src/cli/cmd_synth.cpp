#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/log.h"
#include "core/text.h"
#include "data/synth.h"

namespace detkit::cli {

int run_synth(const std::vector<std::string>& args) {
  SynthOptions o;
  std::string out, format = to_string(o.format), sizes = join(o.sizes, ","), json_path;
  bool json = false;
  CommonOptions common;
  OptionSet set("detkit synth", "write a deterministic synthetic detection dataset");
  set.add("--out", &out, "output directory; must not exist or be empty").alias("-o").value_name("DIR").required();
  set.add("--format", &format, "annotation layout").alias("-f").choices({"coco", "yolo", "voc"}).env("DETKIT_SYNTH_FORMAT");
  set.add("--seed", &o.seed, "random seed; the same seed writes identical files").range(0, 9.0e18);
  set.add("--train", &o.train_images, "images in the train split").range(1, 1000000);
  set.add("--val", &o.val_images, "images in the val split").range(0, 1000000);
  set.add("--classes", &o.classes, "shape classes: circle, square, triangle, cross, ring, diamond (first N)").range(1, 6);
  set.add("--max-objects", &o.max_objects, "most objects in one image").range(0, 500);
  set.add("--empty-fraction", &o.empty_fraction, "share of images with no objects").range(0, 1);
  set.add("--min-object-px", &o.min_object_px, "smallest object side in pixels").range(2, 4096);
  set.add("--png-fraction", &o.png_fraction, "share of images written as PNG (the rest JPEG)").range(0, 1);
  set.add("--jpeg-quality", &o.jpeg_quality, "JPEG quality").range(1, 100);
  set.add("--noise", &o.noise, "per-pixel noise amplitude in grey levels").range(0, 128);
  set.add("--simple", &o.simple, "an easy set: no clutter, upright undistorted shapes wholly inside the image");
  set.add("--sizes", &sizes, "comma-separated image sizes to draw from").value_name("WxH,...");
  set.add("--plant-defects", &o.plant_defects, "plant known defects and list them in synth.json").alias("--defects");
  set.add("--json", &json, "print the summary as JSON on stdout");
  add_common_options(set, common);
  set.epilog(
      "The dataset lands in DIR (written to a temporary directory first, then moved into place). DIR/synth.json\n"
      "records the options, counts and every planted defect (kind, file, image and annotation id).\n\n"
      "examples:\n  detkit synth --out data/shapes --format yolo --seed 7\n"
      "  detkit synth --out data/broken --plant-defects --train 40 --val 10");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);
  o.format = parse_annotation_format(format);
  o.sizes.clear();
  for (const auto& s : split(sizes, ','))
    if (!trim(s).empty()) o.sizes.push_back(trim(s));

  log_info("writing ", o.train_images + o.val_images, " synthetic images (", format, ") to ", out);
  const SynthResult result = generate_synthetic_dataset(o, out);

  std::map<int64_t, int64_t> per_class;
  for (const auto& s : result.dataset.splits)
    for (const auto& im : s.images)
      for (const auto& a : im.annotations) ++per_class[a.category_id];
  if (json) {
    nlohmann::ordered_json j;
    j["out"] = out;
    j["format"] = format;
    j["images"] = result.dataset.image_count();
    j["annotations"] = result.dataset.annotation_count();
    j["defects"] = result.defects.size();
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "wrote " << out << " (" << format << "): " << result.dataset.image_count() << " images, "
            << result.dataset.annotation_count() << " boxes\n";
  for (const auto& s : result.dataset.splits) std::cout << "  " << s.name << ": " << s.images.size() << " images\n";
  for (const auto& c : result.dataset.categories) std::cout << "  class " << c.name << ": " << per_class[c.id] << " boxes\n";
  if (o.plant_defects) {
    std::cout << "planted " << result.defects.size() << " defects (listed in " << out << "/synth.json):\n";
    for (const auto& d : result.defects) std::cout << "  " << d.kind << ": " << d.file << " - " << d.detail << "\n";
    for (const auto& s : result.skipped) std::cout << "  not planted: " << s << "\n";
  }
  return 0;
}

}  // namespace detkit::cli
