#include "diag/rules.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "core/text.h"
#include "diag/version.h"

namespace detkit::diag {

const char* to_string(Severity severity) {
  switch (severity) {
    case Severity::error: return "error";
    case Severity::warning: return "warning";
    case Severity::info: return "info";
  }
  return "info";
}

std::string driver_version(const Facts& facts) {
  if (!facts.driver.kernel_version.empty()) return facts.driver.kernel_version;
  if (!facts.driver.nvml_driver_version.empty()) return facts.driver.nvml_driver_version;
  for (const auto& lib : facts.libraries)
    if (lib.family == "cuda" && lib.on_loader_path && !lib.version.empty() && facts.driver.kernel_module) return lib.version;
  return "";
}

bool arch_covers(const std::vector<std::string>& archs, int cc, bool* via_ptx) {
  bool ptx = false;
  for (const auto& a : archs) {
    const int n = arch_number(a);
    if (n < 0) continue;
    if (starts_with(a, "sm_")) {
      // sm_90a (arch-specific features) runs only on exactly 9.0; plain sm_XY on the same major, minor >= Y.
      const bool specific = !a.empty() && std::isalpha(static_cast<unsigned char>(a.back()));
      if (specific ? n == cc : (n / 10 == cc / 10 && n <= cc)) {
        if (via_ptx) *via_ptx = false;
        return true;
      }
    } else if (starts_with(a, "compute_") && n <= cc) {
      ptx = true;
    }
  }
  if (via_ptx) *via_ptx = ptx;
  return ptx;
}

int visible_gpu_count(const std::string& value, int gpu_count, std::string* ignored) {
  if (ignored) ignored->clear();
  const std::string v = trim(value);
  if (v.empty() || v == "-1" || to_lower(v) == "none" || to_lower(v) == "nodevfiles") return 0;
  int visible = 0;
  std::set<std::string> seen;
  for (const auto& raw : split(v, ',')) {
    const std::string item = trim(raw);
    const bool uuid = starts_with(item, "GPU-") || starts_with(item, "MIG-");
    const auto index = parse_int(item);
    const bool valid = uuid || (index && *index >= 0 && *index < gpu_count && seen.insert(item).second);
    if (!valid) {
      if (ignored) *ignored = item;
      break;
    }
    ++visible;
  }
  return visible;
}

namespace {

// Three significant digits: enough to judge a tolerance, short enough to read.
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

std::string cc_text(int cc) { return cat(cc / 10, ".", cc % 10); }
std::string sm(int cc) { return cat("sm_", cc); }
std::string cu_tag(const std::string& cuda) { return "cu" + join(split(version_prefix(cuda, 2), '.'), ""); }

// A program that needs a CUDA runtime: detkit's LibTorch, a Python framework, or a toolkit on disk.
struct CudaUser {
  std::string name;  // "detkit's LibTorch 2.5.1", "torch 2.5.1+cu124 in /venv/..."
  std::string kind;  // detkit, torch, tensorflow
  std::string version;
  std::string cuda;
  std::vector<std::string> archs;
  std::string archs_source;
};

std::vector<CudaUser> cuda_users(const Facts& f) {
  std::vector<CudaUser> users;
  if (f.detkit_torch.loaded && !f.detkit_torch.cuda_version.empty())
    users.push_back({"detkit's LibTorch " + f.detkit_torch.version, "detkit", f.detkit_torch.version,
                     f.detkit_torch.cuda_version, f.detkit_torch.archs, "its NVCC flags"});
  for (const auto& fw : f.frameworks)
    if (fw.cuda_build)
      users.push_back({cat(fw.package, " ", fw.version, " (", fw.site_dir, ")"), fw.framework, fw.version,
                       fw.cuda_version, fw.archs, fw.archs_source});
  return users;
}

// The torch CUDA variants whose official wheels carry a cubin for a GPU of compute capability `cc`; the
// PTX-only ones when none does (PTX JIT runs torch's own kernels, but the cuDNN/cuBLAS they bundle may
// still lack the architecture).
std::vector<std::string> torch_variants_for(const CompatTables& t, int cc) {
  std::vector<std::string> native, ptx_only;
  for (const auto& row : t.torch_archs) {
    bool via_ptx = false;
    if (!arch_covers(row.archs, cc, &via_ptx)) continue;
    auto& out = via_ptx ? ptx_only : native;
    const std::string tag = cu_tag(row.cuda);
    if (std::find(out.begin(), out.end(), tag) == out.end()) out.push_back(tag);
  }
  return native.empty() ? ptx_only : native;
}

// The newest torch CUDA variant whose runtime the driver supports natively; "" when none.
std::string newest_torch_variant_for_driver(const CompatTables& t, const std::string& driver) {
  std::string best;
  for (const auto& row : t.torch_archs) {
    const std::string need = t.driver_for_cuda(row.cuda);
    if (!need.empty() && compare_versions(driver, need) >= 0 && (best.empty() || compare_versions(row.cuda, best) > 0))
      best = row.cuda;
  }
  return best.empty() ? "" : cu_tag(best);
}

// cuDNN libraries (main library per major) a program could load: on the loader path first, then extra dirs.
std::vector<const LibraryFile*> cudnn_on_path(const Facts& f) {
  std::vector<const LibraryFile*> out;
  for (const auto& lib : f.libraries)
    if (lib.family == "cudnn" && lib.on_loader_path) out.push_back(&lib);
  std::stable_sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->loader_rank < b->loader_rank; });
  return out;
}

std::string describe(const LibraryFile& lib) {
  return cat(lib.soname, lib.version.empty() ? "" : " (" + lib.version + ")", " in ", lib.dir);
}

struct Rules {
  const Facts& f;
  const CompatTables& t;
  std::vector<Finding> out;
  std::string driver = driver_version(f);
  bool has_gpu = !f.gpus.empty() || !f.driver.pci_gpus.empty() || f.driver.kernel_module;

  void add(std::string id, Severity s, std::string title, std::string detail, std::string remedy) {
    out.push_back({std::move(id), s, std::move(title), std::move(detail), std::move(remedy)});
  }

