// A stand-in for libnvidia-ml.so.1 with the few entry points `detkit doctor` calls, so the doctor's
// NVML path runs on machines without an NVIDIA driver. What it reports is read from the environment
// variable DETKIT_FAKE_NVML at every call (so one loaded copy serves many tests):
//   init=ok|mismatch|no-driver; driver=535.104.05; cuda=12020;
//   gpu=NAME,MAJOR.MINOR,TOTAL_MIB,FREE_MIB[,PID:USED_MIB...]   (repeatable, one per GPU)
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Gpu {
  std::string name;
  int major = 0, minor = 0;
  unsigned long long total = 0, free = 0;
  std::vector<std::pair<unsigned, unsigned long long>> processes;
};

struct Spec {
  std::string init = "ok", driver, cuda;
  std::vector<Gpu> gpus;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, sep)) out.push_back(part);
  return out;
}

Spec spec() {
  Spec s;
  const char* env = std::getenv("DETKIT_FAKE_NVML");
  if (!env) return s;
  for (const auto& item : split(env, ';')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "init") s.init = value;
    if (key == "driver") s.driver = value;
    if (key == "cuda") s.cuda = value;
    if (key == "gpu") {
      const auto f = split(value, ',');
      if (f.size() < 4) continue;
      Gpu g;
      g.name = f[0];
      const auto cc = split(f[1], '.');
      g.major = std::atoi(cc[0].c_str());
      g.minor = cc.size() > 1 ? std::atoi(cc[1].c_str()) : 0;
      g.total = std::strtoull(f[2].c_str(), nullptr, 10) << 20;
      g.free = std::strtoull(f[3].c_str(), nullptr, 10) << 20;
      for (std::size_t i = 4; i < f.size(); ++i) {
        const auto p = split(f[i], ':');
        if (p.size() == 2)
          g.processes.push_back({static_cast<unsigned>(std::atoi(p[0].c_str())), std::strtoull(p[1].c_str(), nullptr, 10) << 20});
      }
      s.gpus.push_back(g);
    }
  }
  return s;
}

struct Memory {
  unsigned long long total, free, used;
};
struct ProcessInfoV1 {
  unsigned int pid;
  unsigned long long used;
};

}  // namespace

extern "C" {

// NVML return codes used here: 0 success, 2 invalid argument, 7 insufficient size, 9 driver not loaded,
// 18 library / kernel module version mismatch.
int nvmlInit_v2() {
  const Spec s = spec();
  if (s.init == "mismatch") return 18;
  if (s.init == "no-driver") return 9;
  return 0;
}
int nvmlShutdown() { return 0; }
const char* nvmlErrorString(int r) {
  switch (r) {
    case 9: return "Driver Not Loaded";
    case 18: return "Driver/library version mismatch";
    default: return "Unknown Error";
  }
}
int nvmlSystemGetDriverVersion(char* out, unsigned len) {
  const Spec s = spec();
  if (s.driver.size() + 1 > len) return 7;
  std::strcpy(out, s.driver.c_str());
  return 0;
}
int nvmlSystemGetCudaDriverVersion_v2(int* v) {
  const Spec s = spec();
  if (s.cuda.empty()) return 12;  // NVML_ERROR_LIBRARY_NOT_FOUND: libcuda absent
  *v = std::atoi(s.cuda.c_str());
  return 0;
}
int nvmlDeviceGetCount_v2(unsigned* count) {
  *count = static_cast<unsigned>(spec().gpus.size());
  return 0;
}
// The handle is the index plus one, so that GPU 0 is not a null pointer.
int nvmlDeviceGetHandleByIndex_v2(unsigned index, void** device) {
  if (index >= spec().gpus.size()) return 2;
  *device = reinterpret_cast<void*>(static_cast<std::uintptr_t>(index + 1));
  return 0;
}
static const Gpu* gpu_of(void* device, Spec& s) {
  const auto i = reinterpret_cast<std::uintptr_t>(device);
  return i >= 1 && i <= s.gpus.size() ? &s.gpus[i - 1] : nullptr;
}
int nvmlDeviceGetName(void* device, char* out, unsigned len) {
  Spec s = spec();
  const Gpu* g = gpu_of(device, s);
  if (!g) return 2;
  if (g->name.size() + 1 > len) return 7;
  std::strcpy(out, g->name.c_str());
  return 0;
}
int nvmlDeviceGetCudaComputeCapability(void* device, int* major, int* minor) {
  Spec s = spec();
  const Gpu* g = gpu_of(device, s);
  if (!g) return 2;
  *major = g->major;
  *minor = g->minor;
  return 0;
}
int nvmlDeviceGetMemoryInfo(void* device, Memory* memory) {
  Spec s = spec();
  const Gpu* g = gpu_of(device, s);
  if (!g) return 2;
  memory->total = g->total;
  memory->free = g->free;
  memory->used = g->total - g->free;
  return 0;
}
int nvmlDeviceGetComputeRunningProcesses(void* device, unsigned* count, ProcessInfoV1* infos) {
  Spec s = spec();
  const Gpu* g = gpu_of(device, s);
  if (!g) return 2;
  if (*count < g->processes.size()) {
    *count = static_cast<unsigned>(g->processes.size());
    return 7;
  }
  *count = static_cast<unsigned>(g->processes.size());
  for (std::size_t i = 0; i < g->processes.size(); ++i) infos[i] = {g->processes[i].first, g->processes[i].second};
  return 0;
}

}  // extern "C"
