// The LibTorch plugin's entry point: implements TorchPlugin (core/torch_plugin.h) over LibTorch.
#include <ATen/Parallel.h>
#include <torch/cuda.h>


#include "core/text.h"
#include "core/torch/compat.h"
#include "core/torch/runtime.h"
#include "core/torch_plugin.h"

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
