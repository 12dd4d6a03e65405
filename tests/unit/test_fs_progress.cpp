#include <gtest/gtest.h>
#include <vector>
#include <thread>
#include <set>
#include <mutex>
#include <chrono>
#include <atomic>
#include <stdlib.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <sstream>
#include <string>
#include "core/fs.h"
#include "core/log.h"
#include "core/host_allocator.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "core/threads.h"
#include "test_util.h"

using namespace detkit;
using detkit::testing::TempDir;

TEST(Fs, AtomicWriteReplacesAndLeavesNoTemporaryFile) {
  TempDir dir;
  const fs::path target = dir / "deep" / "out.txt";
  write_file_atomic(target, "first");
  write_file_atomic(target, "second");
  EXPECT_EQ(read_file(target), "second");
  int files = 0;
  for (const auto& entry : fs::directory_iterator(target.parent_path())) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "out.txt");
  }
  EXPECT_EQ(files, 1);
}

TEST(Fs, WriteFailuresAreRunErrorsWithTheReason) {
  TempDir dir;
  write_file_atomic(dir / "file", "x");
  EXPECT_THROW_WITH(write_file_atomic(dir / "file" / "below", "y"), RunError, "cannot create directory", "output location");
}

TEST(Fs, ReadErrorsNameTheFile) {
  TempDir dir;
  EXPECT_THROW_WITH(read_file(dir / "absent.json"), DataError, "absent.json: file not found", "check the path");
  EXPECT_THROW_WITH(read_file(dir.path()), DataError, "expected a file but found a directory", "path of the file");
}

TEST(Fs, EmptyDirectoryCheck) {
  TempDir dir;
  EXPECT_TRUE(is_missing_or_empty_directory(dir / "nothing"));
  EXPECT_TRUE(is_missing_or_empty_directory(dir.path()));
  write_file_atomic(dir / "f", "x");
  EXPECT_FALSE(is_missing_or_empty_directory(dir.path()));
}

TEST(Progress, LineShowsCountRateEtaAndMemory) {
  Progress p("train", 200, "img");
  p.advance(50);
  const std::string line = p.line("loss 1.25");
  EXPECT_NE(line.find("train [#####...............] 50/200 img  25%"), std::string::npos) << line;
  EXPECT_NE(line.find("img/s"), std::string::npos);
  EXPECT_NE(line.find(" eta "), std::string::npos);
  EXPECT_NE(line.find(" mem "), std::string::npos);
  EXPECT_NE(line.find("loss 1.25"), std::string::npos);
  Progress unknown("scan", 0, "files");
  unknown.advance(3);
  EXPECT_NE(unknown.line("").find("scan 3 files"), std::string::npos);
}

// Without a terminal every line is kept in the log, so the last one of a loop must appear once: the
// completing advance() leaves it to finish(), and finish() does not repeat a line already printed.
TEST(Progress, PlainLogPrintsTheLastLineOnce) {
  if (stderr_is_terminal()) GTEST_SKIP() << "stderr is a terminal: plain lines are not used";
  ::setenv("DETKIT_PROGRESS_INTERVAL", "0", 1);
  const auto lines_of = [](const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  };
  ::testing::internal::CaptureStderr();
  {
    Progress epoch("epoch 1/2", 3, "batch");
    for (int i = 0; i < 3; ++i) epoch.advance(1, "loss 1.0");
    epoch.finish("loss 1.0");
  }
  const auto full = lines_of(::testing::internal::GetCapturedStderr());
  ASSERT_EQ(full.size(), 3u) << ::testing::PrintToString(full);
  EXPECT_NE(full[0].find("1/3 batch"), std::string::npos) << full[0];
  EXPECT_NE(full[1].find("2/3 batch"), std::string::npos) << full[1];
  EXPECT_NE(full[2].find("3/3 batch"), std::string::npos) << full[2];

  // A loop left early: finish() prints its line once even when the count was printed already, because
  // its fields differ.
  ::testing::internal::CaptureStderr();
  {
    Progress epoch("epoch 2/2", 3, "batch");
    epoch.advance(1, "loss 0.9");
    epoch.finish("interrupted");
    epoch.finish("interrupted");
  }
  const auto cut = lines_of(::testing::internal::GetCapturedStderr());
  ::unsetenv("DETKIT_PROGRESS_INTERVAL");
  ASSERT_EQ(cut.size(), 2u) << ::testing::PrintToString(cut);
  EXPECT_NE(cut[1].find("1/3 batch"), std::string::npos) << cut[1];
  EXPECT_NE(cut[1].find("interrupted"), std::string::npos) << cut[1];
}