  void no_driver() {
    if (has_gpu || f.driver.nvml_loaded) return;
    std::vector<std::string> cuda_builds;
    for (const auto& u : cuda_users(f)) cuda_builds.push_back(u.name);
    std::string detail = "No NVIDIA kernel driver is loaded (/proc/driver/nvidia/version is missing) and no NVIDIA GPU "
                         "is on the PCI bus, so no CUDA device can be used. detkit runs on the CPU.";
    if (!cuda_builds.empty())
      detail += " These CUDA builds will run on the CPU too (or fail where they require a GPU): " + join(cuda_builds, "; ") + ".";
    std::vector<std::string> libs;
    for (const auto& lib : f.libraries)
      if (lib.family == "cudart" || lib.family == "cudnn") libs.push_back(describe(lib));
    if (!libs.empty()) detail += " CUDA libraries are installed but unused without a driver: " + join(libs, ", ") + ".";
    std::string remedy = "nothing to do for CPU work; to use an NVIDIA GPU, install the NVIDIA driver (Debian: apt-get "
                         "install nvidia-driver) and run 'detkit doctor' again";
    if (f.system.container) remedy += "; in a container, start it with the NVIDIA runtime ('docker run --gpus all')";
    add("driver.none", Severity::info, "no NVIDIA driver: detkit runs on the CPU", detail, remedy);
  }

  void gpu_without_driver() {
    if (f.driver.pci_gpus.empty() || f.driver.kernel_module) return;
    add("driver.not-loaded", Severity::error,
        cat(f.driver.pci_gpus.size(), " NVIDIA GPU(s) on the PCI bus but the NVIDIA kernel driver is not loaded"),
        cat("PCI devices ", join(f.driver.pci_gpus, ", "), " are NVIDIA display controllers; /proc/driver/nvidia/version "
            "is missing, so CUDA programs report 'no CUDA-capable device' and nvidia-smi cannot talk to the driver."),
        "install the NVIDIA driver (Debian: apt-get install nvidia-driver); after a kernel update rebuild its module "
        "(dkms autoinstall) and make sure nouveau is blacklisted, then reboot");
  }

  void nvml_mismatch() {
    const bool versions_differ = !f.driver.kernel_version.empty() && !f.driver.nvml_driver_version.empty() &&
                                 compare_versions(f.driver.kernel_version, f.driver.nvml_driver_version) != 0;
    if (!f.driver.nvml_version_mismatch && !versions_differ) return;
    std::string detail = "The loaded kernel module";
    detail += f.driver.kernel_version.empty() ? "" : " is " + f.driver.kernel_version;
    detail += versions_differ ? cat(" but the user-space driver (NVML) is ", f.driver.nvml_driver_version)
                              : " and NVML refuses to initialise: " + f.driver.nvml_error;
    detail += ". This happens when driver packages are upgraded (often by unattended upgrades) while the old module "
              "stays loaded; nvidia-smi says 'Driver/library version mismatch' and CUDA programs cannot start.";
    add("driver.version-mismatch", Severity::error, "NVIDIA kernel module and user-space driver versions differ", detail,
        "reboot (or unload and reload the nvidia kernel modules); to stop it recurring, hold the driver packages "
        "(apt-mark hold) and upgrade them deliberately");
  }

  void libcuda_missing() {
    if (!f.driver.kernel_module || f.driver.libcuda_error.empty()) return;
    add("driver.libcuda-missing", Severity::error, "the NVIDIA kernel driver is loaded but libcuda.so.1 cannot be opened",
        cat("dlopen(", f.driver.libcuda_library, "): ", f.driver.libcuda_error,
            ". Every CUDA program needs the driver's user-space library; without it they fall back to the CPU or fail."),
        f.system.container ? "start the container with the NVIDIA runtime ('docker run --gpus all') so the driver "
                             "libraries are mounted into it"
                           : cat("install the driver's user-space libraries matching the kernel module ",
                                 f.driver.kernel_version, " (Debian: apt-get install libcuda1), or add their directory "
                                 "to LD_LIBRARY_PATH (on WSL: /usr/lib/wsl/lib)"));
  }

  void open_module_required() {
    if (!f.driver.kernel_module || f.driver.open_kernel_module) return;
    for (const auto& g : f.gpus)
      if (g.cc_major >= 10)
        add("driver.open-module-required", Severity::error,
            cat("GPU ", g.index, " (", g.name, ", Blackwell) needs NVIDIA's open kernel module"),
            "The loaded module is the proprietary one, which does not support Blackwell GPUs (compute capability "
            "10.0 and newer).",
            "install the open kernel module flavour of the driver (e.g. nvidia-open, or the installer's -m=kernel-open) "
            "at version 570 or newer, and reboot");
  }

