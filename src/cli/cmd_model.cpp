#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/text.h"
#include "core/torch_plugin.h"

namespace detkit::cli {

int run_model(const std::vector<std::string>& args) {
  std::vector<std::string> action;
  std::string model = "yolo-n";
  int64_t imgsz = 640, classes = 80;
  bool json = false, stride4 = false;
  CommonOptions common;
  OptionSet set("detkit model", "describe a detector: parameters, GFLOPs, strides and output grids");
  set.positionals("info", "what to do (info)", &action, 1, 1);
  set.add("--model", &model, "model family and scale").alias("-m").choices({"yolo-n", "yolo-s", "yolo-m"});
  set.add("--imgsz", &imgsz, "input size in pixels (multiple of 32)").range(32, 8192);
  set.add("--classes", &classes, "number of classes").range(1, 100000);
  set.add("--stride4", &stride4, "with the extra stride-4 output level (small objects)");
  set.add("--json", &json, "print as JSON");
  add_common_options(set, common);
  set.epilog("example:\n  detkit model info --model yolo-s --imgsz 416 --classes 3");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);
  if (action.front() != "info")
    throw UsageError({cat("unknown action '", action.front(), "' for 'detkit model'"), "", "use 'detkit model info'"});

  const ModelInfo info = torch_plugin().model_info(model, classes, imgsz, stride4);
  if (json) {
    nlohmann::ordered_json j;
    j["model"] = model;
    j["imgsz"] = imgsz;
    j["classes"] = classes;
    j["parameters"] = info.parameters;
    j["trainable"] = info.trainable;
    j["gflops"] = info.gflops;
    j["strides"] = info.strides;
    j["grids"] = info.grids;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  char flops[32];
  std::snprintf(flops, sizeof flops, "%.2f", info.gflops);
  std::cout << model << " (" << classes << " classes) at " << imgsz << "x" << imgsz << "\n"
            << "  parameters: " << info.parameters << " (" << info.trainable << " trained)\n"
            << "  GFLOPs:     " << flops << " (batch 1)\n  levels:\n";
  for (std::size_t i = 0; i < info.strides.size(); ++i)
    std::cout << "    stride " << info.strides[i] << ": " << info.grids[i][0] << "x" << info.grids[i][1] << " cells\n";
  return 0;
}

}  // namespace detkit::cli
