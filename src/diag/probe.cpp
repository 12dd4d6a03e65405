#include "diag/probe.h"

#include <dlfcn.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "core/memory.h"
#include "core/text.h"
#include "diag/tables.h"
#include "diag/version.h"

extern char** environ;

namespace detkit::diag {

namespace fs = std::filesystem;

const std::vector<std::string>& relevant_env_names() {
  static const std::vector<std::string> names{
      "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "CUDA_HOME", "CUDA_PATH", "CUDNN_PATH",
      "LD_LIBRARY_PATH", "LD_PRELOAD", "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_NO_CUDA_MEMORY_CACHING",
      "CUDA_LAUNCH_BLOCKING", "CUDA_MODULE_LOADING", "TORCH_CUDA_ARCH_LIST", "TF_FORCE_GPU_ALLOW_GROWTH",
      "TF_GPU_ALLOCATOR", "TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "XLA_FLAGS", "NCCL_DEBUG",
      "NCCL_SOCKET_IFNAME", "NCCL_IB_DISABLE", "NCCL_P2P_DISABLE", "NCCL_SHM_DISABLE", "GLOO_SOCKET_IFNAME",
      "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "OMP_NUM_THREADS", "DETKIT_THREADS",
      "DETKIT_TORCH_PLUGIN", "VIRTUAL_ENV", "CONDA_PREFIX"};
  return names;
}

const std::string* Facts::env_value(const std::string& name) const {
  for (const auto& [k, v] : env)
    if (k == name) return &v;
  return nullptr;
}

namespace {

// ---- reading the inspected system ------------------------------------------------------------------

struct System {
  fs::path root;
  std::map<std::string, std::string> env;

  // The host path of a path on the inspected system.
  fs::path host(const std::string& logical) const {
    if (logical.empty()) return {};
    const fs::path p(logical);
    return p.is_absolute() ? root / p.relative_path() : p;
  }
  // The inspected system's path of a host path under root.
  std::string logical(const fs::path& host_path) const {
    if (root == "/" || root.empty()) return host_path.lexically_normal().string();
    const fs::path rel = host_path.lexically_normal().lexically_relative(root.lexically_normal());
    if (rel.empty() || starts_with(rel.string(), "..")) return host_path.string();
    return ("/" / rel).lexically_normal().string();
  }
  std::string read(const std::string& logical_path) const { return read_host(host(logical_path)); }
  static std::string read_host(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return "";
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }
  bool exists(const std::string& logical_path) const {
    std::error_code ec;
    return fs::exists(host(logical_path), ec);
  }
  std::string getenv(const std::string& name) const {
    const auto it = env.find(name);
    return it == env.end() ? "" : it->second;
  }
};

std::vector<fs::path> list_dir(const fs::path& dir) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) entries.push_back(it->path());
  std::sort(entries.begin(), entries.end());
  return entries;
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// Matches a file name against a pattern with '*' wildcards (ld.so.conf includes, /usr/local/cuda-*).
bool glob_match(const std::string& pattern, const std::string& name) {
  std::size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == name[n] || pattern[p] == '?')) {
      ++p, ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, mark = n;
    } else if (star != std::string::npos) {
      p = star + 1, n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// ---- system ------------------------------------------------------------------------------------------

SystemFacts probe_system(const System& sys, const fs::path& disk_path) {
  SystemFacts s;
  for (const auto& line : split(sys.read("/etc/os-release"), '\n'))
    if (starts_with(line, "PRETTY_NAME=")) {
      s.os = line.substr(12);
      s.os.erase(std::remove(s.os.begin(), s.os.end(), '"'), s.os.end());
    }
  s.kernel = trim(sys.read("/proc/sys/kernel/osrelease"));
  for (const auto& line : split(sys.read("/proc/cpuinfo"), '\n')) {
    if (starts_with(line, "processor")) ++s.cpu_count;
    if (s.cpu_model.empty() && starts_with(line, "model name")) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) s.cpu_model = trim(line.substr(colon + 1));
    }
  }
  const std::string meminfo = sys.read("/proc/meminfo");
  s.ram_total = meminfo_bytes(meminfo, "MemTotal");
  s.ram_available = meminfo_bytes(meminfo, "MemAvailable");
  const CgroupMemory limit = cgroup_memory(sys.read("/proc/self/cgroup"), [&](const std::string& path) { return sys.read(path); });
  s.memory_limit = limit.limit;
  s.memory_limit_used = limit.used;
  s.memory_limit_file = limit.file;
  std::error_code ec;
  const fs::path disk = fs::absolute(disk_path, ec).lexically_normal();
  s.disk_path = disk.string();
  if (s.disk_path.size() > 1 && s.disk_path.back() == '/') s.disk_path.pop_back();
  struct statvfs st {};
  if (::statvfs(disk.c_str(), &st) == 0) s.disk_free = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  // /dev/shm cannot be faked by a directory tree (its size is the mount's); only the real root reports it.
  if (sys.root == "/" && ::statvfs("/dev/shm", &st) == 0) s.shm_total = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
  const std::string cgroup = sys.read("/proc/1/cgroup");
  s.container = sys.exists("/.dockerenv") || sys.exists("/run/.containerenv") ||
                cgroup.find("docker") != std::string::npos || cgroup.find("kubepods") != std::string::npos ||
                cgroup.find("containerd") != std::string::npos;
  s.wsl = to_lower(sys.read("/proc/version")).find("microsoft") != std::string::npos;
  for (const auto& entry : list_dir(sys.host("/sys/class/net"))) s.net_interfaces.push_back(entry.filename().string());
  // libblas.so.3 through its symbolic links (/etc/alternatives), each absolute target read inside root.
  for (const char* dir : {"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"}) {
    std::string logical = std::string(dir) + "/libblas.so.3";
    if (!sys.exists(logical)) continue;
    for (int hop = 0; hop < 16; ++hop) {
      std::error_code link_error;
      const fs::path target = fs::read_symlink(sys.host(logical), link_error);
      if (link_error) break;
      logical = (target.is_absolute() ? target : fs::path(logical).parent_path() / target).lexically_normal().string();
    }
    s.blas_library = logical;
    break;
  }
  std::sort(s.net_interfaces.begin(), s.net_interfaces.end());
  return s;
}