  void driver_too_old() {
    if (driver.empty()) {
      // No version, but libcuda answered: compare the newest CUDA it supports.
      if (f.driver.cuda_driver_api <= 0) return;
    }
    for (const auto& u : cuda_users(f)) {
      const int major = version_major(u.cuda);
      const std::string floor = t.minor_compat_driver(major);
      const std::string need = t.driver_for_cuda(u.cuda);
      std::string variant_hint;
      if (u.kind == "torch" && !driver.empty()) {
        const std::string v = newest_torch_variant_for_driver(t, driver);
        if (!v.empty()) variant_hint = cat(", or install a torch build for an older CUDA (pip index .../whl/", v, ")");
      } else if (u.kind == "tensorflow") {
        variant_hint = ", or install a TensorFlow whose tested CUDA the driver supports (tensorflow.org/install/source#gpu)";
      } else if (u.kind == "detkit") {
        variant_hint = ", or rebuild detkit against a LibTorch built for an older CUDA";
      }
      if (!driver.empty()) {
        const bool below_floor = !floor.empty() && compare_versions(driver, floor) < 0;
        const bool below_need_no_compat = floor.empty() && !need.empty() && compare_versions(driver, need) < 0;
        if (below_floor || below_need_no_compat) {
          add("driver.too-old", Severity::error, cat("NVIDIA driver ", driver, " is too old for CUDA ", u.cuda, " (", u.name, ")"),
              cat("CUDA ", u.cuda, " needs driver >= ", need.empty() ? floor : need,
                  floor.empty() ? "" : cat(" (any CUDA ", major, ".x runs on >= ", floor, " through minor-version compatibility)"),
                  ". With this driver CUDA reports 'CUDA driver version is insufficient for CUDA runtime version'."),
              cat("update the NVIDIA driver to ", need.empty() ? floor : need, " or newer", variant_hint));
        } else if (!need.empty() && compare_versions(driver, need) < 0) {
          add("driver.minor-compat", Severity::warning,
              cat("CUDA ", u.cuda, " runs on driver ", driver, " only through minor-version compatibility (", u.name, ")"),
              cat("CUDA ", u.cuda, " was released with driver ", need, ". Older drivers of the ", major,
                  ".x line run it, but PTX JIT of newer PTX fails ('the provided PTX was compiled with an unsupported "
                  "toolchain') and features added after the driver are missing."),
              cat("update the NVIDIA driver to ", need, " or newer", variant_hint));
        }
      } else if (f.driver.cuda_driver_api > 0 && compare_versions(cuda_version_from_int(f.driver.cuda_driver_api), u.cuda) < 0 &&
                 version_major(cuda_version_from_int(f.driver.cuda_driver_api)) < major) {
        add("driver.too-old", Severity::error,
            cat("the driver supports CUDA ", cuda_version_from_int(f.driver.cuda_driver_api), " but ", u.name, " needs CUDA ", u.cuda),
            "cuDriverGetVersion reports the newest CUDA the installed driver supports.",
            cat("update the NVIDIA driver to ", need.empty() ? floor : need, " or newer", variant_hint));
      }
    }
  }

  void arch_coverage() {
    for (const auto& g : f.gpus) {
      if (g.cc_major <= 0) continue;
      const int cc = g.cc_major * 10 + g.cc_minor;
      for (const auto& u : cuda_users(f)) {
        if (u.archs.empty()) continue;
        bool via_ptx = false;
        if (arch_covers(u.archs, cc, &via_ptx)) {
          if (via_ptx)
            add("arch.ptx-jit", Severity::info,
                cat("GPU ", g.index, " (", g.name, ", ", sm(cc), ") runs ", u.name, " through PTX JIT"),
                cat(u.name, " has no ", sm(cc), " cubin (", join(u.archs, " "), ", from ", u.archs_source,
                    "); the driver compiles its PTX at first use, which is slow once and then cached."),
                "");
          continue;
        }
        int lowest = 1000;
        for (const auto& a : u.archs)
          if (arch_number(a) > 0) lowest = std::min(lowest, arch_number(a));
        const bool too_old = cc < lowest;
        std::string remedy;
        if (u.kind == "torch") {
          const auto variants = torch_variants_for(t, cc);
          remedy = variants.empty() ? cat("no official torch wheel covers ", sm(cc), "; build torch from source with "
                                          "TORCH_CUDA_ARCH_LIST=", cc_text(cc))
                                    : cat("install a torch wheel whose arch list covers ", sm(cc), ": CUDA variant ",
                                          join(variants, " or "), " (pip install torch --index-url "
                                          "https://download.pytorch.org/whl/", variants.back(), ")");
        } else if (u.kind == "tensorflow") {
          remedy = cat("TensorFlow's wheels carry no code for ", sm(cc), "; build TensorFlow from source with "
                       "TF_CUDA_COMPUTE_CAPABILITIES=", cc_text(cc), ", or use a GPU it supports");
        } else {
          const auto variants = torch_variants_for(t, cc);
          remedy = cat("rebuild detkit against a LibTorch compiled for ", sm(cc),
                       variants.empty() ? "" : cat(" (e.g. pip torch ", variants.back(), " via scripts/gpu-check)"));
        }
        add("arch.no-kernel-image", Severity::error,
            cat(u.name, " has no code for GPU ", g.index, " (", g.name, ", ", sm(cc), ")"),
            cat("It was compiled for ", join(u.archs, " "), " (from ", u.archs_source, ")",
                too_old ? cat(", all newer than ", sm(cc), ": the GPU is too old for this build") : "",
                ". CUDA kernels fail with 'no kernel image is available for execution on the device'."),
            remedy);
      }
    }
  }

