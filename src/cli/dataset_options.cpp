#include "cli/dataset_options.h"

#include <iostream>

#include "core/error.h"
#include "core/log.h"
#include "core/text.h"
#include "data/check.h"

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

void add_training_options(OptionSet& set, TrainingOptions& options, const std::string& override_examples) {
  set.add("--config", &options.config_file, "YAML run configuration to start from")
      .alias("-c")
      .value_name("FILE")
      .env("DETKIT_CONFIG");
  set.overrides(cat("override a config key, e.g. ", override_examples, " (see 'detkit config --keys')"), &options.overrides);
  set.add("--train-split", &options.train_split, "split to train on");
  set.add("--skip-check", &options.skip_check, "run even when the data check before training finds errors");
  add_dataset_options(set, options.data);
}

CheckedDataset read_checked_dataset(const RunConfig& config, DatasetOptions options, bool skip_check) {
  if (config.data.empty())
    throw UsageError({"no dataset to train on", "the config key 'data' is empty",
                      "pass data=PATH (a COCO JSON, a YOLO data.yaml or a VOC directory)"});
  if (options.format == "auto") options.format = config.data_format;
  log_info("reading ", config.data);
  CheckedDataset checked{read_dataset(config.data, read_options(options)), "", ""};
  CheckOptions check_options;
  check_options.imgsz = config.imgsz;
  const CheckReport report = check_dataset(checked.source, check_options);
  checked.report_text = format_check_report(report);
  checked.report_json = check_report_json(report);
  const std::size_t errors = report.count(Severity::error);
  if (errors > 0) {
    std::cerr << checked.report_text;
    if (!skip_check)
      throw DataError({cat("the dataset has ", errors, " error finding(s); training on it would learn from broken labels"),
                       "the findings are listed above ('detkit check' prints them again)",
                       cat("write a cleaned copy with 'detkit check ", config.data,
                           " --fix OUT' and train on OUT, or pass --skip-check to train anyway")});
    log_warn("training despite ", errors, " error finding(s) (--skip-check)");
  } else {
    log_info("data check: no errors (", report.count(Severity::warning), " warnings)");
  }
  return checked;
}

}  // namespace detkit::cli