// ---- driver: /proc, /sys, NVML and libcuda through dlopen --------------------------------------------

// NVML's C ABI, declared here so that no NVIDIA header is needed to build detkit.
using NvmlReturn = int;
constexpr NvmlReturn kNvmlSuccess = 0;
constexpr NvmlReturn kNvmlLibRmVersionMismatch = 18;
struct NvmlMemory {
  unsigned long long total, free, used;
};
struct NvmlProcessInfoV1 {  // nvmlProcessInfo_v1_t, the layout of the unversioned processes call
  unsigned int pid;
  unsigned long long used_gpu_memory;
};

template <class Fn>
Fn symbol(void* handle, const char* name) {
  return reinterpret_cast<Fn>(::dlsym(handle, name));
}

std::string dl_error(const std::string& fallback) {
  const char* e = ::dlerror();
  return e ? std::string(e) : fallback;
}

void probe_nvml(const System& sys, const std::string& library, Facts& facts) {
  DriverFacts& d = facts.driver;
  d.nvml_library = library;
  void* h = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    d.nvml_error = dl_error("cannot open " + library);
    return;
  }
  // The library stays loaded for the process lifetime: unloading driver libraries is not safe.
  auto init = symbol<NvmlReturn (*)()>(h, "nvmlInit_v2");
  auto error_string = symbol<const char* (*)(NvmlReturn)>(h, "nvmlErrorString");
  if (!init) {
    d.nvml_error = library + " has no nvmlInit_v2 (not an NVML library, or older than driver 325)";
    return;
  }
  const NvmlReturn r = init();
  if (r != kNvmlSuccess) {
    d.nvml_version_mismatch = r == kNvmlLibRmVersionMismatch;
    d.nvml_error = cat("nvmlInit failed: ", error_string ? error_string(r) : "", " (NVML error ", r, ")");
    return;
  }
  d.nvml_loaded = true;
  char buffer[96] = {};
  if (auto f = symbol<NvmlReturn (*)(char*, unsigned)>(h, "nvmlSystemGetDriverVersion"); f && f(buffer, 80) == 0)
    d.nvml_driver_version = buffer;
  int cuda = 0;
  if (auto f = symbol<NvmlReturn (*)(int*)>(h, "nvmlSystemGetCudaDriverVersion_v2"); f && f(&cuda) == 0 && cuda > 0)
    d.cuda_driver_api = cuda;
  unsigned count = 0;
  auto get_count = symbol<NvmlReturn (*)(unsigned*)>(h, "nvmlDeviceGetCount_v2");
  auto get_handle = symbol<NvmlReturn (*)(unsigned, void**)>(h, "nvmlDeviceGetHandleByIndex_v2");
  if (get_count && get_handle && get_count(&count) == 0) {
    auto get_name = symbol<NvmlReturn (*)(void*, char*, unsigned)>(h, "nvmlDeviceGetName");
    auto get_cc = symbol<NvmlReturn (*)(void*, int*, int*)>(h, "nvmlDeviceGetCudaComputeCapability");
    auto get_memory = symbol<NvmlReturn (*)(void*, NvmlMemory*)>(h, "nvmlDeviceGetMemoryInfo");
    auto get_processes =
        symbol<NvmlReturn (*)(void*, unsigned*, NvmlProcessInfoV1*)>(h, "nvmlDeviceGetComputeRunningProcesses");
    for (unsigned i = 0; i < count && i < 64; ++i) {
      void* dev = nullptr;
      if (get_handle(i, &dev) != 0) continue;
      GpuFacts g;
      g.index = static_cast<int>(i);
      char name[128] = {};
      if (get_name && get_name(dev, name, 96) == 0) g.name = name;
      if (get_cc) get_cc(dev, &g.cc_major, &g.cc_minor);
      NvmlMemory mem{};
      if (get_memory && get_memory(dev, &mem) == 0) {
        g.memory_total = mem.total;
        g.memory_free = mem.free;
      }
      NvmlProcessInfoV1 procs[128] = {};
      unsigned n = 128;
      if (get_processes && get_processes(dev, &n, procs) == 0)
        for (unsigned p = 0; p < n && p < 128; ++p) {
          GpuProcess proc{procs[p].pid, trim(sys.read(cat("/proc/", procs[p].pid, "/comm"))), procs[p].used_gpu_memory};
          g.processes.push_back(proc);
        }
      facts.gpus.push_back(g);
    }
  }
  if (auto shutdown = symbol<NvmlReturn (*)()>(h, "nvmlShutdown")) shutdown();
}

