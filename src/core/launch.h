// `detkit train --nproc N`: one machine's ranks of a distributed job, started the way torchrun starts them
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT in each one's environment), so the same training
// code runs under either launcher. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace detkit {

struct LaunchOptions {
  int64_t nproc = 2;                  // ranks to start, 0 .. nproc-1
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 0;            // 0: a free port on this machine
  double grace_seconds = 60;          // after a rank fails, how long the others may take to stop by themselves
  std::vector<std::pair<std::string, std::string>> extra_env;  // set in every rank's environment
};

struct LaunchResult {
  int exit_code = 0;                  // 0 when every rank succeeded; else the first failing rank's code
  int64_t failed_rank = -1;           // the first rank that failed (-1: none)
  std::string failure;                // "rank 1 was killed by signal 9 (Killed)", "" when none failed
  std::vector<int> rank_exit_codes;   // each rank's exit code (128 + signal when a signal ended it)
};

// Starts `argv` (argv[0] a path) `nproc` times with the torchrun variables set, each rank in its own
// process group: a Ctrl-C (SIGINT) or SIGTERM to this process is passed on to every rank's group once
// (signals go to the whole group, so a rank's own children stop with it). Waits for
// all. When a rank fails, the others normally fail at their next collective within seconds; any still
// running after grace_seconds are sent SIGTERM, then SIGKILL 10 s later. Throws RunError when a rank
// cannot be started; never leaves a rank running when it returns.
LaunchResult launch_local_ranks(const std::vector<std::string>& argv, const LaunchOptions& options);

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice). Throws RunError if none.
int64_t free_tcp_port();

}  // namespace detkit
