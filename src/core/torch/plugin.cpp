// The LibTorch plugin's entry point: implements TorchPlugin (core/torch_plugin.h) over LibTorch.
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/nn/functional/conv.h>

#include <chrono>
#include <cmath>


#include "augment/preview.h"
#include "core/host_allocator.h"
#include "core/log.h"
#include "core/text.h"
#include "core/torch/compat.h"
#include "core/torch/runtime.h"
#include "core/torch_plugin.h"
#include "infer/detect.h"
#include "export/exporter.h"
#include "models/weights_import.h"
#include "models/yolo.h"
#include "train/evaluate.h"
#include "train/lr_find.h"
#include "train/plan.h"
#include "train/trainer.h"

namespace detkit {

namespace {

// The text after `label` up to the end of its line in at::show_config(), e.g. for "CUDA Runtime "
// the line "  - CUDA Runtime 11.8" gives "11.8"; "" when the label is absent.
std::string config_value(const std::string& config, const std::string& label) {
  const auto at = config.find(label);
  if (at == std::string::npos) return "";
  const auto begin = at + label.size();
  return trim(config.substr(begin, config.find('\n', begin) - begin));
}

// Allocation, a 3x3 convolution forward and backward in fp32 and under autocast, and the difference
// between the two outputs. Inputs are drawn on the CPU with a fixed seed, so every device sees the same
// numbers. Results are copied back to the CPU after each stage: that synchronises the device, so an
// asynchronous CUDA error is reported at the stage that caused it.
TorchSmokeResult run_smoke(const std::string& device_text) {
  TorchSmokeResult r;
  r.device = device_text;
  const auto start = std::chrono::steady_clock::now();
  std::string stage = "device";
  bool autocast_on = false, cuda = false;
  try {
    const torch::Device device(device_text);
    cuda = device.is_cuda();
    r.device_name = cuda ? compat::cuda_device_description(device.has_index() ? device.index() : 0) : "CPU";
    r.autocast_dtype = cuda ? "float16" : "bfloat16";
    stage = "allocate";
    torch::manual_seed(0);
    const auto x_cpu = torch::randn({4, 8, 32, 32});
    const auto w_cpu = torch::randn({16, 8, 3, 3}) * 0.1;
    const auto b_cpu = torch::randn({16}) * 0.1;
    auto x = x_cpu.to(device);
    auto w = w_cpu.to(device).set_requires_grad(true);
    auto b = b_cpu.to(device);
    (void)x.sum().to(torch::kCPU);

    stage = "forward fp32";
    namespace F = torch::nn::functional;
    const auto y = F::conv2d(x, w, F::Conv2dFuncOptions().bias(b).padding(1));
    const auto y_host = y.detach().to(torch::kCPU);
    stage = "backward fp32";
    y.square().mean().backward();
    const auto grad_host = w.grad().to(torch::kCPU);
    w.mutable_grad() = torch::Tensor();

    stage = "autocast forward";
    compat::set_autocast(cuda, true);
    autocast_on = true;
    const auto ya = F::conv2d(x, w, F::Conv2dFuncOptions().bias(b).padding(1));
    const auto ya_host = ya.detach().to(torch::kCPU, torch::kFloat32);
    stage = "autocast backward";
    ya.to(torch::kFloat32).square().mean().backward();
    const auto grad_a_host = w.grad().to(torch::kCPU);
    compat::set_autocast(cuda, false);
    autocast_on = false;

    stage = "compare";
    double diff = (y_host - ya_host).abs().max().item<double>();
    const double scale = std::max(1.0, y_host.abs().max().item<double>());
    // Half and bfloat16 keep 11 and 8 significant bits; 5 % of the output scale separates rounding from garbage.
    r.tolerance = 0.05 * scale;
    if (!std::isfinite(diff) || !grad_host.isfinite().all().item<bool>() || !grad_a_host.isfinite().all().item<bool>())
      diff = INFINITY;
    r.max_abs_diff = diff;
  } catch (const std::exception& e) {
    if (autocast_on) compat::set_autocast(cuda, false);
    r.failed_stage = stage;
    r.error = strip_torch_backtrace(e.what());
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

class LibTorchPlugin final : public TorchPlugin {
 public:
  TorchRuntimeInfo runtime_info() override {
    return guard_torch("reading LibTorch's configuration", [] {
      TorchRuntimeInfo info;
      info.torch_version = compat::torch_version();
      const std::string config = compat::build_config();
      info.cuda_version = config_value(config, "CUDA Runtime ");
      info.cudnn_version = config_value(config, "CuDNN ");
      info.cuda_arch_flags = config_value(config, "NVCC architecture flags: ");
      info.cuda_compiled = !info.cuda_version.empty();
      info.device_count = static_cast<int>(torch::cuda::device_count());
      for (int i = 0; i < info.device_count; ++i) info.devices.push_back(compat::cuda_device_description(i));
      info.intra_op_threads = at::get_num_threads();
      info.inter_op_threads = at::get_num_interop_threads();
      return info;
    });
  }

  TorchSmokeResult smoke_test(const std::string& device) override { return run_smoke(device); }

  ModelInfo model_info(const std::string& model, int64_t classes, int64_t imgsz, bool stride4) override {
    return guard_torch("building the model", [&] {
      const models::ModelSummary summary = models::summarize_model(model, classes, imgsz, stride4);
      ModelInfo info;
      info.parameters = summary.parameters;
      info.trainable = summary.trainable;
      info.gflops = summary.gflops;
      info.strides = summary.strides;
      info.grids = summary.level_shapes;
      return info;
    });
  }

  TrainingSpeedResult training_speed(const TrainingSpeedRequest& request) override {
    return guard_torch("measuring the training step", [&] {
      train::ProfileSpec spec;
      spec.model = request.model;
      spec.classes = request.classes;
      spec.stride4 = request.stride4;
      spec.imgsz = request.imgsz;
      spec.amp = request.amp;
      spec.channels_last = request.channels_last;
      spec.device = resolve_device(request.device);
      if (spec.device.is_cuda()) compat::set_cudnn_benchmark(request.cudnn_benchmark);
      return train::measure_training_speed(spec, request.batch, request.steps, request.warmup);
    });
  }

  AugmentPreviewResult augment_preview(const AugmentPreviewRequest& request) override {
    return guard_torch("making the augmentation preview", [&] { return augment::write_preview(request); });
  }

  TrainResult train(const TrainRequest& request) override { return train::train(request); }

  EvaluateModelResult evaluate_model(const EvaluateModelRequest& request) override {
    return guard_torch("evaluating the model", [&] { return train::evaluate_model(request); });
  }

  DetectResult detect(const DetectRequest& request) override {
    return guard_torch("detecting", [&] { return infer::detect(request); });
  }

  MemoryPlan plan_memory(const PlanRequest& request) override {
    return guard_torch("planning memory", [&] { return train::plan_memory(request); });
  }

  LrFindResult find_lr(const LrFindRequest& request) override {
    return guard_torch("the learning-rate range test", [&] { return train::find_learning_rate(request); });
  }

  ImportResult import_weights(const ImportRequest& request) override {
    return guard_torch("importing weights", [&] { return models::import_weights(request); });
  }

  ExportResult export_model(const ExportRequest& request) override {
    return guard_torch("exporting the model", [&] { return exporting::export_model(request); });
  }

  void set_threads(int threads) override {
    guard_torch("setting the number of CPU threads", [threads] {
      at::set_num_threads(threads);
      // Inter-op threads can be set once, before any inter-op work starts; later calls would throw.
      static bool interop_set = false;
      if (!interop_set) {
        at::set_num_interop_threads(threads);
        interop_set = true;
      }
    });
  }
};

}  // namespace

}  // namespace detkit

extern "C" __attribute__((visibility("default"))) detkit::TorchPlugin* detkit_torch_plugin_create(int api_version) {
  if (api_version != detkit::kTorchPluginApiVersion) return nullptr;
  // Before any tensor exists: every command that loads the plugin does tensor work on the CPU, where
  // glibc's defaults cost a training step 10-14 % in page faults (core/host_allocator.h).
  static const detkit::HostAllocatorSetup allocator = detkit::keep_freed_memory_for_reuse();
  detkit::log_debug("host allocator: ", allocator.reason);
  static detkit::LibTorchPlugin plugin;
  return &plugin;
}
