// What `detkit doctor` knows about a machine: plain values, gathered by diag/probe.h and judged by
// diag/rules.h. Torch-free and CUDA-free: every field is filled from files, environment variables and
// libraries opened with dlopen, so the facts exist even when LibTorch or CUDA cannot be loaded.
//
// Conventions: an empty string means "not known / not found"; versions are kept as the text the source
// printed ("535.104.05", "12.4", "9.1.0"), compared with diag/version.h; sizes are bytes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace detkit::diag {

struct SystemFacts {
  std::string os;              // PRETTY_NAME from /etc/os-release
  std::string kernel;          // /proc/sys/kernel/osrelease
  std::string cpu_model;       // first "model name" in /proc/cpuinfo
  int cpu_count = 0;           // logical CPUs listed in /proc/cpuinfo
  uint64_t ram_total = 0;      // MemTotal
  uint64_t ram_available = 0;  // MemAvailable
  std::string disk_path;       // where free space was measured (the working directory)
  uint64_t disk_free = 0;      // bytes available to an unprivileged user there
  uint64_t shm_total = 0;      // size of /dev/shm (0: unknown); PyTorch-style loaders pass tensors through it
  uint64_t memory_limit = 0;   // this process's cgroup memory limit (a container's; 0: none), core/memory.h
  uint64_t memory_limit_used = 0;  // what its cgroup uses now
  std::string memory_limit_file;   // where the limit was read
  bool container = false;      // /.dockerenv, /run/.containerenv, or docker/kubepods in /proc/1/cgroup
  bool wsl = false;            // "microsoft" in /proc/version
  std::vector<std::string> net_interfaces;  // names in /sys/class/net (NCCL_SOCKET_IFNAME must match one)
  std::string blas_library;    // the file /usr/lib/<multiarch>/libblas.so.3 resolves to (Debian's alternatives); ""
};

struct GpuProcess {
  unsigned pid = 0;
  std::string name;        // /proc/PID/comm, "" when the process is in another PID namespace
  uint64_t used_bytes = 0;  // GPU memory it holds
};

struct GpuFacts {
  int index = 0;  // NVML index (the physical order, before CUDA_VISIBLE_DEVICES)
  std::string name;
  int cc_major = 0, cc_minor = 0;  // compute capability; 0.0 when unknown
  uint64_t memory_total = 0, memory_free = 0;
  std::vector<GpuProcess> processes;  // compute processes using it (all users, when NVML may see them)
};

struct DriverFacts {
  bool kernel_module = false;       // /proc/driver/nvidia/version exists
  std::string kernel_version;       // version printed there, e.g. "535.104.05"
  bool open_kernel_module = false;  // "Open Kernel Module" (the only kind Blackwell supports)
  std::vector<std::string> pci_gpus;  // PCI addresses of NVIDIA display/3D controllers in /sys

  std::string nvml_library;         // what was dlopen'ed
  bool nvml_loaded = false;         // dlopen and nvmlInit succeeded
  std::string nvml_error;           // why not ("" when loaded)
  bool nvml_version_mismatch = false;  // nvmlInit said NVML_ERROR_LIB_RM_VERSION_MISMATCH
  std::string nvml_driver_version;  // nvmlSystemGetDriverVersion: the user-space driver

  std::string libcuda_library;  // what was dlopen'ed
  std::string libcuda_error;    // "" when cuDriverGetVersion answered
  int cuda_driver_api = 0;      // cuDriverGetVersion: newest CUDA the driver supports, 12040 = 12.4 (0: unknown)
};

// One versioned library (one major of one family) found in one directory.
struct LibraryFile {
  std::string family;   // cudart, cudnn, cublas, nccl, cuda (driver), nvidia-ml (driver)
  std::string soname;   // the name a program asks the loader for: libcudart.so.12, libcudart.so.11.0
  std::string version;  // the fullest version in the file names: "12.4.127"; the soname's when none longer
  std::string dir;      // directory, as a path on the inspected system
  std::string origin;   // LD_LIBRARY_PATH, ld.so.conf, system default, CUDA_HOME, /usr/local/cuda*,
                        // or "site-packages: DIR" (pip NVIDIA wheels, torch/lib)
  bool on_loader_path = false;  // in a directory the dynamic loader searches (LD_LIBRARY_PATH, ld.so.conf, defaults)
  int loader_rank = -1;         // position of `dir` in the loader's search order (lower wins); -1 when not on it
};

