#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"
#include "core/torch_plugin.h"

namespace detkit::cli {

namespace {

std::string megabytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

}  // namespace

int run_export(const std::vector<std::string>& args) {
  ExportRequest request;
  std::string batch = "1";
  std::string format;  // empty: from --out's extension, else onnx
  bool no_verify = false, json = false;
  CommonOptions common;
  OptionSet set("detkit export", "write a trained detector as ONNX or TorchScript, run the file and compare it with LibTorch");
  set.add("--model", &request.model, "a run directory of 'detkit train' or a checkpoint (.pt)").alias("-m").required();
  set.add("--format", &format, "onnx or torchscript (default: from --out's extension, else onnx)").choices({"onnx", "torchscript"});
  set.add("--out", &request.out, "the file to write (default: the checkpoint's name with .onnx or .torchscript)").value_name("FILE");
  set.add("--imgsz", &request.imgsz, "square input size, a multiple of 32 (0: the size the model was trained at)").range(0, 8192);
  set.add("--batch", &batch, "fixed batch size, or 'dynamic' for any").value_name("N|dynamic");
  set.add("--half", &request.half, "float16 weights, input and outputs (for GPU runtimes: TensorRT, onnxruntime CUDA)");
  set.add("--nms", &request.nms, "ONNX: NonMaxSuppression in the graph (output 'detections': image, x1, y1, x2, y2, score, class)");
  set.add("--conf", &request.conf, "with --nms: score threshold").range(0.0, 1.0);
  set.add("--iou", &request.iou, "with --nms: IoU threshold").range(0.0, 1.0);
  set.add("--max-det", &request.max_det, "with --nms: most boxes kept per image and class").range(1, 100000);
  set.add("--opset", &request.opset, "ONNX opset").range(13, 17);
  set.add("--raw", &request.raw_outputs, "also output every level's raw head (box_sN, cls_sN), to compare with other tools");
  set.add("--no-verify", &no_verify, "do not run the written file and compare it with LibTorch");
  set.add("--json", &json, "print the result as JSON on stdout");
  add_common_options(set, common);
  set.epilog(
      "The file computes the detector and its box decoding: input 'images' float[B, 3, S, S] (RGB in 0..1,\n"
      "letterboxed, padding 114/255), outputs 'boxes' [B, A, 4] (x1 y1 x2 y2 in input pixels) and 'scores'\n"
      "[B, A, C] (class probabilities), before NMS unless --nms. Class names, input size and strides are in the\n"
      "file's metadata. The written file is run (ONNX in OpenCV's DNN module, TorchScript with torch::jit::load)\n"
      "on a fixed input and must agree with LibTorch within 1e-3, or it is removed.\n\n"
      "examples:\n"
      "  detkit export --model runs/train                            # runs/train/weights/best.onnx\n"
      "  detkit export --model runs/train --batch dynamic --nms --out deploy/model.onnx\n"
      "  detkit export --model runs/train --format torchscript\n"
      "  detkit detect --model runs/train/weights/best.onnx --source images/ --out found");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);
  if (batch == "dynamic") {
    request.batch = 0;
  } else {
    try {
      std::size_t used = 0;
      request.batch = std::stoll(batch, &used);
      if (used != batch.size() || request.batch < 1) throw std::invalid_argument(batch);
    } catch (const std::exception&) {
      throw UsageError({cat("--batch '", batch, "' is neither a positive number nor 'dynamic'"), "", "use --batch 1, --batch 8 or --batch dynamic"});
    }
  }
  if (request.imgsz % 32 != 0)
    throw UsageError({cat("--imgsz ", request.imgsz, " is not a multiple of 32"), "", cat("use --imgsz ", (request.imgsz + 31) / 32 * 32)});
  if (format.empty())
    format = ends_with(request.out, ".torchscript") || ends_with(request.out, ".ts") ? "torchscript" : "onnx";
  request.format = format;
  request.verify = !no_verify;

  const ExportResult r = torch_plugin().export_model(request);
  if (json) {
    nlohmann::ordered_json j;
    j["out"] = r.out;
    j["format"] = r.format;
    j["bytes"] = r.bytes;
    j["imgsz"] = r.imgsz;
    if (r.opset) j["opset"] = r.opset;
    j["classes"] = r.class_names;
    j["parameters"] = r.parameters;
    for (const auto& [name, type] : r.inputs) j["inputs"][name] = type;
    for (const auto& [name, type] : r.outputs) j["outputs"][name] = type;
    for (const auto& [op, n] : r.operators) j["operators"][op] = n;
    for (const auto& [k, v] : r.metadata) j["metadata"][k] = v;
    j["verified_with"] = r.verified_with;
    if (!r.not_verified_because.empty()) j["not_verified_because"] = r.not_verified_because;
    if (r.max_abs_diff >= 0) {
      j["max_abs_diff"] = r.max_abs_diff;
      j["max_rel_diff"] = r.max_rel_diff;
    }
    j["seconds"] = r.seconds;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "wrote " << r.out << " (" << (r.format == "onnx" ? cat("ONNX opset ", r.opset) : std::string("TorchScript")) << ", "
            << megabytes(r.bytes) << ", " << r.parameters << " parameters)\n";
  for (const auto& [name, type] : r.inputs) std::cout << "  input   " << name << "  " << type << "\n";
  for (const auto& [name, type] : r.outputs) std::cout << "  output  " << name << "  " << type << "\n";
  std::cout << "  classes " << join(r.class_names, ", ") << "\n";
  std::vector<std::string> ops;
  for (const auto& [op, n] : r.operators) ops.push_back(cat(op, " ", n));
  std::cout << "  operators " << join(ops, ", ") << "\n";
  if (!r.verified_with.empty()) {
    char line[200];
    std::snprintf(line, sizeof line, "  verified with %s: outputs within %.2g (relative) of LibTorch's\n", r.verified_with.c_str(),
                  r.max_rel_diff);
    std::cout << line;
  } else {
    std::cout << "  not run: " << r.not_verified_because << "\n";
  }
  return 0;
}

}  // namespace detkit::cli
