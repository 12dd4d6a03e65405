#include <iostream>

#include "cli/commands.h"
#include "cli/dataset_options.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/check.h"
#include "data/fix.h"

namespace detkit::cli {

int run_check(const std::vector<std::string>& args) {
  std::vector<std::string> dataset;
  DatasetOptions data;
  CheckOptions options;
  std::string fail_on = "error", json_out, fix_dir;
  int64_t examples = 3;
  CommonOptions common;
  OptionSet set("detkit check", "find every defect of a detection dataset before training");
  set.positionals("DATASET", "a COCO .json (or a folder with annotations/), a YOLO data.yaml, or a VOC folder", &dataset, 1, 1);
  add_dataset_options(set, data);
  set.add("--imgsz", &options.imgsz, "planned training size, for the box-size statistics").range(32, 8192);
  set.add("--fail-on", &fail_on, "exit 1 when a finding is at least this severe").choices({"error", "warning", "info"});
  set.add("--json", &json_out, "write every finding and statistic as JSON to FILE ('-' for stdout)").value_name("FILE");
  set.add("--decode", &options.decode, "decode every image fully (slower; finds damage inside the image data)");
  set.add("--max-pixels", &options.max_pixels, "images whose header claims more pixels are refused as decompression bombs")
      .range(1, 1e12);
  set.add("--max-boxes", &options.max_boxes_per_image, "report images with more boxes than this").range(1, 1e7);
  set.add("--fix", &fix_dir, "write a cleaned copy to OUTDIR with quarantine.json listing every change (input untouched)")
      .value_name("OUTDIR");
  set.add("--examples", &examples, "examples shown per kind of finding").range(1, 1000);
  add_common_options(set, common);
  set.epilog(
      "Reads any of the three layouts and reports every defect with its file (and line or record), its\n"
      "severity and the fix, grouped by kind; then the statistics that matter for training.\n\n"
      "--fix clips what can be clipped, drops what cannot (boxes, broken and duplicate images), writes\n"
      "EXIF-rotated pictures upright, and lists each change in OUTDIR/quarantine.json.\n\n"
      "exit codes: 0 no finding at or above --fail-on; 1 some (also with --fix: the input is judged);\n"
      "4 the dataset cannot be read at all.\n\n"
      "examples:\n  detkit check data/coco/annotations/instances_train.json\n"
      "  detkit check data/voc --fail-on warning --json findings.json");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);

  const DatasetSource source = read_dataset(dataset.front(), read_options(data));
  log_info("read ", to_string(source.format), " dataset: ", source.dataset.image_count(), " images, ",
           source.dataset.annotation_count(), " boxes");
  const CheckReport report = check_dataset(source, options);
  if (json_out == "-") {
    std::cout << check_report_json(report);
  } else {
    std::cout << format_check_report(report, static_cast<std::size_t>(examples));
    if (!json_out.empty()) {
      write_file_atomic(json_out, check_report_json(report));
      log_info("wrote ", json_out);
    }
  }
  if (!fix_dir.empty()) {
    const FixResult fixed = fix_dataset(source, report, fix_dir);
    std::cout << "\nwrote a cleaned copy to " << fix_dir << ": " << fixed.written.images << " images, " << fixed.written.annotations
              << " boxes; removed " << fixed.images_removed << " images and " << fixed.boxes_removed << " boxes, clipped "
              << fixed.boxes_clipped << " boxes, rewrote " << fixed.images_rewritten << " images, corrected "
              << fixed.sizes_corrected << " declared sizes (" << fix_dir << "/quarantine.json lists each)\n";
  }
  const Severity threshold = parse_severity(fail_on).value_or(Severity::error);
  return report.fails(threshold) ? static_cast<int>(ExitCode::failed) : 0;
}

}  // namespace detkit::cli
