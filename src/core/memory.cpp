#include "core/memory.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

namespace detkit {

namespace {

// The first number in `text`; nullopt for none ("max": no limit).
std::optional<uint64_t> first_number(const std::string& text) {
  std::istringstream in(text);
  unsigned long long value = 0;
  if (in >> value) return static_cast<uint64_t>(value);
  return std::nullopt;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// "/a/b" under "/sys/fs/cgroup/x": "/sys/fs/cgroup/x/a/b" ("/" adds nothing).
std::string under(const std::string& dir, const std::string& path) {
  std::string p = path;
  while (!p.empty() && p.front() == '/') p.erase(p.begin());
  return p.empty() ? dir : dir + "/" + p;
}

}  // namespace

CgroupMemory cgroup_memory(const std::string& self_cgroup, const ReadFile& read) {
  std::optional<std::string> v2_path, v1_path;
  std::istringstream lines(self_cgroup);
  for (std::string line; std::getline(lines, line);) {
    // "0::/path" (v2), "N:memory:/path" or "N:cpu,memory:/path" (v1)
    const auto first = line.find(':'), second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1), path = line.substr(second + 1);
    if (controllers.empty()) v2_path = path;
    if (("," + controllers + ",").find(",memory,") != std::string::npos) v1_path = path;
  }
  const auto found = [](const std::string& file, const std::string& limit_text, const std::string& used_text) {
    CgroupMemory m;
    const std::optional<uint64_t> limit = first_number(limit_text);
    if (!limit || *limit >= (uint64_t{1} << 60)) return m;  // "max", or v1's "unlimited"
    m.limit = *limit;
    m.used = first_number(used_text).value_or(0);
    m.file = file;
    return m;
  };
  const std::string root = "/sys/fs/cgroup";
  if (v2_path)
    for (const std::string& dir : {under(root, *v2_path), root}) {
      const std::string limit = read(dir + "/memory.max");
      if (!limit.empty()) return found(dir + "/memory.max", limit, read(dir + "/memory.current"));
    }
  if (v1_path)
    for (const std::string& dir : {under(root + "/memory", *v1_path), root + "/memory"}) {
      const std::string limit = read(dir + "/memory.limit_in_bytes");
      if (!limit.empty()) return found(dir + "/memory.limit_in_bytes", limit, read(dir + "/memory.usage_in_bytes"));
    }
  return {};
}

uint64_t meminfo_bytes(const std::string& meminfo, const std::string& key) {
  std::istringstream in(meminfo);
  for (std::string line; std::getline(in, line);) {
    if (line.compare(0, key.size() + 1, key + ":") != 0) continue;
    const std::optional<uint64_t> kib = first_number(line.substr(key.size() + 1));
    return kib ? *kib * 1024 : 0;
  }
  return 0;
}

uint64_t available_ram(const std::string& meminfo, const std::string& self_cgroup, const ReadFile& read) {
  const uint64_t available = meminfo_bytes(meminfo, "MemAvailable");
  if (available == 0) return 0;
  const CgroupMemory cgroup = cgroup_memory(self_cgroup, read);
  if (cgroup.limit == 0) return available;
  return std::min(available, cgroup.limit > cgroup.used ? cgroup.limit - cgroup.used : 0);
}

uint64_t available_ram_bytes() {
  return available_ram(read_text("/proc/meminfo"), read_text("/proc/self/cgroup"), read_text);
}

}  // namespace detkit
