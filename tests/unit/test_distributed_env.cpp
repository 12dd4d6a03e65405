// The distributed job's environment as torchrun sets it (core/distributed.h).
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/distributed.h"
#include "core/error.h"
#include "test_util.h"

namespace detkit {
namespace {

DistributedEnv parse(const std::map<std::string, std::string>& vars) {
  return distributed_env_from([&](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(DistributedEnv, UnsetMeansOneProcess) {
  const DistributedEnv env = parse({});
  EXPECT_FALSE(env.active());
  EXPECT_TRUE(env.is_main());
  EXPECT_EQ(env.world_size, 1);
  EXPECT_EQ(env.master_addr, "127.0.0.1");
  EXPECT_EQ(env.master_port, 29500);
}

TEST(DistributedEnv, ReadsTorchrunVariables) {
  const DistributedEnv env =
      parse({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29400"}});
  EXPECT_TRUE(env.active());
  EXPECT_FALSE(env.is_main());
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.master_addr, "node0");
  EXPECT_EQ(env.master_port, 29400);
  EXPECT_EQ(parse({{"RANK", "2"}, {"WORLD_SIZE", "4"}}).local_rank, 2);  // LOCAL_RANK defaults to RANK
  // torchrun with one process (it sets a rendezvous too): a job of one rank, which still joins a process
  // group. RANK=0 WORLD_SIZE=1 alone, as some schedulers export them, is one process.
  EXPECT_TRUE(parse({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"MASTER_ADDR", "127.0.0.1"}}).active());
  EXPECT_TRUE(parse({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"TORCHELASTIC_RUN_ID", "none"}}).active());
  EXPECT_FALSE(parse({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).active());
  EXPECT_FALSE(parse({{"WORLD_SIZE", "1"}}).active());
}

TEST(DistributedEnv, BadValuesNameTheVariable) {
  EXPECT_THROW_WITH(parse({{"WORLD_SIZE", "two"}}), ConfigError, "WORLD_SIZE='two' is not a whole number", "unset WORLD_SIZE");
  EXPECT_THROW_WITH(parse({{"RANK", "4"}, {"WORLD_SIZE", "4"}}), ConfigError, "RANK=4 is outside the job's ranks 0..3",
                    "distinct RANK below WORLD_SIZE");
  EXPECT_THROW_WITH(parse({{"RANK", "1"}}), ConfigError, "WORLD_SIZE is not", "set WORLD_SIZE as well");
  EXPECT_THROW_WITH(parse({{"WORLD_SIZE", "0"}}), ConfigError, "WORLD_SIZE=0", "1 or more");
  EXPECT_THROW_WITH(parse({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_PORT", "70000"}}), ConfigError, "MASTER_PORT=70000",
                    "1..65535");
  EXPECT_THROW_WITH(parse({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"LOCAL_RANK", "-1"}}), ConfigError, "LOCAL_RANK=-1", "");
}

// torchrun's agent serves the store itself and tells the workers so.
TEST(DistributedEnv, ReadsTorchrunAgentStore) {
  DistributedEnv env = parse({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                              {"TORCHELASTIC_RESTART_COUNT", "3"}});
  EXPECT_TRUE(env.agent_store);
  EXPECT_EQ(env.restart_count, 3);
  env = parse({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"TORCHELASTIC_USE_AGENT_STORE", "False"}});
  EXPECT_FALSE(env.agent_store);
}

}  // namespace
}  // namespace detkit
