// Where this process stands in a distributed training job: its rank, the world size and how to reach
// rank 0, read the way PyTorch's launcher (torchrun) passes them, so `detkit train` runs unchanged under
// torchrun and multi-node jobs work as PyTorch users already run them. Torch-free.
//
//   RANK         this process's rank, 0 .. WORLD_SIZE-1
//   WORLD_SIZE   the number of processes (absent or 1: not distributed)
//   LOCAL_RANK   the rank on this machine (which GPU to use); defaults to RANK
//   MASTER_ADDR  host of rank 0's rendezvous store (default 127.0.0.1)
//   MASTER_PORT  its TCP port (default 29500)
//   TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT  set by torchrun (below)
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace detkit {

struct DistributedEnv {
  int64_t rank = 0;                       // this process, 0 .. world_size-1
  int64_t world_size = 1;                 // processes in the job; 1: not distributed
  int64_t local_rank = 0;                 // rank on this machine (selects cuda:local_rank)
  std::string master_addr = "127.0.0.1";  // rank 0's rendezvous store
  int64_t master_port = 29500;            // its TCP port
  // torchrun (TORCHELASTIC_USE_AGENT_STORE=True): its agent already serves the store at MASTER_ADDR:PORT, so
  // every rank connects as a client, under the key prefix /worker/attempt_<TORCHELASTIC_RESTART_COUNT>.
  bool agent_store = false;
  int64_t restart_count = 0;
  bool launched = false;                  // RANK, WORLD_SIZE and MASTER_ADDR or TORCHELASTIC_RUN_ID set: a launcher's

  // Whether this process joins a process group: in a job of several ranks, or one a launcher (torchrun,
  // which sets a rendezvous too) started with WORLD_SIZE=1: the collectives then run on one rank, as in
  // torch.distributed. RANK=0 WORLD_SIZE=1 alone, as some schedulers export them, trains in one process.
  bool active() const { return world_size > 1 || launched; }
  bool is_main() const { return rank == 0; }  // the rank that writes files and logs progress
};

// Reads the variables through `lookup` (nullptr or "" for an unset one). Throws ConfigError naming the
// variable for a value that is not a number, a rank outside [0, WORLD_SIZE), a port outside 1..65535, or
// RANK set without WORLD_SIZE.
DistributedEnv distributed_env_from(const std::function<const char*(const char*)>& lookup);
// distributed_env_from(std::getenv).
DistributedEnv distributed_env();

}  // namespace detkit
