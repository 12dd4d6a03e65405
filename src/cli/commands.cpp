#include "cli/commands.h"

#include <iostream>
#include <sstream>

#include "detkit/build_info.h"
#include "core/log.h"
#include "core/threads.h"

namespace detkit::cli {

const std::vector<CommandSpec>& commands() {
  static const std::vector<CommandSpec> table{
      {"doctor", "check the GPU environment: driver, GPUs, CUDA/cuDNN libraries, LibTorch, TensorFlow and PyTorch installs",
       run_doctor},
      {"explain", "find the root cause in a TensorFlow, PyTorch, CUDA or NCCL error log and say how to fix it",
       run_explain},
      {"synth", "write a deterministic synthetic detection dataset (COCO, YOLO or VOC), optionally with planted defects",
       run_synth},
      {"check", "find every defect of a COCO, YOLO or VOC dataset (boxes, classes, images, duplicates, leakage)", run_check},
      {"advise", "advise how to train from the data: imgsz, stride levels, tiles, batch, lr, epochs, augmentation",
       run_advise},
      {"plan", "estimate the peak memory of training (measured) and print the batch and flags that fit",
       run_plan},
      {"convert", "convert a dataset between COCO, YOLO and VOC layouts", run_convert},
      {"augment", "draw a grid of training samples as the loader augments them (boxes and class names)", run_augment},
      {"config", "resolve and validate a run configuration (YAML file + key=value overrides); list every key",
       run_config},
      {"import", "read weights from a PyTorch checkpoint (state_dict, Ultralytics YOLOv8 .pt) into a detkit model",
       run_import},
      {"model", "describe a detector: parameters, GFLOPs, strides and output grids (model info)", run_model},
      {"train", "train a detector (checks the data first; checkpoints, guardrails, out-of-memory recovery, --resume)",
       run_train},
      {"lr-find", "learning-rate range test: loss against a rising learning rate, the suggested lr0 (PNG, report)",
       run_lr_find},
      {"eval", "COCO evaluation of a detections file or of a trained model on a dataset (pycocotools' numbers)", run_eval},
      {"audit", "find wrong labels with a trained model: missing, spurious, wrong-class and badly placed boxes",
       run_audit},
      {"detect", "run a trained detector on images: COCO JSON, YOLO txt and annotated images", run_detect},
      {"export", "write a trained detector as ONNX or TorchScript for other runtimes, checked against LibTorch",
       run_export},
      {"report", "write a self-contained HTML report of a training run or an evaluation (charts, tables, samples)",
       run_report},
      {"version", "print the versions of detkit, LibTorch and CUDA, and the devices LibTorch sees", run_version},
  };
  return table;
}

std::string general_help() {
  std::ostringstream out;
  out << "detkit " << DETKIT_VERSION
      << ": train, evaluate and deploy object detectors, with every failure explained\n\n"
      << "usage: detkit <command> [options]\n\ncommands:\n";
  for (const auto& c : commands()) {
    std::string name = c.name;
    name.resize(10, ' ');
    out << "  " << name << c.summary << "\n";
  }
  out << "\nRun 'detkit <command> --help' for the options of a command.\n"
      << "'detkit --version' is 'detkit version'.\n\n"
      << "exit codes: 0 ok; 1 findings or a failed run; 2 usage or configuration error; 3 environment\n"
      << "(libraries, driver, device); 4 unreadable data; 5 out of memory; 6 checkpoint; 70 internal error;\n"
      << "130 interrupted\n";
  return out.str();
}

void add_common_options(OptionSet& options, CommonOptions& common) {
  options.add("--threads", &common.threads, "CPU threads for LibTorch and thread pools (0: one per core)")
      .env("DETKIT_THREADS")
      .range(0, 1024);
  options.add("--log-level", &common.log_level, "how much to log on stderr")
      .env("DETKIT_LOG_LEVEL")
      .choices({"error", "warn", "info", "debug"});
  options.add("--quiet", &common.quiet, "log only errors").alias("-q");
  options.add("--verbose", &common.verbose, "log debug messages").alias("-v");
}

void apply_common_options(const CommonOptions& common) {
  LogLevel level = parse_log_level(common.log_level);
  if (common.verbose) level = LogLevel::debug;
  if (common.quiet) level = LogLevel::error;
  set_log_level(level);
  set_thread_count(static_cast<int>(common.threads));
}

bool handled_help(const OptionSet& options) {
  if (!options.help_requested()) return false;
  std::cout << options.help_text();
  return true;
}

}  // namespace detkit::cli
