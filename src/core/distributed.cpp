#include "core/distributed.h"

#include <cstdlib>

#include "core/error.h"
#include "core/text.h"

namespace detkit {

namespace {

// The integer value of `name`, or `fallback` when unset. Throws ConfigError for anything else.
int64_t integer(const std::function<const char*(const char*)>& lookup, const char* name, int64_t fallback, bool* set = nullptr) {
  const char* raw = lookup(name);
  if (set) *set = raw && *raw;
  if (!raw || !*raw) return fallback;
  const std::string text = raw;
  try {
    std::size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw ConfigError({cat("environment variable ", name, "='", text, "' is not a whole number"),
                     "torchrun and other launchers set it to this process's place in the job",
                     cat("unset ", name, " to train in one process, or launch with torchrun / detkit train --nproc N")});
}

}  // namespace

DistributedEnv distributed_env_from(const std::function<const char*(const char*)>& lookup) {
  DistributedEnv env;
  bool rank_set = false, world_set = false;
  env.world_size = integer(lookup, "WORLD_SIZE", 1, &world_set);
  env.rank = integer(lookup, "RANK", 0, &rank_set);
  if (rank_set && !world_set)
    throw ConfigError({cat("RANK=", env.rank, " is set but WORLD_SIZE is not"), "a rank means nothing without the job's size",
                       "set WORLD_SIZE as well (torchrun sets both), or unset RANK to train in one process"});
  if (env.world_size < 1)
    throw ConfigError({cat("WORLD_SIZE=", env.world_size, " is not a process count"), "", "set WORLD_SIZE to 1 or more"});
  if (env.rank < 0 || env.rank >= env.world_size)
    throw ConfigError({cat("RANK=", env.rank, " is outside the job's ranks 0..", env.world_size - 1),
                       cat("WORLD_SIZE is ", env.world_size), "give every process a distinct RANK below WORLD_SIZE"});
  const auto is_set = [&](const char* name) {
    const char* value = lookup(name);
    return value && *value;
  };
  env.launched = rank_set && world_set && (is_set("MASTER_ADDR") || is_set("TORCHELASTIC_RUN_ID"));
  env.local_rank = integer(lookup, "LOCAL_RANK", env.rank);
  if (env.local_rank < 0)
    throw ConfigError({cat("LOCAL_RANK=", env.local_rank, " is negative"), "", "set LOCAL_RANK to this process's index on its machine"});
  if (const char* addr = lookup("MASTER_ADDR"); addr && *addr) env.master_addr = addr;
  env.master_port = integer(lookup, "MASTER_PORT", env.master_port);
  if (const char* agent = lookup("TORCHELASTIC_USE_AGENT_STORE"); agent && std::string(agent) == "True") {
    env.agent_store = true;
    env.restart_count = integer(lookup, "TORCHELASTIC_RESTART_COUNT", 0);
  }
  if (env.master_port < 1 || env.master_port > 65535)
    throw ConfigError({cat("MASTER_PORT=", env.master_port, " is not a TCP port"), "", "set MASTER_PORT to a free port in 1..65535, e.g. 29500"});
  return env;
}

DistributedEnv distributed_env() {
  return distributed_env_from([](const char* name) { return std::getenv(name); });
}

}  // namespace detkit