  // Which cuDNN a framework gets, and whether it fits what it was built with.
  void cudnn_fit() {
    const auto on_path = cudnn_on_path(f);
    auto cudnn_list = [&] {
      std::vector<std::string> all;
      for (const auto& lib : f.libraries)
        if (lib.family == "cudnn") all.push_back(describe(lib));
      return all.empty() ? std::string("none") : join(all, ", ");
    };
    for (const auto& fw : f.frameworks) {
      if (!fw.cuda_build || fw.cudnn_version.empty()) continue;
      const int need_major = version_major(fw.cudnn_version);
      const std::string soname = cat("libcudnn.so.", need_major);
      // What the framework would load: the pip wheel in its own site dir first (TF 2.14+, torch cu12 wheels
      // find them there), then the loader path.
      std::string have = fw.pip_cudnn, have_where = fw.pip_cudnn.empty() ? "" : "the nvidia-cudnn wheel in " + fw.site_dir;
      if (have.empty() || version_major(have) != need_major) {
        have.clear();
        for (auto* lib : on_path)
          if (version_major(lib->version) == need_major) {
            have = lib->version;
            have_where = lib->dir;
            break;
          }
      }
      for (const auto& lib : f.libraries)  // torch cu11x wheels bundle cuDNN in torch/lib
        if (have.empty() && lib.family == "cudnn" && lib.dir == fw.site_dir + "/torch/lib" && version_major(lib.version) == need_major) {
          have = lib.version;
          have_where = lib.dir;
        }
      const std::string name = cat(fw.package, " ", fw.version);
      if (have.empty()) {
        add("cudnn.missing", Severity::error, cat(name, " needs cuDNN ", need_major, " (", soname, ") and none is installed"),
            cat(name, " was built with cuDNN ", fw.cudnn_version, ". cuDNN libraries found: ", cudnn_list(),
                ". Without ", soname, " it reports 'Could not load dynamic library '", soname,
                "'' and runs on the CPU, or fails at the first convolution."),
            cat("install cuDNN ", need_major, " for CUDA ", version_major(fw.cuda_version), " (pip install nvidia-cudnn-cu",
                version_major(fw.cuda_version), "==", fw.cudnn_version, "*, or the system package), and make sure its lib "
                "directory is on LD_LIBRARY_PATH"));
        continue;
      }
      // Same major, runtime minor >= build minor (the rule TensorFlow enforces at start).
      const std::string build_mm = version_prefix(fw.cudnn_version, 2);
      if (version_numbers(fw.cudnn_version).size() >= 2 && compare_versions(version_prefix(have, 2), build_mm) < 0)
        add("cudnn.too-old", Severity::error, cat(name, " was built with cuDNN ", fw.cudnn_version, " but would load cuDNN ", have),
            cat("cuDNN ", have, " from ", have_where, ". cuDNN must have the same major version and an equal or higher "
                "minor version than the build ('Loaded runtime CuDNN library: ", have, " but source was compiled with: ",
                fw.cudnn_version, "')."),
            cat("install cuDNN ", build_mm, " or newer of major ", need_major, " and put it first on LD_LIBRARY_PATH"));
      // A wheel-bundled cuDNN can be overridden by another one earlier on LD_LIBRARY_PATH.
      if (!fw.pip_cudnn.empty())
        for (auto* lib : on_path)
          if (lib->origin == "LD_LIBRARY_PATH" && version_major(lib->version) == need_major &&
              compare_versions(version_prefix(lib->version, 2), version_prefix(fw.pip_cudnn, 2)) != 0) {
            add("cudnn.overridden", Severity::warning,
                cat("LD_LIBRARY_PATH puts cuDNN ", lib->version, " before ", name, "'s own cuDNN ", fw.pip_cudnn),
                cat(describe(*lib), " is found by the loader before the nvidia-cudnn wheel in ", fw.site_dir,
                    "; mixing them gives 'cuDNN version incompatibility' or CUDNN_STATUS errors."),
                cat("remove ", lib->dir, " from LD_LIBRARY_PATH when running ", fw.framework, ", or install the same cuDNN there"));
            break;
          }
    }
    // detkit's own LibTorch against the cuDNN the loader gives it.
    const auto& dt = f.detkit_torch;
    if (dt.loaded && !dt.cudnn_version.empty()) {
      const int major = version_major(dt.cudnn_version);
      for (const auto& probe : f.cudnn_probes) {
        if (version_major(probe.version) != major) continue;
        if (compare_versions(version_prefix(probe.version, 2), version_prefix(dt.cudnn_version, 2)) < 0)
          add("cudnn.too-old", Severity::error,
              cat("detkit's LibTorch was built with cuDNN ", dt.cudnn_version, " but the loader finds cuDNN ", probe.version),
              cat(probe.path, " reports ", probe.version, " (cudnnGetVersion)."),
              cat("install cuDNN ", version_prefix(dt.cudnn_version, 2), " or newer, or put its directory first on LD_LIBRARY_PATH"));
        break;
      }
    }
  }

  void tensorflow_tested() {
    for (const auto& fw : f.frameworks) {
      if (fw.framework != "tensorflow") continue;
      if (fw.package == "tensorflow-gpu")
        add("tensorflow.gpu-package", Severity::warning, "the retired tensorflow-gpu package is installed",
            cat("tensorflow-gpu ", fw.version, " in ", fw.site_dir, ": the name was retired in December 2022 and has been "
                "identical to tensorflow since 2.1; newer versions do not exist under it."),
            "pip uninstall tensorflow-gpu && pip install 'tensorflow[and-cuda]'");
      if (!fw.cuda_build) {
        if (!f.gpus.empty())
          add("build.cpu-only", Severity::warning, cat(fw.package, " ", fw.version, " is a CPU-only build on a GPU machine"),
              cat("build_info.py in ", fw.site_dir, " says is_cuda_build=False."),
              "pip install 'tensorflow[and-cuda]' (Linux) to get the GPU build with its CUDA libraries");
        continue;
      }
      const auto tested = t.tensorflow(fw.version);
      if (!tested) {
        add("tensorflow.untested", Severity::info, cat("TensorFlow ", fw.version, " is not in detkit's tested-configuration table"),
            "data/compat.yaml lists TensorFlow 1.12 to 2.21; doctor cannot say which CUDA and cuDNN it was tested with.", "");
        continue;
      }
      // The CUDA runtime it would load: the nvidia-cuda-runtime wheel in its site dir, else libcudart on the path.
      std::string cudart = fw.pip_cuda_runtime, cudart_where = fw.site_dir;
      if (cudart.empty() || version_major(cudart) != version_major(tested->cuda)) {
        cudart.clear();
        for (const auto& lib : f.libraries)
          if (lib.family == "cudart" && lib.on_loader_path && version_major(lib.version) == version_major(tested->cuda)) {
            cudart = lib.version;
            cudart_where = lib.dir;
            break;
          }
      }
      if (cudart.empty()) {
        std::vector<std::string> others;
        for (const auto& lib : f.libraries)
          if (lib.family == "cudart") others.push_back(describe(lib));
        add("tensorflow.cuda-missing", Severity::error,
            cat("TensorFlow ", fw.version, " needs the CUDA ", version_major(tested->cuda), " runtime and none is on the loader path"),
            cat("TensorFlow ", version_prefix(fw.version, 2), " was tested with CUDA ", tested->cuda, " and cuDNN ", tested->cudnn,
                ". CUDA runtimes found: ", others.empty() ? std::string("none") : join(others, ", "),
                ". It will log 'Cannot dlopen some GPU libraries' and run on the CPU."),
            version_major(tested->cuda) >= 12 && compare_versions(fw.version, "2.14") >= 0
                ? "pip install 'tensorflow[and-cuda]==" + fw.version + "' to get the CUDA libraries it was built with"
                : cat("install CUDA ", tested->cuda, " and cuDNN ", tested->cudnn, " and add their lib directories to LD_LIBRARY_PATH"));
      } else if (compare_versions(version_prefix(cudart, 2), tested->cuda) != 0) {
        add("tensorflow.untested-cuda", Severity::warning,
            cat("TensorFlow ", fw.version, " would use CUDA ", cudart, "; it was tested with CUDA ", tested->cuda),
            cat("CUDA ", cudart, " from ", cudart_where, ". Other minor versions of the same major usually work, but ",
                "XLA/ptxas and cuDNN combinations outside the tested pair (CUDA ", tested->cuda, ", cuDNN ", tested->cudnn,
                ") are where 'DNN library is not found' and JIT failures come from."),
            cat("install CUDA ", tested->cuda, " with cuDNN ", tested->cudnn, " for TensorFlow ", version_prefix(fw.version, 2),
                compare_versions(fw.version, "2.14") >= 0 ? " (pip install 'tensorflow[and-cuda]' pins them)" : ""));
      }
    }
  }

