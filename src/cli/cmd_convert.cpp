#include <iostream>

#include "cli/commands.h"
#include "cli/dataset_options.h"
#include "core/log.h"
#include "data/convert.h"

namespace detkit::cli {

int run_convert(const std::vector<std::string>& args) {
  std::vector<std::string> paths;
  DatasetOptions data;
  std::string to;
  CommonOptions common;
  OptionSet set("detkit convert", "convert a dataset between COCO, YOLO and VOC layouts");
  set.positionals("SOURCE OUT", "the dataset to read, and the new directory to write (must not exist or be empty)", &paths, 2, 2);
  add_dataset_options(set, data);
  set.add("--to", &to, "layout to write").choices({"coco", "yolo", "voc"}).required();
  add_common_options(set, common);
  set.epilog(
      "The source is only read. Images are copied into the target layout; annotations are rewritten.\n"
      "What the target layout cannot hold (VOC difficult/truncated, COCO crowd regions) is listed.\n"
      "--format names the source layout when it cannot be told from the path (--from is accepted too).\n\n"
      "example:\n  detkit convert --format voc --to coco datasets/bccd bccd-coco");
  set.add("--from", &data.format, "the source layout (same as --format)").choices({"auto", "coco", "yolo", "voc"});
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);

  const DatasetSource source = read_dataset(paths[0], read_options(data));
  if (!source.findings.empty())
    log_warn(source.findings.size(), " records could not be read and are left out; 'detkit check ", paths[0], "' lists them");
  const ConvertResult result = convert_dataset(source, parse_annotation_format(to), paths[1]);
  std::cout << "wrote " << paths[1] << " (" << to << "): " << result.images << " images, " << result.annotations << " boxes\n";
  for (const auto& note : result.notes) std::cout << "  note: " << note << "\n";
  return 0;
}

}  // namespace detkit::cli
