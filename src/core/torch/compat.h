// The one place where LibTorch API differences between 1.13 (Debian, CPU) and 2.x (CUDA builds on GPU
// hosts) are handled. Code elsewhere calls these wrappers instead of testing versions itself.
#pragma once

#include <torch/version.h>

#include <string>

#define DETKIT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace detkit::compat {

// "1.13.0" from the headers LibTorch was compiled with.
inline std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// LibTorch's build configuration text (at::show_config), with CUDA, cuDNN and architecture lines.
std::string build_config();

// Name, compute capability and memory of CUDA device `index`; "" when CUDA support is not compiled in.
std::string cuda_device_description(int index);

// Turns autocast on or off for CUDA (fp16) or the CPU (bf16). LibTorch 2.4 replaced the per-device
// functions (set_enabled, set_cpu_enabled) with ones taking a device type.
void set_autocast(bool cuda, bool enabled);

}  // namespace detkit::compat
