// Gathering the facts of diag/facts.h from a running system, without LibTorch and without needing CUDA
// to load: files under /proc, /sys and /etc, directory listings of the loader path, Python site-packages
// read as text, and NVML / libcuda / libcudnn opened with dlopen (a library that fails to open is a fact,
// not an error).
//
// Everything the probe reads is injectable through ProbeOptions, so tests run it against a fake system
// tree in a temp directory and stub NVIDIA libraries built by the tests.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "diag/facts.h"

namespace detkit::diag {

struct ProbeOptions {
  // The inspected system's "/": /proc, /sys, /etc, /usr/local/cuda*, and every absolute path taken from
  // the environment (LD_LIBRARY_PATH, CUDA_HOME, PATH) are read below it. Facts report paths as seen on
  // the inspected system (without this prefix).
  std::filesystem::path root = "/";
  // The environment to inspect; nullopt: this process's environment.
  std::optional<std::map<std::string, std::string>> env;
  // The loader's search order; nullopt: LD_LIBRARY_PATH, then /etc/ld.so.conf (with includes), then the
  // system defaults.
  std::optional<std::vector<std::string>> loader_dirs;
  // site-packages directories to read (`--python-site`); when empty, those of the python3 interpreters on
  // PATH (venvs, pyenv, Debian dist-packages, user site) are found.
  std::vector<std::string> python_site_dirs;
  bool discover_python = true;
  // Libraries opened with dlopen. Names without '/' go through the real loader.
  std::string nvml_library = "libnvidia-ml.so.1";
  std::string cuda_library = "libcuda.so.1";
  // Call cudnnGetVersion() in each distinct libcudnn.so.N found on the loader path.
  bool probe_cudnn = true;
  // Where free disk space is measured (a path on this machine, not under `root`).
  std::filesystem::path disk_path = ".";
};

// Gathers everything except detkit's own LibTorch facts and smoke results (the CLI adds those from a
// child process). Never throws for a missing or unreadable source: that becomes an empty fact.
Facts gather_facts(const ProbeOptions& options);

// Parsers for the text sources, exposed for tests. Each returns empty values for text it does not know.

// The version in /proc/driver/nvidia/version line 1 ("NVRM version: NVIDIA UNIX x86_64 Kernel Module
// 535.104.05 ..." or "... Open Kernel Module for x86_64  575.57.08 ..."): the first token after
// "Kernel Module" (and "for <arch>") that starts with a digit.
std::string parse_proc_driver_version(const std::string& text);

// The torch facts of site-packages/torch/version.py (`__version__ = '2.5.1+cu124'`, `cuda = '12.4'` or
// `cuda: Optional[str] = None`).
FrameworkInstall parse_torch_version_py(const std::string& text);

// The TensorFlow facts of site-packages/tensorflow/python/platform/build_info.py (the generated
// `build_info = collections.OrderedDict([...])`): CUDA/cuDNN versions, compute capabilities, CUDA build.
FrameworkInstall parse_tf_build_info(const std::string& text);

// Splits a library file name into (family, version): "libcudart.so.12.4.127" -> ("cudart", "12.4.127").
// Family is empty for names that are not one of the tracked libraries (sub-libraries such as
// libcudnn_ops.so.9 included).
std::pair<std::string, std::string> classify_library_name(const std::string& file_name);

}  // namespace detkit::diag
