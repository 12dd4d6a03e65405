#include "core/torch_plugin.h"

#include <dlfcn.h>

#include <cstdlib>
#include <memory>
#include <mutex>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/text.h"
#include "core/threads.h"

namespace detkit {

namespace {

struct LoadState {
  std::once_flag once;
  TorchPlugin* plugin = nullptr;  // owned for the process lifetime; LibTorch is never unloaded
  std::string error;
};

LoadState& state() {
  static LoadState s;
  return s;
}

// Turns a dlopen message into a remedy a user can act on.
std::string remedy_for(const std::string& message) {
  if (message.find("libcudnn") != std::string::npos)
    return "cuDNN is missing or not on the loader path: install the cuDNN that LibTorch was built with, or add "
           "its lib directory to LD_LIBRARY_PATH; 'detkit doctor' lists what is installed";
  if (message.find("libcuda.so") != std::string::npos)
    return "the NVIDIA driver library is missing: install the NVIDIA driver (or use a CPU LibTorch build); "
           "'detkit doctor' shows the driver state";
  if (message.find("libcudart") != std::string::npos || message.find("libcublas") != std::string::npos ||
      message.find("libnv") != std::string::npos)
    return "a CUDA runtime library is missing: install the CUDA toolkit LibTorch was built with, or add its "
           "lib64 directory to LD_LIBRARY_PATH; 'detkit doctor' lists what is installed";
  if (message.find("libtorch") != std::string::npos || message.find("libc10") != std::string::npos)
    return "LibTorch's libraries are not found: install libtorch (Debian: apt-get install libtorch-dev) or add "
           "the LibTorch lib directory to LD_LIBRARY_PATH";
  if (message.find("undefined symbol") != std::string::npos)
    return "the LibTorch found at run time differs from the one detkit was built with: rebuild detkit against it "
           "(make clean && make) or put the original LibTorch first on LD_LIBRARY_PATH";
  if (message.find("No such file") != std::string::npos || message.find("cannot open") != std::string::npos)
    return "rebuild detkit (make build), or point DETKIT_TORCH_PLUGIN at libdetkit_torch.so";
  return "run 'detkit doctor' to check the LibTorch and CUDA installation";
}

void load() {
  LoadState& s = state();
  const std::string path = torch_plugin_path();
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* err = ::dlerror();
    s.error = err ? err : "unknown dynamic loader error";
    return;
  }
  using Create = TorchPlugin* (*)(int);
  auto create = reinterpret_cast<Create>(::dlsym(handle, "detkit_torch_plugin_create"));
  if (!create) {
    s.error = path + ": not a detkit torch plugin (no detkit_torch_plugin_create)";
    return;
  }
  TorchPlugin* plugin = create(kTorchPluginApiVersion);
  if (!plugin) {
    s.error = path + ": built for another detkit version (plugin API mismatch)";
    return;
  }
  plugin->set_threads(thread_count());
  s.plugin = plugin;
  log_debug("loaded LibTorch plugin ", path);
}

}  // namespace

std::string torch_plugin_path() {
  if (const char* env = std::getenv("DETKIT_TORCH_PLUGIN"); env && *env) return env;
  return (executable_directory() / ".." / "lib" / "libdetkit_torch.so").lexically_normal().string();
}

std::optional<std::string> torch_plugin_load_error() {
  LoadState& s = state();
  try {
    std::call_once(s.once, load);
  } catch (const std::exception& e) {
    // set_threads or the plugin's constructor failed; keep the reason, stay loadable-never.
    s.error = e.what();
    s.plugin = nullptr;
  }
  if (s.plugin) return std::nullopt;
  return s.error;
}

TorchPlugin& torch_plugin() {
  if (const auto error = torch_plugin_load_error())
    throw EnvironmentError({"cannot load LibTorch", *error, remedy_for(*error), torch_plugin_path()});
  return *state().plugin;
}

}  // namespace detkit
