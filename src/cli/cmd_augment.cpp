#include <iostream>

#include "cli/commands.h"
#include "cli/dataset_options.h"
#include "core/log.h"
#include "core/run_config.h"
#include "core/torch_plugin.h"

namespace detkit::cli {

int run_augment(const std::vector<std::string>& args) {
  std::vector<std::string> dataset;
  std::vector<std::string> overrides;
  DatasetOptions data;
  std::string config_file, preview, split = "train";
  int64_t images = 16, columns = 4, epoch = 0;
  bool plain = false;
  CommonOptions common;
  OptionSet set("detkit augment", "show the training samples exactly as the model will see them");
  set.positionals("DATASET", "a COCO .json (or a folder with annotations/), a YOLO data.yaml, or a VOC folder", &dataset, 1, 1);
  add_dataset_options(set, data);
  set.add("--preview", &preview, "write a grid of augmented samples with their boxes and class names to FILE (PNG)")
      .value_name("FILE")
      .required();
  set.add("--config", &config_file, "YAML run configuration (augment.*, imgsz, seed, epochs)").alias("-c").value_name("FILE").env("DETKIT_CONFIG");
  set.overrides("override a key, e.g. imgsz=416 or augment.mosaic=0 (applied after --config, in order)", &overrides);
  set.add("--split", &split, "which split's images");
  set.add("--samples", &images, "samples in the grid").range(1, 256);
  set.add("--columns", &columns, "tiles per row").range(1, 64);
  set.add("--epoch", &epoch, "show this epoch's samples (0-based; mosaic is off in the last augment.close_mosaic)").range(0, 1e6);
  set.add("--no-augment", &plain, "letterbox only, as validation sees the images");
  add_common_options(set, common);
  set.epilog(
      "Reads the dataset, runs the data loader with the run configuration's recipe (mosaic, mixup, affine,\n"
      "colour, flips, crop) and draws each sample at imgsz with its boxes and class names. The same seed and\n"
      "epoch show the same samples a training run would get.\n\n"
      "examples:\n  detkit augment data/shapes --preview preview.png\n"
      "  detkit augment data/shapes/data.yaml --preview p.png imgsz=320 augment.mosaic=0 augment.degrees=15");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);

  const RunConfig config = resolve_run_config(config_file, overrides);
  const DatasetSource source = read_dataset(dataset.front(), read_options(data));
  log_info("read ", to_string(source.format), " dataset: ", source.dataset.image_count(), " images, ",
           source.dataset.annotation_count(), " boxes");
  AugmentPreviewRequest request;
  request.dataset = &source.dataset;
  request.split = split;
  request.augment = config.augment;
  request.augmented = !plain;
  request.imgsz = config.imgsz;
  request.images = images;
  request.columns = columns;
  request.seed = config.seed;
  request.epoch = epoch;
  request.epochs = config.epochs;
  request.out = preview;
  const AugmentPreviewResult result = torch_plugin().augment_preview(request);
  std::cout << "wrote " << preview << ": " << result.width << "x" << result.height << ", " << result.samples
            << " samples at " << config.imgsz << " px, " << result.boxes << " boxes";
  if (result.skipped > 0) std::cout << "; skipped " << result.skipped << " unreadable samples";
  std::cout << "\n";
  for (const auto& f : result.bad_files) std::cout << "  unreadable: " << f << "\n";
  return 0;
}

}  // namespace detkit::cli
