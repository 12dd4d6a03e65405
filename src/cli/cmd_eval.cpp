#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/dataset_options.h"
#include "core/error.h"
#include "core/text.h"
#include "core/torch_plugin.h"
#include "data/formats_read.h"
#include "report/report.h"
#include "core/fs.h"
#include "core/log.h"
#include "eval/coco_eval.h"

namespace detkit::cli {

namespace {

int evaluate_trained_model(EvaluateModelRequest request, const std::string& data_path, DatasetOptions data,
                           const std::string& json_out) {
  log_info("reading ", data_path);
  const DatasetSource source = read_dataset(data_path, read_options(data));
  request.dataset = &source.dataset;
  const EvaluateModelResult result = torch_plugin().evaluate_model(request);
  const fs::path report_path = report::write_report(request.out_dir);
  if (json_out == "-") {
    std::cout << read_file(fs::path(request.out_dir) / "metrics.json");
    return 0;
  }
  CocoEvalResult summary;
  summary.stats = result.stats;
  std::cout << format_coco_summary(summary);
  std::cout << "\nper-class AP@[.50:.95] (-1: no ground truth):\n";
  for (const auto& [name, ap] : result.per_class_ap) {
    char line[160];
    std::snprintf(line, sizeof line, "  %-24s %.3f\n", name.c_str(), ap);
    std::cout << line;
  }
  char rate[96];
  std::snprintf(rate, sizeof rate, "%lld images, %lld detections, %.1f images/s\n", static_cast<long long>(result.images),
                static_cast<long long>(result.detections), result.images_per_second);
  std::cout << rate;
  for (const auto& f : result.files) std::cout << "  " << f << "\n";
  std::cout << "  " << report_path.string() << "\n";
  if (!json_out.empty()) {
    write_file_atomic(json_out, read_file(fs::path(request.out_dir) / "metrics.json"));
    log_info("wrote ", json_out);
  }
  return 0;
}

}  // namespace

int run_eval(const std::vector<std::string>& args) {
  std::string gt, detections, json_out, data_path;
  EvaluateModelRequest request;
  request.out_dir = "";
  DatasetOptions data;
  CommonOptions common;
  OptionSet set("detkit eval", "COCO bbox evaluation: of a detections file, or of a trained model on a dataset");
  set.add("--gt", &gt, "COCO ground-truth JSON (images, annotations, categories)").value_name("GT.json");
  set.add("--detections", &detections, "COCO results JSON: [{image_id, category_id, bbox, score}, ...]")
      .alias("--dt")
      .value_name("DT.json");
  set.add("--model", &request.model, "a run directory of 'detkit train', a checkpoint or an exported .onnx file: evaluate it on --data").alias("-m");
  set.add("--data", &data_path, "dataset to evaluate --model on (COCO JSON, YOLO data.yaml or VOC directory)").value_name("PATH");
  set.add("--split", &request.split, "split of --data to evaluate on");
  set.add("--out", &request.out_dir, "with --model: write metrics.json, curves.json (PR, F1, confusion) and predictions.json here (default: MODEL_RUN/eval-SPLIT)").value_name("DIR");
  set.add("--imgsz", &request.imgsz, "with --model: input size (0: the size it was trained at)").range(0, 8192);
  set.add("--batch", &request.batch, "with --model: images per forward pass").range(1, 1024);
  set.add("--conf", &request.conf, "with --model: confidence threshold").range(0.0, 1.0);
  set.add("--iou", &request.iou, "with --model: NMS IoU threshold").range(0.0, 1.0);
  set.add("--device", &request.device, "with --model: cpu, cuda, cuda:N or auto");
  add_dataset_options(set, data);
  set.add("--json", &json_out, "also write stats and per-category AP as JSON to FILE ('-' for stdout)").value_name("FILE");
  add_common_options(set, common);
  set.epilog(
      "Prints pycocotools' 12-line summary (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl)\n"
      "and the AP of each category. The numbers equal pycocotools' COCOeval(iouType='bbox'); where pycocotools\n"
      "would crash (an empty results list) or silently mis-evaluate (duplicate annotation ids), detkit answers\n"
      "or stops with an error naming the record.\n\n"
      "With --model and --data, the model predicts every image of the split first; the outputs then include\n"
      "precision-recall and F1 curves per class, the confusion matrix and per-class precision/recall at the\n"
      "confidence with the best mean F1.\n\n"
      "examples:\n  detkit eval --gt instances_val.json --detections results.json --json metrics.json\n"
      "  detkit eval --model runs/train --data ds/data.yaml --split val");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);
  if (!request.model.empty()) {
    if (data_path.empty())
      throw UsageError({"--model needs --data", "the model is evaluated on a split of a dataset", "add --data PATH --split val"});
    if (!gt.empty() || !detections.empty())
      throw UsageError({"--model cannot be combined with --gt/--detections", "", "evaluate either a model or a detections file"});
    if (request.out_dir.empty()) {
      const fs::path model_path = request.model;
      const fs::path run = fs::is_directory(model_path) ? model_path : model_path.parent_path().parent_path();
      request.out_dir = (run / ("eval-" + request.split)).string();
    }
    return evaluate_trained_model(request, data_path, data, json_out);
  }
  if (gt.empty() || detections.empty())
    throw UsageError({"nothing to evaluate", "give --gt and --detections (a detections file), or --model and --data",
                      "e.g. detkit eval --gt gt.json --detections dt.json"});

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