  void cpu_only_builds() {
    if (f.gpus.empty()) return;
    const std::string variant = driver.empty() ? "" : newest_torch_variant_for_driver(t, driver);
    if (f.detkit_torch.loaded && f.detkit_torch.cuda_version.empty())
      add("build.cpu-only", Severity::warning, cat("detkit's LibTorch ", f.detkit_torch.version, " is a CPU-only build on a GPU machine"),
          cat("The machine has ", f.gpus.size(), " NVIDIA GPU(s) but detkit was built against a LibTorch without CUDA, "
              "so it trains and predicts on the CPU."),
          cat("build detkit against a CUDA LibTorch: scripts/gpu-check, or cmake -DCMAKE_PREFIX_PATH=\"$(python3 -c 'import "
              "torch; print(torch.utils.cmake_prefix_path)')\" with a CUDA torch", variant.empty() ? "" : " (" + variant + ")"));
    for (const auto& fw : f.frameworks)
      if (fw.framework == "torch" && !fw.cuda_build)
        add("build.cpu-only", Severity::warning, cat("torch ", fw.version, " in ", fw.site_dir, " is a CPU-only build on a GPU machine"),
            "torch/version.py says cuda = None; torch.cuda.is_available() is False and '.cuda()' raises 'Torch not "
            "compiled with CUDA enabled'.",
            variant.empty() ? "install a CUDA torch wheel from https://download.pytorch.org/whl/cuXYZ"
                            : cat("pip install --force-reinstall torch --index-url https://download.pytorch.org/whl/", variant,
                                  " (the newest CUDA variant driver ", driver, " supports)"));
  }

  void shadowed_libraries() {
    std::map<std::string, std::vector<const LibraryFile*>> by_soname;
    for (const auto& lib : f.libraries)
      if (lib.on_loader_path && lib.family != "cuda" && lib.family != "nvidia-ml") by_soname[lib.soname].push_back(&lib);
    for (auto& [soname, libs] : by_soname) {
      if (libs.size() < 2) continue;
      std::stable_sort(libs.begin(), libs.end(), [](auto* a, auto* b) { return a->loader_rank < b->loader_rank; });
      std::vector<std::string> hidden;
      bool differ = false;
      for (std::size_t i = 1; i < libs.size(); ++i) {
        hidden.push_back(describe(*libs[i]));
        differ = differ || compare_versions(libs[i]->version, libs[0]->version) != 0;
      }
      add("libs.shadowed", differ ? Severity::warning : Severity::info,
          cat(soname, " is installed ", libs.size(), " times on the loader path", differ ? " with different versions" : ""),
          cat("The loader takes ", describe(*libs[0]), " (", libs[0]->origin, "); it hides ", join(hidden, ", "),
              ". A program built for the hidden one gets the first."),
          differ ? cat("keep one ", soname, " on the loader path: remove the other directories from LD_LIBRARY_PATH (or "
                       "/etc/ld.so.conf.d and run ldconfig), or uninstall the copy you do not want")
                 : "nothing breaks while the copies are identical; removing the extra copies avoids surprises after upgrades");
    }
    std::map<std::string, std::set<int>> majors;
    for (const auto& lib : f.libraries)
      if (lib.on_loader_path && (lib.family == "cudart" || lib.family == "cudnn")) majors[lib.family].insert(version_major(lib.version));
    for (const auto& [family, set] : majors)
      if (set.size() > 1) {
        std::vector<std::string> libs;
        for (const auto& lib : f.libraries)
          if (lib.on_loader_path && lib.family == family) libs.push_back(describe(lib));
        add("libs.several-majors", Severity::info, cat("several ", family == "cudart" ? "CUDA runtime" : "cuDNN", " majors on the loader path"),
            cat(join(libs, ", "), ". Each program loads the major it was built for; check that each framework finds its own."),
            "");
      }
  }

  void visible_devices() {
    const std::string* v = f.env_value("CUDA_VISIBLE_DEVICES");
    if (!v || f.gpus.empty()) return;
    std::string ignored;
    const int visible = visible_gpu_count(*v, static_cast<int>(f.gpus.size()), &ignored);
    std::vector<std::string> indices;
    for (const auto& g : f.gpus) indices.push_back(std::to_string(g.index));
    if (visible == 0)
      add("env.no-visible-gpu", Severity::error, cat("CUDA_VISIBLE_DEVICES='", *v, "' hides every GPU"),
          cat("The machine has ", f.gpus.size(), " GPU(s) (indices ", join(indices, ","), ") but CUDA sees none: programs "
              "report 'no CUDA-capable device is detected' and run on the CPU."),
          cat("set CUDA_VISIBLE_DEVICES to the GPUs to use (e.g. export CUDA_VISIBLE_DEVICES=", join(indices, ","),
              ") or unset it"));
    else if (!ignored.empty())
      add("env.visible-gpu-ignored", Severity::warning,
          cat("CUDA_VISIBLE_DEVICES='", *v, "': CUDA stops at '", ignored, "' and sees only ", visible, " GPU(s)"),
          cat("Valid indices are ", join(indices, ","), "; CUDA reads the list up to the first invalid or repeated entry."),
          cat("list only existing GPU indices or UUIDs, e.g. export CUDA_VISIBLE_DEVICES=", join(indices, ",")));
  }

