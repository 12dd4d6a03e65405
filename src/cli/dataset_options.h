// Options shared by the commands that read a dataset (check, convert, and later train/eval/advise):
// declared once here so every command spells and documents them the same way.
#pragma once

#include <string>

#include "core/options.h"
#include "data/formats_read.h"

namespace detkit::cli {

struct DatasetOptions {
  std::string format = "auto";  // coco, yolo, voc or auto
  std::string images;           // COCO image directory override
  std::string classes;          // VOC class names, comma-separated
};

void add_dataset_options(OptionSet& set, DatasetOptions& options);
// ReadOptions from the parsed options; YOLO image sizes come from image headers (EXIF applied).
ReadOptions read_options(const DatasetOptions& options);

}  // namespace detkit::cli