// The answer of cudnnGetVersion() from one libcudnn, opened with dlopen.
struct CudnnProbe {
  std::string path;
  std::string version;  // "9.1.0" decoded from the integer; "" on failure
  std::string error;
};

struct CudaToolkit {
  std::string path;     // /usr/local/cuda-12.4, CUDA_HOME
  std::string version;  // from version.json / version.txt, else the directory name; "" when unknown
  std::string origin;   // CUDA_HOME, CUDA_PATH, /usr/local
  bool exists = true;   // false when a variable names a directory that is not there
};

// A TensorFlow or PyTorch found in a Python site-packages directory, read from its own files.
struct FrameworkInstall {
  std::string framework;      // "torch" or "tensorflow"
  std::string package;        // distribution name: torch, tensorflow, tensorflow-cpu, tensorflow-gpu, tf-nightly
  std::string version;        // "2.5.1+cu124", "2.15.0"
  std::string site_dir;       // the site-packages directory
  std::string interpreters;   // python3 interpreters on PATH that use it ("" when given with --python-site)
  bool cuda_build = false;    // built with CUDA
  std::string cuda_version;   // CUDA it was built with ("12.4"); "" for CPU builds
  std::string cudnn_version;  // cuDNN it was built with ("9.1.0.70" for torch from the release table, "8" for TF)
  std::vector<std::string> archs;  // sm_XY / compute_XY it carries
  std::string archs_source;   // "build_info.py", "official cu124 wheel", "" when unknown
  std::string pip_cudnn;      // version of an nvidia-cudnn-cuNN wheel in the same site dir ("" none)
  std::string pip_cuda_runtime;  // version of an nvidia-cuda-runtime-cuNN wheel in the same site dir
};

// detkit's own LibTorch plugin, as a child process reported it (see cmd_doctor.cpp).
struct DetkitTorchFacts {
  std::string built_with;     // LibTorch version detkit was compiled against ("none" without the plugin)
  bool probed = false;        // a report exists (the child ran)
  bool loaded = false;        // the plugin loaded
  std::string error;          // loader error, or how the child died
  std::string version;        // LibTorch version
  std::string cuda_version;   // "" for CPU builds
  std::string cudnn_version;  // "" when none
  std::vector<std::string> archs;  // sm_XY / compute_XY from the NVCC flags
  int device_count = 0;       // CUDA devices LibTorch sees
  bool gloo = false;          // built with c10d's Gloo backend: distributed training (detkit train --nproc, torchrun)
};

// One `--smoke` run on one device, as the child process reported it (or died).
struct SmokeOutcome {
  std::string device;       // "cuda:0", "cpu"
  std::string device_name;
  bool crashed = false;     // the child died (signal) or printed no report
  std::string crash;        // how it died and its last stderr lines
  std::string failed_stage;  // "" when every stage passed: allocate, forward, backward, autocast forward, ...
  std::string error;        // the stage's error message
  std::string autocast_dtype;  // float16 on CUDA, bfloat16 on CPU
  double max_abs_diff = 0;  // fp32 vs autocast output
  double tolerance = 0;     // allowed difference
  double seconds = 0;
};

struct Facts {
  SystemFacts system;
  DriverFacts driver;
  std::vector<GpuFacts> gpus;
  std::vector<std::string> loader_dirs;  // the dynamic loader's search order
  std::vector<LibraryFile> libraries;    // on and off the loader path, in loader order first
  std::vector<CudnnProbe> cudnn_probes;
  std::vector<CudaToolkit> toolkits;
  std::vector<std::pair<std::string, std::string>> env;  // relevant variables that are set, in a fixed order
  std::vector<std::string> python_site_dirs;             // searched for frameworks
  std::vector<FrameworkInstall> frameworks;
  DetkitTorchFacts detkit_torch;
  bool smoke_requested = false;
  std::vector<SmokeOutcome> smoke;

  // The value of a recorded environment variable; nullptr when it is not set.
  const std::string* env_value(const std::string& name) const;
};

// Environment variables doctor records (and rules read), in report order.
const std::vector<std::string>& relevant_env_names();

}  // namespace detkit::diag
