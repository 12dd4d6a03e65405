#include <iostream>
#include <nlohmann/json.hpp>

#include "detkit/build_info.h"
#include "cli/commands.h"
#include "core/torch_plugin.h"

namespace detkit::cli {

int run_version(const std::vector<std::string>& args) {
  bool json = false;
  CommonOptions common;
  OptionSet set("detkit version", "print versions of detkit, LibTorch and CUDA");
  set.add("--json", &json, "print as JSON");
  add_common_options(set, common);
  set.epilog("Works even when LibTorch cannot be loaded: then it says why, and exits 0.");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);

  const auto load_error = torch_plugin_load_error();
  TorchRuntimeInfo info;
  if (!load_error) info = torch_plugin().runtime_info();
  if (json) {
    nlohmann::ordered_json j;
    j["detkit"] = DETKIT_VERSION;
    j["build_type"] = DETKIT_BUILD_TYPE;
    j["compiler"] = DETKIT_COMPILER;
    j["built_with_libtorch"] = DETKIT_BUILT_WITH_TORCH;
    if (load_error) {
      j["libtorch"] = nullptr;
      j["libtorch_error"] = *load_error;
    } else {
      j["libtorch"] = info.torch_version;
      j["cuda"] = info.cuda_compiled ? nlohmann::ordered_json(info.cuda_version) : nlohmann::ordered_json(nullptr);
      j["cudnn"] = info.cudnn_version.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(info.cudnn_version);
      j["cuda_arch_flags"] = info.cuda_arch_flags;
      j["devices"] = info.devices;
      j["intra_op_threads"] = info.intra_op_threads;
      j["inter_op_threads"] = info.inter_op_threads;
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "detkit " << DETKIT_VERSION << " (" << DETKIT_BUILD_TYPE << ", " << DETKIT_COMPILER << ")\n";
  if (load_error) {
    std::cout << "LibTorch: cannot be loaded (built with " << DETKIT_BUILT_WITH_TORCH << "): " << *load_error << "\n"
              << "  commands that train or run models will fail; 'detkit doctor' explains the environment\n";
    return 0;
  }
  std::cout << "LibTorch " << info.torch_version << " (built with " << DETKIT_BUILT_WITH_TORCH << ")\n";
  if (info.cuda_compiled) {
    std::cout << "CUDA " << info.cuda_version << ", cuDNN " << (info.cudnn_version.empty() ? "none" : info.cudnn_version)
              << "\n";
    if (!info.cuda_arch_flags.empty()) std::cout << "  compiled for: " << info.cuda_arch_flags << "\n";
  } else {
    std::cout << "CUDA: not compiled in (this LibTorch runs on the CPU only)\n";
  }
  std::cout << "CUDA devices: " << info.device_count << "\n";
  for (std::size_t i = 0; i < info.devices.size(); ++i) std::cout << "  cuda:" << i << " " << info.devices[i] << "\n";
  std::cout << "CPU threads: " << info.intra_op_threads << " intra-op, " << info.inter_op_threads << " inter-op\n";
  return 0;
}

}  // namespace detkit::cli