TEST(Progress, PlainIntervalComesFromTheEnvironment) {
  ::setenv("DETKIT_PROGRESS_INTERVAL", "2.5", 1);
  EXPECT_DOUBLE_EQ(Progress::plain_interval_s(), 2.5);
  ::unsetenv("DETKIT_PROGRESS_INTERVAL");
  EXPECT_DOUBLE_EQ(Progress::plain_interval_s(), 10.0);
  EXPECT_GT(resident_memory_bytes(), 0u);
}

TEST(Interrupt, FlagBecomesAnInterruptedError) {
  set_interrupt_requested(false);
  EXPECT_NO_THROW(throw_if_interrupted("the scan"));
  set_interrupt_requested(true);
  EXPECT_THROW_WITH(throw_if_interrupted("the scan"), InterruptedError, "the scan was interrupted", "run the command again");
  set_interrupt_requested(false);
}

TEST(Threads, DefaultIsEveryAvailableCore) {
  EXPECT_GE(available_cores(), 1);
  EXPECT_EQ(resolve_thread_count(0), available_cores());
  EXPECT_EQ(resolve_thread_count(3), 3);
  set_thread_count(0);
  EXPECT_EQ(thread_count(), available_cores());
}

TEST(HostAllocator, UserSettingsWin) {
  const auto opted_out = keep_freed_memory_for_reuse("system", nullptr);
  EXPECT_FALSE(opted_out.applied);
  EXPECT_NE(opted_out.reason.find("DETKIT_HOST_ALLOCATOR=system"), std::string::npos);
  const auto tuned = keep_freed_memory_for_reuse(nullptr, "glibc.malloc.arena_max=2");
  EXPECT_FALSE(tuned.applied);
  EXPECT_NE(tuned.reason.find("GLIBC_TUNABLES"), std::string::npos);
}

#ifdef __GLIBC__
// After the call, a 64 MiB block (above glibc's largest automatic mmap threshold, 32 MiB) comes from the
// heap instead of its own mapping, and freeing it leaves the heap at its size for the next step.
TEST(HostAllocator, LargeFreedBlocksStayInTheHeap) {
  const auto setup = keep_freed_memory_for_reuse(nullptr, "glibc.rtld.optional_static_tls=512");
  ASSERT_TRUE(setup.applied) << setup.reason;
  constexpr size_t kBlock = 64u << 20;
  const auto mapped_before = mallinfo2().hblks;
  void* block = std::malloc(kBlock);
  ASSERT_NE(block, nullptr);
  static_cast<volatile char*>(block)[kBlock - 1] = 1;
  EXPECT_EQ(mallinfo2().hblks, mapped_before) << "the block got its own mapping";
  std::free(block);
  EXPECT_GE(mallinfo2().arena, kBlock) << "the heap was trimmed after the free";
}
#endif

// Every item once, on more than one thread; the first failure is rethrown after the others have stopped.
TEST(RunInParallel, EveryItemOnceAndTheFailureRethrown) {
  const int threads = thread_count();
  set_thread_count(3);
  std::vector<std::atomic<int>> seen(100);
  std::mutex ids_mutex;
  std::set<std::thread::id> ids;
  run_in_parallel(seen.size(), [&](std::size_t i) {
    ++seen[i];
    std::lock_guard<std::mutex> lock(ids_mutex);
    ids.insert(std::this_thread::get_id());
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  });
  for (const auto& s : seen) EXPECT_EQ(s.load(), 1);
  EXPECT_GT(ids.size(), 1u);
  EXPECT_THROW(run_in_parallel(50, [](std::size_t i) { if (i == 7) throw DataError({"item 7", "", ""}); }), DataError);
  set_thread_count(threads);
}
