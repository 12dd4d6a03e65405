// core/memory: the RAM a process may take, MemAvailable capped by its cgroup's memory limit (v2 and v1,
// as containers see them), from hand-written /proc and /sys/fs/cgroup texts.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/memory.h"

using namespace detkit;

namespace {

struct FakeFiles {
  std::map<std::string, std::string> files;
  ReadFile reader() const {
    return [this](const std::string& path) {
      const auto it = files.find(path);
      return it == files.end() ? std::string() : it->second;
    };
  }
};

const std::string kMeminfo = "MemTotal:       32000000 kB\nMemFree:        1000 kB\nMemAvailable:   20000000 kB\n";
const uint64_t kHost = uint64_t{20000000} * 1024;

}  // namespace

TEST(Memory, MemAvailableWithoutACgroupLimit) {
  FakeFiles fs;
  EXPECT_EQ(meminfo_bytes(kMeminfo, "MemAvailable"), kHost);
  EXPECT_EQ(meminfo_bytes(kMeminfo, "MemTotal"), uint64_t{32000000} * 1024);
  EXPECT_EQ(meminfo_bytes("MemTotal: 5 kB\n", "MemAvailable"), 0u);
  EXPECT_EQ(available_ram(kMeminfo, "0::/job\n", fs.reader()), kHost);
  EXPECT_EQ(available_ram("", "0::/job\n", fs.reader()), 0u);
  EXPECT_GT(available_ram_bytes(), 0u);  // this machine
}

TEST(Memory, CgroupV2LimitInTheProcessesOwnCgroupOrAtTheRoot) {
  FakeFiles fs;
  fs.files["/sys/fs/cgroup/job/memory.max"] = "8589934592\n";  // 8 GiB, 3 GiB used: 5 GiB left
  fs.files["/sys/fs/cgroup/job/memory.current"] = "3221225472\n";
  const CgroupMemory m = cgroup_memory("0::/job\n", fs.reader());
  EXPECT_EQ(m.limit, uint64_t{8} << 30);
  EXPECT_EQ(m.used, uint64_t{3} << 30);
  EXPECT_EQ(m.file, "/sys/fs/cgroup/job/memory.max");
  EXPECT_EQ(available_ram(kMeminfo, "0::/job\n", fs.reader()), uint64_t{5} << 30);
  // A container sees its own cgroup as the root ("0::/").
  FakeFiles container;
  container.files["/sys/fs/cgroup/memory.max"] = "4294967296\n";
  container.files["/sys/fs/cgroup/memory.current"] = "1073741824\n";
  EXPECT_EQ(available_ram(kMeminfo, "0::/\n", container.reader()), uint64_t{3} << 30);
  container.files["/sys/fs/cgroup/memory.max"] = "max\n";
  EXPECT_EQ(cgroup_memory("0::/\n", container.reader()).limit, 0u);
  EXPECT_EQ(available_ram(kMeminfo, "0::/\n", container.reader()), kHost);
}

TEST(Memory, CgroupV1MemoryControllerAndItsUnlimitedValue) {
  FakeFiles fs;  // a hybrid host: the v2 line names no memory.max, v1 has the memory controller
  fs.files["/sys/fs/cgroup/memory/memory.limit_in_bytes"] = "4294967296\n";
  fs.files["/sys/fs/cgroup/memory/memory.usage_in_bytes"] = "1073741824\n";
  const std::string self = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n";
  EXPECT_EQ(available_ram(kMeminfo, self, fs.reader()), uint64_t{3} << 30);
  // The process's own v1 cgroup is read first.
  fs.files["/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"] = "2147483648\n";
  fs.files["/sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes"] = "0\n";
  EXPECT_EQ(available_ram(kMeminfo, self, fs.reader()), uint64_t{2} << 30);
  fs.files["/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"] = "9223372036854771712\n";  // "unlimited"
  EXPECT_EQ(cgroup_memory(self, fs.reader()).limit, 0u);
  EXPECT_EQ(available_ram(kMeminfo, self, fs.reader()), kHost);
  // A limit above what the host has free changes nothing; one used up leaves nothing.
  fs.files["/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"] = "68719476736\n";
  EXPECT_EQ(available_ram(kMeminfo, self, fs.reader()), kHost);
  fs.files["/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"] = "100\n";
  fs.files["/sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes"] = "200\n";
  EXPECT_EQ(available_ram(kMeminfo, self, fs.reader()), 0u);
}
