#include <unistd.h>

#include <iostream>

#include "advise/advise.h"
#include "cli/commands.h"
#include "cli/dataset_options.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/text.h"

namespace detkit::cli {

int run_advise(const std::vector<std::string>& args) {
  std::vector<std::string> dataset;
  DatasetOptions data;
  advise::AdviseOptions options;
  std::string json_out, gpu_mem;
  CommonOptions common;
  OptionSet set("detkit advise", "advise how to train: image size, heads, batch, learning rate, epochs, augmentation");
  set.positionals("DATASET", "a COCO .json (or a folder with annotations/), a YOLO data.yaml, or a VOC folder", &dataset, 1, 1);
  add_dataset_options(set, data);
  set.add("--model", &options.model, "the detector to train").choices({"yolo-n", "yolo-s", "yolo-m"});
  set.add("--weights", &options.weights, "fine-tune from these weights (see detkit import): lower lr0, shorter warmup and run")
      .value_name("FILE");
  set.add("--imgsz", &options.imgsz, "planned training size (a multiple of 32)").range(32, 8192);
  set.add("--max-imgsz", &options.max_imgsz, "largest image size to suggest (a multiple of 32)").range(32, 8192);
  set.add("--gpu-mem", &gpu_mem, "GPU memory to size the batch for, e.g. 24GiB; without it, this machine's RAM (CPU training)")
      .value_name("SIZE");
  set.add("--rare", &options.rare_boxes, "a class with fewer boxes than this is rare (as is one under 1% of the boxes)")
      .range(1, 1e9);
  set.add("--json", &json_out, "write every number as JSON to FILE ('-' for stdout)").value_name("FILE");
  add_common_options(set, common);
  set.epilog(
      "Reads the dataset (its train split when there is one) and advises, each point with its numbers:\n"
      "which boxes the detector's anchors can match at imgsz (per stride level; boxes with no candidate\n"
      "cannot be learned), whether to raise imgsz, add the planned stride-4 level or train on tiles; batch,\n"
      "learning rate, epochs and warmup; rare classes; augmentations that suit the data (flips and rotation\n"
      "from symmetry tests). It ends with a 'detkit train' command line. Memory figures are estimates.\n\n"
      "examples:\n  detkit advise data/voc --model yolo-s --gpu-mem 24GiB\n"
      "  detkit advise data/yolo/data.yaml --imgsz 1024 --json advice.json");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);

  if (!gpu_mem.empty()) {
    const auto bytes = parse_bytes(gpu_mem);
    if (!bytes || *bytes == 0)
      throw UsageError({cat("--gpu-mem: cannot read '", gpu_mem, "' as a size"), "", "write it like 24GiB, 16GB or 8192MiB"});
    options.memory_bytes = *bytes;
    options.memory_is_gpu = true;
  } else {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) options.memory_bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
    options.memory_is_gpu = false;
  }
  options.data = dataset.front();
  options.data_format = data.format;
  advise::validate_options(options);  // before reading a possibly large dataset

  const DatasetSource source = read_dataset(dataset.front(), read_options(data));
  log_info("read ", to_string(source.format), " dataset: ", source.dataset.image_count(), " images, ",
           source.dataset.annotation_count(), " boxes");
  const advise::Advice advice = advise::advise_training(source.dataset, options);
  if (json_out == "-") {
    std::cout << advise::advice_json(advice);
  } else {
    std::cout << advise::format_advice(advice);
    if (!json_out.empty()) {
      write_file_atomic(json_out, advise::advice_json(advice));
      log_info("wrote ", json_out);
    }
  }
  return 0;
}

}  // namespace detkit::cli
