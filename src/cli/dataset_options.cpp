#include "cli/dataset_options.h"

#include "core/text.h"

namespace detkit::cli {

void add_dataset_options(OptionSet& set, DatasetOptions& options) {
  set.add("--format", &options.format, "dataset layout (auto: from the path)").choices({"auto", "coco", "yolo", "voc"});
  set.add("--images", &options.images, "COCO: the directory holding the images (default: searched beside the JSON)")
      .value_name("DIR");
  set.add("--classes", &options.classes, "VOC: class names in order (default: classes.txt, else the names found)")
      .value_name("A,B,...");
}

ReadOptions read_options(const DatasetOptions& options) {
  ReadOptions read;
  if (options.format != "auto") read.format = parse_annotation_format(options.format);
  read.images_dir = options.images;
  for (const auto& c : split(options.classes, ','))
    if (!trim(c).empty()) read.classes.push_back(trim(c));
  read.image_size = image_size_from_header();
  return read;
}

}  // namespace detkit::cli