void probe_libcuda(const std::string& library, DriverFacts& d) {
  d.libcuda_library = library;
  void* h = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    d.libcuda_error = dl_error("cannot open " + library);
    return;
  }
  auto get_version = symbol<int (*)(int*)>(h, "cuDriverGetVersion");
  if (!get_version) {
    d.libcuda_error = library + " has no cuDriverGetVersion";
    return;
  }
  int v = 0;
  const int r = get_version(&v);
  if (r != 0 || v <= 0) {
    d.libcuda_error = cat("cuDriverGetVersion failed (CUresult ", r, ")");
    return;
  }
  // libcuda answers for the driver actually loaded; prefer it over NVML's copy of the same number.
  d.cuda_driver_api = v;
}

void probe_driver(const System& sys, const ProbeOptions& options, Facts& facts) {
  DriverFacts& d = facts.driver;
  const std::string proc = sys.read("/proc/driver/nvidia/version");
  d.kernel_module = sys.exists("/proc/driver/nvidia/version");
  d.kernel_version = parse_proc_driver_version(proc);
  d.open_kernel_module = proc.find("Open Kernel Module") != std::string::npos;
  for (const auto& dev : list_dir(sys.host("/sys/bus/pci/devices"))) {
    const std::string vendor = trim(System::read_host(dev / "vendor"));
    const std::string cls = trim(System::read_host(dev / "class"));
    // 0x10de is NVIDIA; class 0x03xxxx is a display controller (VGA or 3D), which excludes audio and bridges.
    if (vendor == "0x10de" && starts_with(cls, "0x03")) d.pci_gpus.push_back(dev.filename().string());
  }
  // An empty name means "do not open" (dlopen("") would return this program itself).
  if (options.nvml_library.empty()) d.nvml_error = "not opened (inspecting another system tree)";
  else probe_nvml(sys, options.nvml_library, facts);
  if (options.cuda_library.empty()) d.libcuda_error = "";
  else probe_libcuda(options.cuda_library, d);
}

// ---- libraries on and off the loader path -----------------------------------------------------------

