#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/text.h"
#include "core/torch_plugin.h"
#include "data/image_io.h"

namespace detkit::cli {

namespace {

// Image files named directly, and those inside named directories (recursively, sorted, by extension).
std::vector<std::string> collect_sources(const std::vector<std::string>& names) {
  std::vector<std::string> files;
  for (const auto& name : names) {
    if (fs::is_directory(name)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::recursive_directory_iterator(name))
        if (entry.is_regular_file() && image_format_from_extension(entry.path()) != ImageFormat::unknown)
          found.push_back(entry.path().string());
      std::sort(found.begin(), found.end());
      if (found.empty()) log_warn("no images (by extension) in ", name);
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(name)) {
      files.push_back(name);
    } else {
      throw UsageError({cat("source '", name, "' does not exist"), "", "pass image files or directories with --source"});
    }
  }
  return files;
}

}  // namespace

int run_detect(const std::vector<std::string>& args) {
  DetectRequest request;
  std::string source;
  std::vector<std::string> sources;
  bool no_images = false, json = false;
  CommonOptions common;
  OptionSet set("detkit detect", "run a trained detector on images: COCO JSON, YOLO txt and annotated images");
  set.add("--model", &request.model, "a run directory of 'detkit train', a checkpoint (.pt) or a file from 'detkit export' (.onnx, run by OpenCV DNN on the CPU)").alias("-m").required();
  set.add("--source", &source, "an image file or a directory of images").alias("-s").value_name("PATH");
  set.positionals("PATH", "more image files or directories", &sources, 0, 1000000);
  set.add("--out", &request.out_dir, "output directory").value_name("DIR").required();
  set.add("--imgsz", &request.imgsz, "input size (0: the size the model was trained at)").range(0, 8192);
  set.add("--batch", &request.batch, "images per forward pass").range(1, 1024);
  set.add("--conf", &request.conf, "confidence threshold").range(0.0, 1.0);
  set.add("--iou", &request.iou, "NMS IoU threshold").range(0.0, 1.0);
  set.add("--max-det", &request.max_det, "most detections kept per image").range(1, 100000);
  set.add("--device", &request.device, "cpu, cuda, cuda:N or auto");
  set.add("--no-images", &no_images, "do not write annotated images");
  set.add("--json", &json, "print the result as JSON on stdout");
  add_common_options(set, common);
  set.epilog(
      "Writes OUT/predictions.json (COCO results; image ids are listed in OUT/images.json), OUT/labels/*.txt\n"
      "(YOLO: class cx cy w h score) and, unless --no-images, OUT/*.jpg with boxes drawn. Unreadable images\n"
      "are reported by name and skipped.\n\n"
      "example:\n  detkit detect --model runs/train --source photos/ --out detections");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);
  if (request.imgsz % 32 != 0)
    throw UsageError({cat("--imgsz ", request.imgsz, " is not a multiple of 32"), "", cat("use --imgsz ", (request.imgsz + 31) / 32 * 32)});
  if (!source.empty()) sources.insert(sources.begin(), source);
  if (sources.empty()) throw UsageError({"no images given", "", "pass --source IMAGE|DIR (and more paths after it)"});
  request.sources = collect_sources(sources);
  request.save_images = !no_images;
  if (!is_missing_or_empty_directory(request.out_dir) && fs::exists(fs::path(request.out_dir) / "predictions.json"))
    log_warn("replacing the detections in ", request.out_dir);
  const DetectResult result = torch_plugin().detect(request);
  if (json) {
    nlohmann::ordered_json j;
    j["images"] = result.images;
    j["detections"] = result.detections;
    j["failed"] = result.failed;
    j["images_per_second"] = result.images_per_second;
    j["files"] = result.files;
    std::cout << j.dump(2) << "\n";
  } else {
    char line[160];
    std::snprintf(line, sizeof line, "%lld images, %lld detections, %.1f images/s", static_cast<long long>(result.images),
                  static_cast<long long>(result.detections), result.images_per_second);
    std::cout << line;
    if (result.failed) std::cout << ", " << result.failed << " unreadable (skipped)";
    std::cout << "\n";
    for (const auto& f : result.files) std::cout << "  " << f << "\n";
  }
  return result.failed > 0 && result.images == 0 ? static_cast<int>(ExitCode::data) : 0;
}

}  // namespace detkit::cli
