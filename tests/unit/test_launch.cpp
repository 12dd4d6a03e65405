// `detkit train --nproc N`'s launcher (core/launch.h), with shell scripts as ranks: the torchrun variables
// each rank gets, exit codes, a failing rank making the launcher stop the others after the grace period,
// and Ctrl-C passed on to every rank.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/fs.h"
#include "core/launch.h"
#include "test_util.h"

namespace detkit {
namespace {

using detkit::testing::TempDir;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> shell(const std::string& script) { return {"/bin/sh", "-c", script}; }

TEST(Launch, EveryRankGetsTheTorchrunVariablesAndOnePort) {
  TempDir dir;
  LaunchOptions o;
  o.nproc = 3;
  o.extra_env = {{"DETKIT_THREADS", "1"}};
  const LaunchResult r = launch_local_ranks(
      shell("echo $RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE $MASTER_ADDR $MASTER_PORT $DETKIT_THREADS > " +
            (dir / "rank").string() + "$RANK"),
      o);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.failed_rank, -1);
  ASSERT_EQ(r.rank_exit_codes, (std::vector<int>{0, 0, 0}));
  std::string port;
  for (int rank = 0; rank < 3; ++rank) {
    std::istringstream line(read_text(dir / ("rank" + std::to_string(rank))));
    std::string r0, lr, ws, lws, addr, p, threads;
    line >> r0 >> lr >> ws >> lws >> addr >> p >> threads;
    EXPECT_EQ(r0, std::to_string(rank));
    EXPECT_EQ(lr, std::to_string(rank));
    EXPECT_EQ(ws, "3");
    EXPECT_EQ(lws, "3");
    EXPECT_EQ(addr, "127.0.0.1");
    EXPECT_EQ(threads, "1");
    if (rank == 0) port = p;
    EXPECT_EQ(p, port);
  }
  EXPECT_GT(std::stoi(port), 0);
}

TEST(Launch, FailingRankIsNamedAndTheOthersAreStoppedAfterTheGrace) {
  LaunchOptions o;
  o.nproc = 2;
  o.grace_seconds = 1;
  const auto start = std::chrono::steady_clock::now();
  // Rank 1 fails at once; rank 0 would run for a minute (a rank stuck in a collective).
  const LaunchResult r = launch_local_ranks(shell("if [ $RANK = 1 ]; then exit 7; fi; sleep 60"), o);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(r.failed_rank, 1);
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(r.failure, "rank 1 exited with code 7");
  EXPECT_EQ(r.rank_exit_codes[1], 7);
  EXPECT_EQ(r.rank_exit_codes[0], 128 + SIGTERM);
}

TEST(Launch, KilledRankIsReportedWithItsSignal) {
  LaunchOptions o;
  o.nproc = 2;
  o.grace_seconds = 1;
  const LaunchResult r = launch_local_ranks(shell("if [ $RANK = 0 ]; then kill -9 $$; fi; sleep 60"), o);
  EXPECT_EQ(r.failed_rank, 0);
  EXPECT_EQ(r.exit_code, 128 + 9);
  EXPECT_EQ(r.failure.rfind("rank 0 was killed by signal 9", 0), 0u) << r.failure;
}

TEST(Launch, InterruptIsPassedOnToEveryRank) {
  TempDir dir;
  LaunchOptions o;
  o.nproc = 2;
  // Each rank records the SIGINT it receives, then exits 130 as detkit does after saving its state.
  const std::string script = "trap 'echo int > " + (dir / "got").string() +
                             "$RANK; exit 130' INT; i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done";
  std::thread interrupter([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    ::kill(::getpid(), SIGINT);
  });
  const LaunchResult r = launch_local_ranks(shell(script), o);
  interrupter.join();
  EXPECT_EQ(r.exit_code, 130);
  EXPECT_EQ(read_text(dir / "got0"), "int\n");
  EXPECT_EQ(read_text(dir / "got1"), "int\n");
}

TEST(Launch, UnstartableProgramFailsEveryRankWithExitCode127) {
  LaunchOptions o;
  o.nproc = 2;
  o.grace_seconds = 1;
  const LaunchResult r = launch_local_ranks({"/nonexistent/detkit", "train"}, o);
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_GE(r.failed_rank, 0);
}

TEST(Launch, FreePortIsUsable) {
  const int64_t port = free_tcp_port();
  EXPECT_GT(port, 1023);
  EXPECT_LE(port, 65535);
}

}  // namespace
}  // namespace detkit