  void busy_gpus() {
    for (const auto& g : f.gpus) {
      if (g.memory_total == 0) continue;
      const double used = static_cast<double>(g.memory_total - std::min(g.memory_free, g.memory_total));
      if (used <= t.gpu_busy_fraction * static_cast<double>(g.memory_total)) continue;
      std::vector<std::string> procs;
      for (const auto& p : g.processes)
        procs.push_back(cat("pid ", p.pid, p.name.empty() ? "" : " (" + p.name + ")", " ", format_bytes(p.used_bytes)));
      const GpuFacts* freest = nullptr;
      for (const auto& o : f.gpus)
        if (o.index != g.index && (!freest || o.memory_free > freest->memory_free)) freest = &o;
      add("gpu.busy", Severity::warning,
          cat("GPU ", g.index, " (", g.name, ") is mostly in use: ", format_bytes(g.memory_free), " of ",
              format_bytes(g.memory_total), " free"),
          procs.empty() ? std::string("No process list is visible (another container or user holds it).")
                        : "Held by " + join(procs, ", ") + ".",
          freest && freest->memory_free > g.memory_free
              ? cat("use another GPU (export CUDA_VISIBLE_DEVICES=", freest->index, ", ", format_bytes(freest->memory_free),
                    " free), or stop the processes holding GPU ", g.index)
              : cat("stop the processes holding GPU ", g.index, ", or train with a smaller batch and mixed precision"));
    }
  }

  void environment_variables() {
    if (const std::string* v = f.env_value("CUDA_LAUNCH_BLOCKING"); v && trim(*v) == "1")
      add("env.launch-blocking", Severity::warning, "CUDA_LAUNCH_BLOCKING=1 makes every CUDA call synchronous",
          "It is a debugging setting: error locations become exact, but training runs several times slower.",
          "unset CUDA_LAUNCH_BLOCKING once the error it was set for is found");
    if (const std::string* v = f.env_value("PYTORCH_CUDA_ALLOC_CONF")) {
      static const std::set<std::string> known{"max_split_size_mb", "roundup_power2_divisions", "garbage_collection_threshold",
                                               "expandable_segments", "backend", "pinned_use_cuda_host_register",
                                               "pinned_num_register_threads", "release_lock_on_cudamalloc",
                                               "roundup_bypass_threshold_mb", "pinned_use_background_threads"};
      std::vector<std::string> bad;
      for (const auto& item : split(*v, ',')) {
        const std::string kv = trim(item);
        if (kv.empty()) continue;
        const auto colon = kv.find(':');
        if (colon == std::string::npos || !known.count(trim(kv.substr(0, colon)))) bad.push_back(kv);
      }
      if (!bad.empty()) {
        std::vector<std::string> suggestions;
        for (const auto& b : bad) {
          const auto near = nearest(trim(b.substr(0, b.find(':'))), {known.begin(), known.end()});
          if (near) suggestions.push_back(cat("'", b, "' -> '", *near, b.find(':') == std::string::npos ? ":<value>" : b.substr(b.find(':')), "'"));
        }
        add("env.alloc-conf", Severity::warning, cat("PYTORCH_CUDA_ALLOC_CONF has entries PyTorch does not accept: ", join(bad, ", ")),
            cat("PYTORCH_CUDA_ALLOC_CONF='", *v, "'. It is a comma-separated list of key:value pairs; PyTorch stops with "
                "'Unrecognized CachingAllocator option' at the first CUDA allocation."),
            suggestions.empty() ? "use key:value pairs such as max_split_size_mb:128,expandable_segments:True"
                                : "write " + join(suggestions, ", "));
      }
    }
    for (const auto& tk : f.toolkits)
      if (!tk.exists && (tk.origin == "CUDA_HOME" || tk.origin == "CUDA_PATH"))
        add("env.cuda-home-missing", Severity::warning, cat(tk.origin, "=", tk.path, " does not exist"),
            "Build tools (nvcc, torch.utils.cpp_extension, XLA) look for the CUDA toolkit there.",
            cat("point ", tk.origin, " at an installed toolkit", f.toolkits.size() > 1 ? cat(" (e.g. ", f.toolkits.back().path, ")") : "",
                ", or unset it"));
  }

  void toolkit_targets() {
    for (const auto& tk : f.toolkits) {
      if (!tk.exists || tk.version.empty()) continue;
      const auto range = t.arch_range(tk.version);
      if (!range) continue;
      for (const auto& g : f.gpus) {
        const int cc = g.cc_major * 10 + g.cc_minor;
        if (cc <= 0 || (cc >= range->min_arch && cc <= range->max_arch)) continue;
        add("toolkit.cannot-target-gpu", Severity::warning,
            cat("the CUDA ", tk.version, " toolkit at ", tk.path, " cannot compile for GPU ", g.index, " (", g.name, ", ", sm(cc), ")"),
            cat("nvcc ", tk.version, " targets ", sm(range->min_arch), " to ", sm(range->max_arch),
                ". Building custom CUDA ops (mmcv, apex, detectron2, torch extensions) with it fails with 'Unsupported gpu "
                "architecture' or produces code the GPU cannot run."),
            cc > range->max_arch ? cat("install a newer CUDA toolkit that knows ", sm(cc), " and point CUDA_HOME at it")
                                 : cat("install a CUDA toolkit that still supports ", sm(cc), " (CUDA 12.x supports sm_50 "
                                       "and newer; 13.x dropped everything before sm_75)"));
      }
    }
  }

