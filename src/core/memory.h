// How much RAM this process may still take (torch-free; the loader's cache, batch: auto on the CPU and
// the doctor use it). In a container the host's MemAvailable is not the limit: the cgroup's memory limit
// is (Docker's --memory, a Kubernetes limit), and exceeding it gets the process killed (a data-loader
// worker "killed by signal: Killed").
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace detkit {

// Reads a file's text; "" when it is missing or unreadable.
using ReadFile = std::function<std::string(const std::string& path)>;

// The memory limit of the cgroup this process is in, and what the cgroup uses now, in bytes. `self_cgroup`
// is /proc/self/cgroup's text; `read` reads files under /sys/fs/cgroup (the paths it is given are absolute).
// cgroup v2 (memory.max, memory.current) is tried first, then v1's memory controller
// (memory.limit_in_bytes, memory.usage_in_bytes); each in this process's own cgroup, then at the root of
// the hierarchy (what a container sees of its own cgroup). limit 0: no limit found ("max", v1's
// near-2^63 "unlimited", no files).
struct CgroupMemory {
  uint64_t limit = 0;
  uint64_t used = 0;
  std::string file;  // the limit's file, for messages ("" without a limit)
};
CgroupMemory cgroup_memory(const std::string& self_cgroup, const ReadFile& read);

// The value of `key` ("MemTotal", "MemAvailable") in /proc/meminfo's text, in bytes (0 when absent).
uint64_t meminfo_bytes(const std::string& meminfo, const std::string& key);

// MemAvailable, lowered to the room left under the cgroup limit when there is one. 0 when MemAvailable is
// unknown.
uint64_t available_ram(const std::string& meminfo, const std::string& self_cgroup, const ReadFile& read);

// available_ram() of this process, from /proc and /sys/fs/cgroup.
uint64_t available_ram_bytes();

}  // namespace detkit
