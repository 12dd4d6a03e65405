// `detkit plan`: the device memory a training run needs, measured (src/train/plan.h, docs/plan.md).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/text.h"
#include "core/torch_plugin.h"

namespace detkit::cli {

namespace {

nlohmann::ordered_json breakdown_json(const MemoryBreakdown& b) {
  nlohmann::ordered_json j;
  j["measured"] = b.measured;
  j["precision"] = b.precision;
  j["weights"] = b.weights;
  j["gradients"] = b.gradients;
  j["optimizer"] = b.optimizer;
  j["ema"] = b.ema;
  j["gradient_backup"] = b.gradient_backup;
  j["activations"] = b.activations;
  j["activations_fixed"] = b.activations_fixed;
  j["activations_per_image"] = b.activations_per_image;
  j["workspace"] = b.workspace;
  j["workspace_fixed"] = b.workspace_fixed;
  j["workspace_fraction"] = b.workspace_fraction;
  j["host"] = b.host;
  j["host_fixed"] = b.host_fixed;
  j["host_per_image"] = b.host_per_image;
  j["total"] = b.total;
  j["max_batch"] = b.max_batch;
  return j;
}

std::string plan_json(const MemoryPlan& p) {
  nlohmann::ordered_json j;
  const PlanRequest& r = p.request;
  j["model"] = r.model;
  j["classes"] = r.classes;
  j["stride4"] = r.stride4;
  j["imgsz"] = r.imgsz;
  j["batch"] = r.batch;
  j["nominal_batch"] = r.nominal_batch;
  j["amp"] = r.amp;
  j["optimizer"] = r.optimizer;
  j["ema"] = r.ema;
  j["device"] = p.device;
  j["device_name"] = p.device_name;
  j["gpu_target"] = p.gpu_target;
  j["parameters"] = p.parameters;
  j["measured_imgsz"] = p.measured_imgsz;
  j["area_scale"] = p.area_scale;
  j["measured_batches"] = p.measured_batches;
  j["measured_peaks"] = p.measured_peaks;
  j["float32"] = breakdown_json(p.fp32);
  j["amp_breakdown"] = breakdown_json(p.amp);
  j["cuda_context"] = p.cuda_context;
  j["memory"] = p.memory;
  j["memory_fraction"] = r.memory_fraction;
  j["budget"] = p.budget;
  j["fits"] = p.fits;
  j["suggested_batch"] = p.suggested_batch;
  j["suggested_nominal_batch"] = p.suggested_nominal_batch;
  j["suggested_accumulate"] = p.suggested_accumulate;
  j["suggest_amp"] = p.suggest_amp;
  j["max_imgsz_batch1"] = p.max_imgsz_batch1;
  j["suggested_flags"] = p.suggested_flags;
  j["notes"] = p.notes;
  j["seconds"] = p.seconds;
  return j.dump(2) + "\n";
}

std::string cell(const MemoryBreakdown& b, uint64_t value) {
  if (!b.measured) return "-";
  return format_bytes(value);
}

std::string format_plan(const MemoryPlan& p) {
  const PlanRequest& r = p.request;
  const int64_t accumulate =
      std::max<int64_t>(1, std::llround(static_cast<double>(r.nominal_batch) / static_cast<double>(r.batch)));
  std::string out = cat("plan: ", r.model, " (", p.parameters, " parameters, ", r.classes, " classes) at ", r.imgsz,
                        " px, batch ", r.batch, " x ", accumulate, " accumulation (nominal ", r.nominal_batch, "), ",
                        r.optimizer, r.ema ? ", EMA" : "", "\n");
  std::string batches;
  for (std::size_t i = 0; i < p.measured_batches.size(); ++i)
    batches += (i ? (i + 1 == p.measured_batches.size() ? " and " : ", ") : "") + std::to_string(p.measured_batches[i]);
  out += cat("measured on ", p.device, " (", p.device_name, "): forward + loss + backward at ", p.measured_imgsz,
             " px, batches ", batches, "\n\n");
  const MemoryBreakdown& a = p.fp32;
  const MemoryBreakdown& b = p.amp;
  auto row = [&](const std::string& label, uint64_t x, uint64_t y) {
    char line[200];
    std::snprintf(line, sizeof line, "  %-40s %14s %14s\n", label.c_str(), cell(a, x).c_str(), cell(b, y).c_str());
    out += line;
  };
  {
    char line[200];
    std::snprintf(line, sizeof line, "  %-40s %14s %14s\n", "", "float32", "mixed prec.");
    out += line;
  }
  row("weights (and buffers)", a.weights, b.weights);
  row("gradients", a.gradients, b.gradients);
  row(cat("optimizer state (", r.optimizer == "adamw" ? "AdamW: 2 copies" : "SGD momentum: 1 copy", ")"), a.optimizer,
      b.optimizer);
  row("EMA copy", a.ema, b.ema);
  row("gradient backup (accumulation)", a.gradient_backup, b.gradient_backup);
  row(cat("activations at batch ", r.batch), a.activations, b.activations);
  row("  of which per image", static_cast<uint64_t>(std::max(0.0, a.activations_per_image)),
      static_cast<uint64_t>(std::max(0.0, b.activations_per_image)));
  if (p.gpu_target) row("workspace (context, allocator)", a.workspace, b.workspace);
  else row("host (loader queue, rollback copy)", a.host, b.host);
  row("total (predicted peak)", a.total, b.total);
  {
    char line[200];
    std::snprintf(line, sizeof line, "  %-40s %14s %14s\n", "largest batch that fits",
                  a.measured ? std::to_string(a.max_batch).c_str() : "-", b.measured ? std::to_string(b.max_batch).c_str() : "-");
    out += line;
  }
  char fraction[16];
  std::snprintf(fraction, sizeof fraction, "%.2f", r.memory_fraction);
  out += cat("\nmemory: ", fraction, " x ", format_bytes(p.memory),
             r.memory_bytes ? (r.memory_is_gpu ? " (--gpu-mem)" : " (given)")
                            : (p.gpu_target ? " (device)" : " (available RAM)"),
             " = ", format_bytes(p.budget), " budget\n");
  const bool judged_amp = r.amp && p.gpu_target;
  const MemoryBreakdown& judged = judged_amp ? b : a;
  out += cat(p.fits ? "fits: " : "does not fit: ", judged.precision, " at batch ", r.batch, " needs ",
             format_bytes(judged.total), " of ", format_bytes(p.budget), "\n");
  if (!p.suggested_flags.empty())
    out += cat("flags that fit: ", p.suggested_flags,
               p.suggested_batch > 0 ? cat("  (", p.suggested_accumulate, " accumulation step(s) reach the nominal batch)") : "",
               "\n");
  else
    out += "nothing fits even at 32 px and batch 1: use a smaller model or a device with more memory\n";
  for (const auto& note : p.notes) out += cat("note: ", note, "\n");
  return out;
}

}  // namespace

int run_plan(const std::vector<std::string>& args) {
  PlanRequest request;
  uint64_t gpu_mem = 0;
  bool no_ema = false;
  int64_t profile_batch = 0;
  std::string json_out;
  CommonOptions common;
  OptionSet set("detkit plan", "estimate the peak memory of training and the batch that fits, by measuring real steps");
  set.add("--model", &request.model, "the detector").alias("-m").choices({"yolo-n", "yolo-s", "yolo-m"});
  set.add("--imgsz", &request.imgsz, "training image size in pixels (multiple of 32)").range(32, 8192);
  set.add("--batch", &request.batch, "images per micro-batch to judge").range(1, 4096);
  set.add("--nominal-batch", &request.nominal_batch, "effective batch reached by gradient accumulation").range(1, 65536);
  set.add("--amp", &request.amp, "judge mixed precision (CUDA runs; both precisions are always shown)");
  set.add("--device", &request.device, "where to measure: cpu, cuda, cuda:N or auto (CUDA when visible)");
  set.add_bytes("--gpu-mem", &gpu_mem, "plan for a GPU with this much memory, e.g. 24GiB (measuring here)");
  set.add("--fraction", &request.memory_fraction, "share of the memory the plan may fill").range(0.05, 1);
  set.add("--classes", &request.classes, "number of classes").range(1, 100000);
  set.add("--stride4", &request.stride4, "the model has the stride-4 output level (stride4=true)");
  set.add("--optimizer", &request.optimizer, "optimizer (its state: SGD 1 copy of the weights, AdamW 2)")
      .choices({"sgd", "adamw"});
  set.add("--no-ema", &no_ema, "the run keeps no EMA copy of the weights (ema=false)");
  set.add("--boxes", &request.boxes_per_image, "ground-truth boxes per synthetic image").range(0, 10000);
  set.add("--profile-imgsz", &request.profile_imgsz, "CPU: largest size measured; larger ones are scaled by area")
      .range(32, 8192);
  set.add("--profile-batch", &profile_batch, "measure at this batch and twice it (0: 1 and 2 on the CPU, 4 and 8 on CUDA)")
      .range(0, 4096);
  set.add("--workers", &request.workers, "loader threads of the run (CPU runs: its prefetch queue; 0: one per core)")
      .range(0, 256);
  set.add("--json", &json_out, "write every number as JSON to FILE ('-' for stdout)").value_name("FILE");
  add_common_options(set, common);
  set.epilog(
      "Builds the detector and measures real training steps (forward, the detection loss on synthetic boxes,\n"
      "backward) at two small batches, then predicts the peak for the requested batch: weights, gradients,\n"
      "optimizer state, EMA, activations (fixed + batch x per image) and workspace. Without a GPU it measures\n"
      "on the CPU (mixed precision as CPU bfloat16 autocast) and plans for --gpu-mem. Exit code 0 when the\n"
      "batch fits, 1 when it does not; either way it prints flags that fit. See docs/plan.md.\n\n"
      "examples:\n  detkit plan --model yolo-s --imgsz 640 --batch 32 --amp --gpu-mem 24GiB\n"
      "  detkit plan --model yolo-n --imgsz 416 --batch 16 --device cpu --json plan.json");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);
  if (request.imgsz % 32 != 0)
    throw UsageError({cat("--imgsz must be a multiple of 32 (the largest model stride); got ", request.imgsz), "",
                      cat("use --imgsz ", (request.imgsz + 31) / 32 * 32)});
  if (request.profile_imgsz % 32 != 0)
    throw UsageError({cat("--profile-imgsz must be a multiple of 32; got ", request.profile_imgsz), "",
                      cat("use --profile-imgsz ", (request.profile_imgsz + 31) / 32 * 32)});
  if (request.nominal_batch < request.batch) request.nominal_batch = request.batch;
  request.ema = !no_ema;
  if (gpu_mem > 0) {
    request.memory_bytes = gpu_mem;
    request.memory_is_gpu = true;
  }
  if (profile_batch > 0) request.profile_batches = {profile_batch, 2 * profile_batch};

  const MemoryPlan plan = torch_plugin().plan_memory(request);
  if (json_out == "-") {
    std::cout << plan_json(plan);
  } else {
    std::cout << format_plan(plan);
    if (!json_out.empty()) {
      write_file_atomic(json_out, plan_json(plan));
      log_info("wrote ", json_out);
    }
  }
  return plan.fits ? 0 : static_cast<int>(ExitCode::failed);
}

}  // namespace detkit::cli