  void detkit_plugin() {
    const auto& dt = f.detkit_torch;
    if (!dt.probed || dt.loaded || dt.built_with == "none") return;
    std::string remedy = "run 'detkit version' for the loader's message; rebuild detkit (make build) if the plugin is missing";
    const std::string& e = dt.error;
    const auto missing = e.find("libcudnn.so.");
    if (missing != std::string::npos) {
      const std::string soname = e.substr(missing, e.find_first_of(": ", missing) - missing);
      std::vector<std::string> have;
      for (const auto& lib : f.libraries)
        if (lib.family == "cudnn") have.push_back(describe(lib));
      remedy = cat("install the cuDNN providing ", soname, have.empty() ? "" : " (installed: " + join(have, ", ") + ")",
                   ", or add its directory to LD_LIBRARY_PATH");
    } else if (e.find("libcuda.so") != std::string::npos) {
      remedy = "install the NVIDIA driver (its libcuda.so.1), or build detkit against a CPU LibTorch";
    } else if (e.find("libcudart") != std::string::npos || e.find("libcublas") != std::string::npos) {
      remedy = "install the CUDA runtime LibTorch was built with, or add its lib64 directory to LD_LIBRARY_PATH";
    } else if (e.find("libtorch") != std::string::npos || e.find("libc10") != std::string::npos) {
      remedy = "install LibTorch (Debian: apt-get install libtorch-dev) or add the LibTorch lib directory to LD_LIBRARY_PATH";
    } else if (e.find("undefined symbol") != std::string::npos) {
      remedy = "the LibTorch found at run time differs from the one detkit was built with: rebuild detkit against it";
    } else if (e.find("signal") != std::string::npos) {
      remedy = "LibTorch crashed while loading: run 'detkit version' to reproduce, and check its CUDA libraries above";
    }
    add("detkit.torch-unloadable", Severity::error, "detkit's LibTorch plugin cannot be loaded",
        cat("Built with LibTorch ", dt.built_with, ". ", e, ". Commands that train or run models fail until this is fixed; "
            "doctor, check, synth, config and eval keep working."),
        remedy);
  }

  void resources() {
    const auto& s = f.system;
    // Debian's libblas3 installs netlib's reference BLAS in .../blas/; OpenBLAS and BLIS install in
    // .../openblas-*/ and .../blis-*/.
    if (s.blas_library.find("/blas/libblas.so") != std::string::npos)
      add("resources.reference-blas", Severity::warning, "the system BLAS is netlib's reference implementation",
          cat("libblas.so.3 is ", s.blas_library, ". Debian's LibTorch (libtorch-dev) and numpy call it for matrix "
              "products: single-threaded training, 1x1 convolutions and matmul run about 15x slower than with OpenBLAS "
              "(a 1x1 convolution's forward and backward: 119 ms against 8 ms on one core)."),
          "apt-get install libopenblas0-openmp (it becomes the libblas.so.3 alternative; no rebuild needed)");
    if (s.disk_free > 0 && static_cast<double>(s.disk_free) < t.min_disk_free_gib * 1024.0 * 1024 * 1024)
      add("resources.low-disk", Severity::warning, cat("only ", format_bytes(s.disk_free), " free on ", s.disk_path),
          "Checkpoints, caches and run directories need room; a full disk fails a run at its next save.",
          cat("free space or write runs elsewhere (at least ", t.min_disk_free_gib, " GiB)"));
    if (s.memory_limit > 0 && (s.ram_total == 0 || s.memory_limit < s.ram_total)) {
      const bool small = static_cast<double>(s.memory_limit) < t.min_memory_limit_gib * 1024.0 * 1024 * 1024;
      add("resources.memory-limit", small ? Severity::warning : Severity::info,
          cat("this process may use ", format_bytes(s.memory_limit), " of RAM (its cgroup's limit",
              s.ram_total ? cat("; the machine has ", format_bytes(s.ram_total)) : std::string(), ")"),
          cat("The limit is in ", s.memory_limit_file, "; ", format_bytes(s.memory_limit_used),
              " of it is in use. Going over it kills the process without an error message of its own (\"Killed\", "
              "a DataLoader worker \"killed by signal: Killed\"), so it, not the machine's free RAM, bounds the "
              "loader's workers, pinned batches and image cache (detkit's cache: auto and CPU batch: auto plan "
              "within it)."),
          small ? cat("raise the container's memory limit (docker run --memory, a Kubernetes memory limit) to at least ",
                      t.min_memory_limit_gib, " GiB, or train with fewer loader workers (workers=) and cache=none")
                : std::string("nothing to do unless training is killed; then raise the limit or use fewer loader workers"));
    }
    if (s.shm_total > 0 && static_cast<double>(s.shm_total) < t.min_shm_mib * 1024.0 * 1024)
      add("resources.small-shm", Severity::warning, cat("/dev/shm is only ", format_bytes(s.shm_total)),
          "Data-loader workers pass batches through shared memory; too little gives 'Bus error' or killed workers "
          "(Docker's default is 64 MiB).",
          cat("start the container with --shm-size=8g (or --ipc=host), or use fewer loader workers",
              f.gpus.size() >= 2 ? "; NCCL also keeps its buffers between GPUs of this machine there" : ""));
  }

