// Options shared by the commands that read a dataset (check, convert, and later train/eval/advise):
// declared once here so every command spells and documents them the same way.
#pragma once

#include <string>
#include <vector>

#include "core/options.h"
#include "core/run_config.h"
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

// The options of the commands that train from a run configuration (train, lr-find), declared once:
// --config, key=value overrides, --train-split, --skip-check and the dataset options.
struct TrainingOptions {
  std::string config_file;
  std::vector<std::string> overrides;
  std::string train_split = "train";
  bool skip_check = false;
  DatasetOptions data;
};
// `override_examples`: the keys shown in the overrides' help ("data=ds/data.yaml epochs=50").
void add_training_options(OptionSet& set, TrainingOptions& options, const std::string& override_examples);

// A dataset read for training (train, lr-find) and checked first ('detkit check' without decoding every
// pixel), with the check's report as text and JSON for the run directory.
struct CheckedDataset {
  DatasetSource source;
  std::string report_text, report_json;
};
// Reads config.data (format from `options`, else config.data_format) and checks it at config.imgsz.
// Error findings print the report to stderr and throw DataError, unless `skip_check` (then a warning).
// Throws UsageError when config.data is empty; DataError from reading.
CheckedDataset read_checked_dataset(const RunConfig& config, DatasetOptions options, bool skip_check);

}  // namespace detkit::cli
