#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "core/fs.h"
#include "core/log.h"
#include "eval/coco_eval.h"

namespace detkit::cli {

int run_eval(const std::vector<std::string>& args) {
  std::string gt, detections, json_out;
  CommonOptions common;
  OptionSet set("detkit eval", "COCO bbox evaluation of detections against ground truth");
  set.add("--gt", &gt, "COCO ground-truth JSON (images, annotations, categories)").value_name("GT.json").required();
  set.add("--detections", &detections, "COCO results JSON: [{image_id, category_id, bbox, score}, ...]")
      .alias("--dt")
      .value_name("DT.json")
      .required();
  set.add("--json", &json_out, "also write stats and per-category AP as JSON to FILE ('-' for stdout)").value_name("FILE");
  add_common_options(set, common);
  set.epilog(
      "Prints pycocotools' 12-line summary (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl)\n"
      "and the AP of each category. The numbers equal pycocotools' COCOeval(iouType='bbox'); where pycocotools\n"
      "would crash (an empty results list) or silently mis-evaluate (duplicate annotation ids), detkit answers\n"
      "or stops with an error naming the record.\n\n"
      "example:\n  detkit eval --gt instances_val.json --detections results.json --json metrics.json");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);

  const CocoEvalResult result = evaluate_coco_files(gt, detections);
  for (const auto& w : result.warnings) log_warn(w);
  log_info("evaluated ", result.num_detections, " detections against ", result.num_gt, " annotations on ",
           result.num_images, " images in ", result.seconds, " s");
  const std::string json = coco_result_to_json(result);
  if (json_out == "-") {
    std::cout << json;
    return 0;
  }
  std::cout << format_coco_summary(result);
  std::cout << "\nper-category AP@[.50:.95] (-1: no ground truth):\n";
  for (const auto& [id, ap] : result.per_category_ap) {
    char line[64];
    std::snprintf(line, sizeof line, "  category %6lld  %.3f\n", static_cast<long long>(id), ap);
    std::cout << line;
  }
  if (!json_out.empty()) {
    write_file_atomic(json_out, json);
    log_info("wrote ", json_out);
  }
  return 0;
}

}  // namespace detkit::cli