  // Multi-process training: detkit's Gloo, and the NCCL settings that commonly break or slow PyTorch's.
  void distributed() {
    const auto& dt = f.detkit_torch;
    if (dt.loaded && !dt.gloo)
      add("distributed.no-gloo", Severity::info, "this build of detkit cannot train with several processes",
          "It was built without c10d's Gloo backend, so 'detkit train --nproc N' and torchrun jobs stop at the start.",
          "install libgloo-dev (Debian) and rebuild detkit (make build), or build it against a LibTorch 2.x");
    const auto set_to_one = [&](const char* name) {
      const std::string* v = f.env_value(name);
      return v && trim(*v) == "1";
    };
    const bool several_gpus = f.gpus.size() >= 2;
    if (set_to_one("NCCL_P2P_DISABLE"))
      add("distributed.nccl-p2p-disabled", several_gpus ? Severity::warning : Severity::info,
          "NCCL_P2P_DISABLE=1: GPUs exchange gradients through host memory",
          "Peer-to-peer copies (NVLink, PCIe) are off, so every all-reduce between GPUs of this machine goes through "
          "the CPU; multi-GPU training is slower.",
          "unset NCCL_P2P_DISABLE unless NCCL hangs without it here (some consumer GPUs and virtual machines lack P2P)");
    if (set_to_one("NCCL_IB_DISABLE"))
      add("distributed.nccl-ib-disabled", Severity::info, "NCCL_IB_DISABLE=1: NCCL does not use InfiniBand",
          "Jobs across machines exchange gradients over TCP sockets; on one machine it does not matter.",
          "unset NCCL_IB_DISABLE on clusters with InfiniBand or RoCE");
    for (const char* name : {"NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"}) {
      const std::string* v = f.env_value(name);
      if (!v || f.system.net_interfaces.empty()) continue;
      // NCCL: a comma-separated list of name prefixes, exact names when it starts with '=', names to avoid
      // when it starts with '^' (not checked). Gloo: exact names.
      std::string list = trim(*v);
      if (list.empty() || list[0] == '^') continue;
      const bool exact = list[0] == '=' || std::string(name) == "GLOO_SOCKET_IFNAME";
      if (list[0] == '=') list = list.substr(1);
      std::vector<std::string> missing;
      for (std::string item : split(list, ',')) {
        item = trim(item);
        if (item.empty()) continue;
        const bool found = std::any_of(f.system.net_interfaces.begin(), f.system.net_interfaces.end(),
                                       [&](const std::string& i) { return exact ? i == item : starts_with(i, item); });
        if (!found) missing.push_back(item);
      }
      if (!missing.empty())
        add("distributed.no-such-interface", Severity::warning,
            cat(name, " names network interfaces this machine does not have: ", join(missing, ", ")),
            cat(name, "='", *v, "'; the interfaces here are ", join(f.system.net_interfaces, ", "),
                ". The process group cannot bind its sockets: NCCL or Gloo fail with 'no socket interface found' or "
                "'Unable to find address'."),
            cat("set ", name, " to one of: ", join(f.system.net_interfaces, ", "), " (or unset it)"));
    }
    if (several_gpus && !std::any_of(f.libraries.begin(), f.libraries.end(), [](const LibraryFile& l) { return l.family == "nccl"; }))
      add("distributed.no-nccl", Severity::info, cat("no NCCL library found for the ", f.gpus.size(), " GPUs"),
          "PyTorch's multi-GPU training (backend 'nccl') needs libnccl.so.2; pip torch wheels bring their own "
          "(nvidia-nccl-cu12), system LibTorch builds need it installed. detkit's own ranks use Gloo.",
          "install NCCL (Debian/Ubuntu: libnccl2 from NVIDIA's repository) or use a pip torch wheel");
  }

  void smoke() {
    if (!f.smoke_requested) return;
    if (f.smoke.empty()) {
      add("smoke.none", Severity::info, "--smoke: no device to test", "No CUDA device is visible and the CPU test did not run.", "");
      return;
    }
    for (const auto& s : f.smoke) {
      const std::string dev = cat(s.device, s.device_name.empty() ? "" : " (" + s.device_name + ")");
      if (s.crashed) {
        add("smoke.crashed", Severity::error, cat("the smoke test on ", dev, " crashed"), s.crash,
            "run 'detkit doctor --smoke -v' again to see the child's output; a crash inside CUDA usually means a driver "
            "or library mismatch listed above");
        continue;
      }
      if (!s.failed_stage.empty()) {
        const std::string& e = s.error;
        std::string id = "smoke.failed", remedy = "see the error; the findings above name the likely mismatch";
        if (e.find("no kernel image") != std::string::npos) {
          id = "smoke.no-kernel-image";
          remedy = "use a LibTorch built for this GPU's architecture (see arch.no-kernel-image)";
        } else if (e.find("CUDNN_STATUS") != std::string::npos || to_lower(e).find("cudnn") != std::string::npos) {
          id = "smoke.cudnn";
          remedy = "install the cuDNN LibTorch was built with and make sure the loader finds it first";
        } else if (e.find("CUBLAS_STATUS") != std::string::npos || to_lower(e).find("cublas") != std::string::npos) {
          id = "smoke.cublas";
          remedy = "cuBLAS failed to initialise: free GPU memory (other processes) or fix the CUDA runtime/driver mismatch";
        } else if (to_lower(e).find("out of memory") != std::string::npos) {
          id = "smoke.out-of-memory";
          remedy = "the GPU is full: stop the processes holding it or pick another GPU with CUDA_VISIBLE_DEVICES";
        }
        add(id, Severity::error, cat("the smoke test on ", dev, " failed at ", s.failed_stage), e, remedy);
        continue;
      }
      if (s.max_abs_diff > s.tolerance)
        add("smoke.amp-mismatch", Severity::error,
            cat("autocast (", s.autocast_dtype, ") and fp32 disagree on ", dev),
            cat("max |fp32 - autocast| = ", num(s.max_abs_diff), " over a small convolution, allowed ", num(s.tolerance), "."),
            "train without mixed precision (amp=false) on this device and report the driver and library versions");
      else
        add("smoke.ok", Severity::info, cat("smoke test passed on ", dev),
            cat("allocation, convolution forward and backward in fp32 and under autocast (", s.autocast_dtype,
                "): max difference ", num(s.max_abs_diff), " (allowed ", num(s.tolerance), "), ", num(s.seconds), " s."),
            "");
    }
  }
};

}  // namespace

std::vector<Finding> evaluate_rules(const Facts& facts, const CompatTables& tables) {
  Rules r{facts, tables, {}};
  r.no_driver();
  r.gpu_without_driver();
  r.nvml_mismatch();
  r.libcuda_missing();
  r.open_module_required();
  r.detkit_plugin();
  r.driver_too_old();
  r.arch_coverage();
  r.cudnn_fit();
  r.tensorflow_tested();
  r.cpu_only_builds();
  r.shadowed_libraries();
  r.visible_devices();
  r.busy_gpus();
  r.environment_variables();
  r.toolkit_targets();
  r.resources();
  r.distributed();
  r.smoke();
  // Without a GPU or driver, missing GPU libraries cannot break anything yet: the frameworks run on the CPU.
  // They stay in the report (they will matter once a GPU is added) as warnings, so a CPU machine passes.
  if (!r.has_gpu && !facts.driver.nvml_loaded)
    for (auto& f : r.out)
      if (f.severity == Severity::error &&
          (starts_with(f.id, "cudnn.") || f.id == "tensorflow.cuda-missing" || starts_with(f.id, "arch."))) {
        f.severity = Severity::warning;
        f.detail += " No NVIDIA GPU is in use here, so this matters only once one is.";
      }
  std::stable_sort(r.out.begin(), r.out.end(),
                   [](const Finding& a, const Finding& b) { return static_cast<int>(a.severity) > static_cast<int>(b.severity); });
  return r.out;
}

}  // namespace detkit::diag
