// The LibTorch plugin's entry point: implements TorchPlugin (core/torch_plugin.h) over LibTorch.
#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <regex>

#include "core/text.h"
#include "core/torch/compat.h"
#include "core/torch/runtime.h"
#include "core/torch_plugin.h"

namespace detkit {

namespace {

// The value after `label` on its line of at::show_config(), e.g. "CUDA Runtime 11.8" -> "11.8".
std::string config_value(const std::string& config, const std::string& pattern) {
  std::smatch match;
  if (std::regex_search(config, match, std::regex(pattern))) return trim(match[1].str());
  return "";
}

class LibTorchPlugin final : public TorchPlugin {
 public:
  TorchRuntimeInfo runtime_info() override {
    return guard_torch("reading LibTorch's configuration", [] {
      TorchRuntimeInfo info;
      info.torch_version = compat::torch_version();
      const std::string config = compat::build_config();
      info.cuda_version = config_value(config, R"(CUDA Runtime ([0-9.]+))");
      info.cudnn_version = config_value(config, R"(CuDNN ([0-9.]+))");
      info.cuda_arch_flags = config_value(config, R"(NVCC architecture flags: ([^\n]*))");
      info.cuda_compiled = !info.cuda_version.empty();
      info.device_count = static_cast<int>(torch::cuda::device_count());
      for (int i = 0; i < info.device_count; ++i) info.devices.push_back(compat::cuda_device_description(i));
      info.intra_op_threads = at::get_num_threads();
      info.inter_op_threads = at::get_num_interop_threads();
      return info;
    });
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
  static detkit::LibTorchPlugin plugin;
  return &plugin;
}
