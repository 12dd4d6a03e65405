#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/text.h"
#include "core/torch_plugin.h"

namespace detkit::cli {

namespace {

// `detkit model speed`: the training step's own rate.
int print_speed(const TrainingSpeedRequest& request, bool json) {
  const TrainingSpeedResult r = torch_plugin().training_speed(request);
  if (json) {
    nlohmann::ordered_json j;
    j["model"] = request.model;
    j["imgsz"] = request.imgsz;
    j["classes"] = request.classes;
    j["device"] = r.device;
    j["precision"] = r.precision;
    j["channels_last"] = request.channels_last;
    j["cudnn_benchmark"] = request.cudnn_benchmark;
    j["batch"] = r.batch;
    j["steps"] = r.steps;
    j["step_seconds"] = r.step_seconds;
    j["images_per_second"] = r.images_per_second;
    j["peak_memory_bytes"] = r.peak_memory;
    j["step_operators"] = r.step_operators;
    j["update_operators"] = r.update_operators;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  char line[200];
  std::snprintf(line, sizeof line, "%.1f img/s (%.1f ms per step of %lld images), peak %s\n", r.images_per_second,
                r.step_seconds * 1000, static_cast<long long>(r.batch), format_bytes(r.peak_memory).c_str());
  std::cout << request.model << " at " << request.imgsz << " px on " << r.device << ", " << r.precision
            << ", training step alone (forward, loss, backward, clipping, SGD, EMA; no data loading):\n  " << line
            << "  ATen operators per step (host work; each at least one kernel launch on a GPU): " << r.step_operators
            << " forward, loss and backward + " << r.update_operators << " clipping, SGD, EMA and zeroing\n";
  return 0;
}

}  // namespace

int run_model(const std::vector<std::string>& args) {
  std::vector<std::string> action;
  std::string model = "yolo-n";
  int64_t imgsz = 640, classes = 80;
  bool json = false, stride4 = false;
  TrainingSpeedRequest speed;
  CommonOptions common;
  OptionSet set("detkit model", "describe a detector (info) or measure its training step (speed)");
  set.positionals("info|speed", "what to do: info (parameters, GFLOPs, strides, grids) or speed (the training step's "
                  "images per second without data loading)", &action, 1, 1);
  set.add("--model", &model, "model family and scale").alias("-m").choices({"yolo-n", "yolo-s", "yolo-m"});
  set.add("--imgsz", &imgsz, "input size in pixels (multiple of 32)").range(32, 8192);
  set.add("--classes", &classes, "number of classes").range(1, 100000);
  set.add("--stride4", &stride4, "with the extra stride-4 output level (small objects)");
  set.add("--batch", &speed.batch, "speed: images per step").range(1, 4096);
  set.add("--steps", &speed.steps, "speed: timed steps").range(1, 100000);
  set.add("--warmup", &speed.warmup, "speed: untimed steps before them").range(0, 100000);
  set.add("--amp", &speed.amp, "speed: mixed precision (bf16 where the GPU has it, else fp16; bf16 on the CPU)");
  set.add("--device", &speed.device, "speed: cpu, cuda, cuda:N or auto");
  set.add("--channels-last", &speed.channels_last, "speed: weights and images in NHWC memory order");
  set.add("--cudnn-benchmark", &speed.cudnn_benchmark,
          "speed: on a GPU, cuDNN times its convolution algorithms and keeps the fastest (as training does by default)");
  set.add("--json", &json, "print as JSON");
  add_common_options(set, common);
  set.epilog("examples:\n  detkit model info --model yolo-s --imgsz 416 --classes 3\n"
             "  detkit model speed --model yolo-s --imgsz 640 --batch 16 --device cuda --amp");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);
  if (action.front() == "speed") {
    speed.model = model;
    speed.imgsz = imgsz;
    speed.classes = classes;
    speed.stride4 = stride4;
    return print_speed(speed, json);
  }
  if (action.front() != "info")
    throw UsageError({cat("unknown action '", action.front(), "' for 'detkit model'"), "",
                      "use 'detkit model info' or 'detkit model speed'"});

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