std::vector<std::string> ld_so_conf_dirs(const System& sys, const std::string& file, int depth,
                                         std::set<std::string>& seen) {
  std::vector<std::string> dirs;
  if (depth > 8 || !seen.insert(file).second) return dirs;
  for (std::string line : split(sys.read(file), '\n')) {
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    if (starts_with(line, "include ")) {
      std::string pattern = trim(line.substr(8));
      if (!starts_with(pattern, "/")) pattern = fs::path(file).parent_path().string() + "/" + pattern;
      const fs::path p(pattern);
      for (const auto& entry : list_dir(sys.host(p.parent_path().string())))
        if (glob_match(p.filename().string(), entry.filename().string())) {
          const auto more = ld_so_conf_dirs(sys, (p.parent_path() / entry.filename()).string(), depth + 1, seen);
          dirs.insert(dirs.end(), more.begin(), more.end());
        }
    } else if (starts_with(line, "/")) {
      dirs.push_back(line);
    }
  }
  return dirs;
}

struct SearchDir {
  std::string dir;
  std::string origin;
  bool on_loader_path;
};

std::vector<SearchDir> loader_search_order(const System& sys, const ProbeOptions& options) {
  std::vector<SearchDir> order;
  if (options.loader_dirs) {
    for (const auto& d : *options.loader_dirs) order.push_back({d, "loader path", true});
  } else {
    for (const auto& d : split(sys.getenv("LD_LIBRARY_PATH"), ':'))
      if (!d.empty()) order.push_back({d, "LD_LIBRARY_PATH", true});
    std::set<std::string> seen;
    for (const auto& d : ld_so_conf_dirs(sys, "/etc/ld.so.conf", 0, seen)) order.push_back({d, "ld.so.conf", true});
    for (const char* d : {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"})
      order.push_back({d, "system default", true});
  }
  return order;
}

std::string canonical_key(const fs::path& host_path) {
  std::error_code ec;
  const fs::path c = fs::weakly_canonical(host_path, ec);
  return (ec ? host_path : c).lexically_normal().string();
}

}  // namespace

std::pair<std::string, std::string> classify_library_name(const std::string& file_name) {
  static const std::regex pattern(R"(^lib(cudart|cudnn|cublas|nccl|cuda|nvidia-ml)\.so\.([0-9]+(\.[0-9]+)*)$)");
  std::smatch m;
  if (!std::regex_match(file_name, m, pattern)) return {};
  return {m[1].str(), m[2].str()};
}

namespace {

// The tracked libraries in one directory: one entry per (family, major).
std::vector<LibraryFile> scan_library_dir(const System& sys, const SearchDir& where, int rank) {
  struct Group {
    std::string soname, version;
  };
  std::map<std::pair<std::string, int>, Group> groups;
  for (const auto& entry : list_dir(sys.host(where.dir))) {
    std::vector<std::string> names{entry.filename().string()};
    std::error_code ec;
    if (fs::is_symlink(entry, ec)) names.push_back(fs::read_symlink(entry, ec).filename().string());
    const auto [family, own_version] = classify_library_name(names[0]);
    if (family.empty()) continue;
    // The driver's libraries are named libcuda.so.1 / libcuda.so.535.104.05: one group whatever the number.
    const bool driver_lib = family == "cuda" || family == "nvidia-ml";
    const int major = driver_lib ? 0 : version_major(own_version);
    Group& g = groups[{family, major}];
    if (g.soname.empty() || names[0].size() < g.soname.size()) g.soname = names[0];
    for (const auto& n : names) {
      const auto [fam, v] = classify_library_name(n);
      if (fam != family || (!driver_lib && version_major(v) != major)) continue;
      if (driver_lib && version_major(v) <= 1) continue;  // ".so.1" is the soname, not the driver's version
      if (version_numbers(v).size() > version_numbers(g.version).size() ||
          (version_numbers(v).size() == version_numbers(g.version).size() && compare_versions(v, g.version) > 0))
        g.version = v;
    }
  }
  std::vector<LibraryFile> out;
  for (const auto& [key, g] : groups) {
    LibraryFile lib;
    lib.family = key.first;
    lib.soname = g.soname;
    lib.version = g.version.empty() ? classify_library_name(g.soname).second : g.version;
    if ((lib.family == "cuda" || lib.family == "nvidia-ml") && g.version.empty()) lib.version = "";
    lib.dir = where.dir;
    lib.origin = where.origin;
    lib.on_loader_path = where.on_loader_path;
    lib.loader_rank = where.on_loader_path ? rank : -1;
    out.push_back(lib);
  }
  return out;
}

std::string toolkit_version(const System& sys, const std::string& dir) {
  const std::string json = sys.read(dir + "/version.json");
  // version.json: {"cuda": {"name": "CUDA SDK", "version": "12.4.1"}, ...}
  static const std::regex json_version(R"re("cuda"\s*:\s*\{[^}]*"version"\s*:\s*"([0-9.]+)")re");
  std::smatch m;
  if (std::regex_search(json, m, json_version)) return m[1].str();
  const std::string txt = sys.read(dir + "/version.txt");  // "CUDA Version 10.0.130"
  static const std::regex txt_version(R"(CUDA Version ([0-9.]+))");
  if (std::regex_search(txt, m, txt_version)) return m[1].str();
  // Toolkits assembled from NVIDIA's wheels carry dist-info directories: nvidia_cuda_runtime-13.0.96.dist-info.
  for (const auto& entry : list_dir(sys.host(dir + "/dist-info"))) {
    const std::string name = entry.filename().string();
    if (starts_with(name, "nvidia_cuda_runtime-") && ends_with(name, ".dist-info"))
      return name.substr(20, name.size() - 20 - 10);
  }
  static const std::regex dir_version(R"(cuda-([0-9]+\.[0-9]+))");
  if (std::regex_search(dir, m, dir_version)) return m[1].str();
  // The symlink /usr/local/cuda -> cuda-13.0 names the version in its target.
  std::error_code ec;
  const fs::path target = fs::read_symlink(sys.host(dir), ec);
  const std::string target_text = target.string();
  if (!ec && std::regex_search(target_text, m, dir_version)) return m[1].str();
  return "";
}

void probe_toolkits(const System& sys, Facts& facts, std::vector<SearchDir>& off_path) {
  std::vector<std::pair<std::string, std::string>> candidates;
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (!sys.getenv(var).empty()) candidates.push_back({sys.getenv(var), var});
  if (sys.exists("/usr/local/cuda")) candidates.push_back({"/usr/local/cuda", "/usr/local"});
  for (const auto& entry : list_dir(sys.host("/usr/local")))
    if (glob_match("cuda-*", entry.filename().string())) candidates.push_back({"/usr/local/" + entry.filename().string(), "/usr/local"});
  std::set<std::string> seen;
  for (const auto& [dir, origin] : candidates) {
    if (!seen.insert(canonical_key(sys.host(dir))).second) continue;
    CudaToolkit t{dir, toolkit_version(sys, dir), origin, is_dir(sys.host(dir))};
    if (!t.exists) t.version = "";
    facts.toolkits.push_back(t);
    for (const char* sub : {"/lib64", "/lib", "/targets/x86_64-linux/lib"})
      off_path.push_back({dir + sub, origin == "/usr/local" ? dir : origin, false});
  }
}

// ---- Python frameworks ------------------------------------------------------------------------------

std::string quoted_value(const std::string& line) {
  const auto q = line.find_first_of("'\"");
  if (q == std::string::npos) return "";
  const auto end = line.find(line[q], q + 1);
  return end == std::string::npos ? "" : line.substr(q + 1, end - q - 1);
}

// The value assigned to `name` in a generated Python file: `name = '...'`, `name: Optional[str] = '...'`.
std::optional<std::string> python_assignment(const std::string& text, const std::string& name) {
  for (const auto& raw : split(text, '\n')) {
    const std::string line = trim(raw);
    if (!starts_with(line, name)) continue;
    const std::string rest = line.substr(name.size());
    if (rest.empty() || (rest[0] != ' ' && rest[0] != '=' && rest[0] != ':')) continue;
    const auto eq = rest.find('=');
    if (eq == std::string::npos) continue;
    const std::string value = trim(rest.substr(eq + 1));
    if (value == "None") return std::string();
    return quoted_value(value);
  }
  return std::nullopt;
}

}  // namespace

std::string parse_proc_driver_version(const std::string& text) {
  const std::string line = text.substr(0, text.find('\n'));
  const auto at = line.find("Kernel Module");
  if (at == std::string::npos) return "";
  std::istringstream words(line.substr(at + 13));
  std::string w;
  while (words >> w)
    if (!w.empty() && std::isdigit(static_cast<unsigned char>(w[0])) && w.find('.') != std::string::npos) return w;
  return "";
}

FrameworkInstall parse_torch_version_py(const std::string& text) {
  FrameworkInstall f;
  f.framework = "torch";
  f.package = "torch";
  f.version = python_assignment(text, "__version__").value_or("");
  f.cuda_version = python_assignment(text, "cuda").value_or("");
  f.cuda_build = !f.cuda_version.empty();
  return f;
}

FrameworkInstall parse_tf_build_info(const std::string& text) {
  FrameworkInstall f;
  f.framework = "tensorflow";
  f.package = "tensorflow";
  // Entries look like ('cuda_version', '12.5.1'), ('is_cuda_build', True), ('cuda_compute_capabilities',
  // ['sm_60', 'compute_90']); older files assign module-level names (cuda_version_number = '9.0').
  auto value_of = [&](const std::string& key) -> std::string {
    for (const std::string& pattern : {"'" + key + "'", "\"" + key + "\""}) {
      const auto at = text.find(pattern);
      if (at == std::string::npos) continue;
      auto rest = text.substr(at + pattern.size(), 400);
      rest = rest.substr(rest.find_first_not_of(" ,:\t\n"));
      return rest.substr(0, rest.find_first_of(")}\n"));
    }
    if (const auto v = python_assignment(text, key)) return "'" + *v + "'";
    return "";
  };
  f.cuda_version = quoted_value(value_of("cuda_version"));
  if (f.cuda_version.empty()) f.cuda_version = quoted_value(value_of("cuda_version_number"));
  f.cudnn_version = quoted_value(value_of("cudnn_version"));
  if (f.cudnn_version.empty()) f.cudnn_version = quoted_value(value_of("cudnn_version_number"));
  const std::string is_cuda = value_of("is_cuda_build");
  f.cuda_build = starts_with(trim(is_cuda), "True") || (is_cuda.empty() && !f.cuda_version.empty());
  std::string caps = value_of("cuda_compute_capabilities");
  caps = caps.substr(0, caps.find(']'));
  static const std::regex arch(R"((sm|compute)_[0-9]+[a-z]?)");
  for (std::sregex_iterator it(caps.begin(), caps.end(), arch), end; it != end; ++it) f.archs.push_back(it->str());
  if (!f.archs.empty()) f.archs_source = "build_info.py";
  return f;
}

namespace {

// The version in a dist-info directory name: "nvidia_cudnn_cu12-9.1.0.70.dist-info" -> "9.1.0.70".
std::string dist_info_version(const std::string& dir_name) {
  const auto dash = dir_name.find('-');
  const auto end = dir_name.rfind(".dist-info");
  if (dash == std::string::npos || end == std::string::npos || end < dash) return "";
  return dir_name.substr(dash + 1, end - dash - 1);
}

std::vector<FrameworkInstall> frameworks_in(const System& sys, const std::string& site, const std::string& interpreters) {
  std::vector<FrameworkInstall> found;
  const fs::path host_site = sys.host(site);
  std::string pip_cudnn, pip_cudart, tf_package, tf_version;
  for (const auto& entry : list_dir(host_site)) {
    const std::string name = entry.filename().string();
    if (!ends_with(name, ".dist-info")) continue;
    if (starts_with(name, "nvidia_cudnn_cu")) pip_cudnn = dist_info_version(name);
    if (starts_with(name, "nvidia_cuda_runtime_cu")) pip_cudart = dist_info_version(name);
    for (const char* pkg : {"tensorflow-", "tensorflow_cpu-", "tensorflow_gpu-", "tf_nightly-"})
      if (starts_with(name, pkg)) {
        tf_package = std::string(pkg).substr(0, std::string(pkg).size() - 1);
        std::replace(tf_package.begin(), tf_package.end(), '_', '-');
        tf_version = dist_info_version(name);
        for (const auto& line : split(System::read_host(entry / "METADATA"), '\n'))
          if (starts_with(line, "Version:")) tf_version = trim(line.substr(8));
      }
  }
  const CompatTables& tables = compat_tables();
  if (fs::exists(host_site / "torch" / "version.py")) {
    FrameworkInstall f = parse_torch_version_py(System::read_host(host_site / "torch" / "version.py"));
    if (f.cuda_build) {
      f.cudnn_version = tables.torch_wheel_cudnn(f.version, f.cuda_version);
      f.archs = tables.torch_wheel_archs(f.version, f.cuda_version);
      if (!f.archs.empty())
        f.archs_source = cat("official cu", join(split(version_prefix(f.cuda_version, 2), '.'), ""), " wheel");
    }
    f.site_dir = site;
    f.interpreters = interpreters;
    f.pip_cudnn = pip_cudnn;
    f.pip_cuda_runtime = pip_cudart;
    found.push_back(f);
  }
  const fs::path build_info = host_site / "tensorflow" / "python" / "platform" / "build_info.py";
  if (fs::exists(build_info) || !tf_version.empty()) {
    FrameworkInstall f = parse_tf_build_info(System::read_host(build_info));
    if (!tf_package.empty()) f.package = tf_package;
    f.version = tf_version;
    // build_info.py names only cuDNN's major ("8"); the tested table gives the minor it was built with.
    if (const auto tested = tables.tensorflow(f.version);
        tested && version_numbers(f.cudnn_version).size() == 1 && version_major(tested->cudnn) == version_major(f.cudnn_version))
      f.cudnn_version = tested->cudnn;
    if (f.cuda_build && f.archs.empty()) {
      f.archs = tables.tensorflow_wheel_archs(f.cuda_version);
      if (!f.archs.empty()) f.archs_source = cat("official TensorFlow wheels for CUDA ", version_major(f.cuda_version), " (uncertain)");
    }
    f.site_dir = site;
    f.interpreters = interpreters;
    f.pip_cudnn = pip_cudnn;
    f.pip_cuda_runtime = pip_cudart;
    found.push_back(f);
  }
  return found;
}

// site-packages directories of the python3 interpreters on PATH, each with the interpreters using it.
std::vector<std::pair<std::string, std::string>> discover_site_dirs(const System& sys) {
  std::vector<std::pair<std::string, std::string>> sites;  // (site, interpreter), possibly repeated
  auto add_versions_of_prefix = [&](const std::string& prefix, const std::string& interpreter,
                                    const std::string& only_version) {
    for (const auto& lib : {prefix + "/lib", prefix + "/local/lib"})
      for (const auto& entry : list_dir(sys.host(lib))) {
        const std::string name = entry.filename().string();
        if (!starts_with(name, "python3")) continue;
        if (!only_version.empty() && name != "python" + only_version && name != "python3") continue;
        for (const char* sub : {"site-packages", "dist-packages"})
          if (is_dir(entry / sub)) sites.push_back({lib + "/" + name + "/" + sub, interpreter});
      }
  };
  static const std::regex python_name(R"(^python3(\.[0-9]+)?$)");
  std::set<std::string> seen_interpreters;
  for (const auto& dir : split(sys.getenv("PATH"), ':')) {
    if (dir.empty() || !starts_with(dir, "/")) continue;
    for (const auto& entry : list_dir(sys.host(dir))) {
      const std::string name = entry.filename().string();
      if (!std::regex_match(name, python_name)) continue;
      const std::string interpreter = dir + "/" + name;
      // pyenv's shims are scripts that pick a version at run time: every installed version may be used.
      if (fs::path(dir).filename() == "shims" && is_dir(sys.host(fs::path(dir).parent_path().string() + "/versions"))) {
        for (const auto& version : list_dir(sys.host(fs::path(dir).parent_path().string() + "/versions")))
          add_versions_of_prefix(sys.logical(version), interpreter, "");
        continue;
      }
      const fs::path bin = fs::path(dir);
      // A virtualenv: bin/python3 beside pyvenv.cfg, whatever the symlink points to (checked before the
      // real path, which is the base interpreter's and must not hide the base's own site-packages).
      if (sys.exists(bin.parent_path().string() + "/pyvenv.cfg")) {
        add_versions_of_prefix(bin.parent_path().string(), interpreter, "");
        continue;
      }
      const std::string real = sys.logical(fs::path(canonical_key(entry)));
      if (!seen_interpreters.insert(real).second) continue;
      const std::string real_name = fs::path(real).filename().string();
      const std::string version = starts_with(real_name, "python3.") ? real_name.substr(6) : "";
      const std::string prefix = fs::path(real).parent_path().parent_path().string();
      add_versions_of_prefix(prefix, interpreter, version);
      if (prefix == "/usr") {  // Debian: /usr/lib/python3/dist-packages and /usr/local/lib/python3.X/dist-packages
        if (is_dir(sys.host("/usr/lib/python3/dist-packages"))) sites.push_back({"/usr/lib/python3/dist-packages", interpreter});
        add_versions_of_prefix("/usr/local", interpreter, version);
      }
      const std::string home = sys.getenv("HOME");
      if (!home.empty()) add_versions_of_prefix(home + "/.local", interpreter, version);
    }
  }
  return sites;
}

}  // namespace

Facts gather_facts(const ProbeOptions& options) {
  System sys;
  sys.root = options.root;
  if (options.env) {
    sys.env = *options.env;
  } else {
    for (char** e = environ; e && *e; ++e) {
      const std::string kv = *e;
      const auto eq = kv.find('=');
      if (eq != std::string::npos) sys.env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  }
  Facts facts;
  facts.system = probe_system(sys, options.disk_path);
  for (const auto& name : relevant_env_names())
    if (sys.env.count(name)) facts.env.push_back({name, sys.env.at(name)});
  probe_driver(sys, options, facts);

  // Loader path, then the places libraries sit off it (toolkits, pip wheels).
  std::vector<SearchDir> order = loader_search_order(sys, options);
  std::vector<SearchDir> off_path;
  probe_toolkits(sys, facts, off_path);

  std::vector<std::pair<std::string, std::string>> sites;
  for (const auto& s : options.python_site_dirs) sites.push_back({s, ""});
  if (options.python_site_dirs.empty() && options.discover_python) sites = discover_site_dirs(sys);
  std::vector<std::string> site_order;
  std::map<std::string, std::vector<std::string>> interpreters_of;
  std::set<std::string> site_keys;
  std::map<std::string, std::string> site_by_key;
  for (const auto& [site, interpreter] : sites) {
    const std::string key = canonical_key(sys.host(site));
    if (site_keys.insert(key).second) {
      site_order.push_back(site);
      site_by_key[key] = site;
    }
    auto& list = interpreters_of[site_by_key[key]];
    if (!interpreter.empty() && std::find(list.begin(), list.end(), interpreter) == list.end()) list.push_back(interpreter);
  }
  for (const auto& site : site_order) {
    facts.python_site_dirs.push_back(site);
    for (auto& f : frameworks_in(sys, site, join(interpreters_of[site], ", "))) facts.frameworks.push_back(f);
    // pip NVIDIA wheels (nvidia/cudnn/lib, nvidia/cu13/lib) and libraries bundled in torch/lib.
    for (const auto& pkg : list_dir(sys.host(site + "/nvidia")))
      if (is_dir(pkg / "lib")) off_path.push_back({sys.logical(pkg / "lib"), "site-packages: " + site, false});
    if (is_dir(sys.host(site + "/torch/lib"))) off_path.push_back({site + "/torch/lib", "site-packages: " + site, false});
  }

  std::set<std::string> scanned;
  int rank = 0;
  for (const auto& where : order) {
    if (!scanned.insert(canonical_key(sys.host(where.dir))).second) continue;
    facts.loader_dirs.push_back(where.dir);
    for (auto& lib : scan_library_dir(sys, where, rank)) facts.libraries.push_back(lib);
    ++rank;
  }
  for (const auto& where : off_path) {
    if (!scanned.insert(canonical_key(sys.host(where.dir))).second) continue;
    for (auto& lib : scan_library_dir(sys, where, -1)) facts.libraries.push_back(lib);
  }

  if (options.probe_cudnn) {
    std::set<std::string> probed;
    for (const auto& lib : facts.libraries) {
      if (lib.family != "cudnn" || !lib.on_loader_path) continue;
      const fs::path host_path = sys.host(lib.dir) / lib.soname;
      if (!probed.insert(canonical_key(host_path)).second || probed.size() > 6) continue;
      CudnnProbe probe;
      probe.path = lib.dir + "/" + lib.soname;
      void* h = ::dlopen(host_path.c_str(), RTLD_LAZY | RTLD_LOCAL);
      if (!h) {
        probe.error = dl_error("cannot open " + probe.path);
      } else if (auto get = symbol<std::size_t (*)()>(h, "cudnnGetVersion")) {
        probe.version = cudnn_version_from_int(static_cast<long>(get()));
        if (probe.version.empty()) probe.error = "cudnnGetVersion returned 0";
      } else {
        probe.error = "no cudnnGetVersion in " + probe.path;
      }
      facts.cudnn_probes.push_back(probe);
      // The library answers more precisely than a file name like libcudnn.so.9.
      for (auto& l : facts.libraries)
        if (l.family == "cudnn" && l.dir == lib.dir && l.soname == lib.soname &&
            version_numbers(probe.version).size() > version_numbers(l.version).size())
          l.version = probe.version;
    }
  }
  return facts;
}

}  // namespace detkit::diag
