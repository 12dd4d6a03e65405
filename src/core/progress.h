// Progress for long work, on stderr, and clean interruption.
//
// On a terminal a single line redraws in place (bar, count, rate, ETA, resident memory, extra fields);
// elsewhere (CI logs, files) a plain line is printed every `plain_interval_s` seconds and once at the end
// (never the same count and fields twice), so logs stay readable. Progress never writes to stdout.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace detkit {

class Progress {
 public:
  // `total` may be 0 when unknown (then no bar and no ETA). `unit` names what is counted ("img").
  Progress(std::string label, uint64_t total, std::string unit);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Adds `n` finished items; redraws if enough time has passed. `extra` is appended ("loss 1.23").
  void advance(uint64_t n = 1, const std::string& extra = {});
  // Prints the final line (always, whatever the interval).
  void finish(const std::string& extra = {});

  // Seconds between plain (non-terminal) lines; DETKIT_PROGRESS_INTERVAL overrides the default of 10.
  static double plain_interval_s();

  // The line the progress shows now, without terminal control characters. Exposed for tests.
  std::string line(const std::string& extra) const;

 private:
  void emit(const std::string& extra, bool final);

  std::string label_;
  uint64_t total_;
  std::string unit_;
  uint64_t done_ = 0;
  bool finished_ = false;
  bool terminal_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_emit_;
  uint64_t printed_done_ = UINT64_MAX;  // count and extra fields of the last line printed
  std::string printed_extra_;
};

// Resident set size of this process in bytes (0 where unknown).
uint64_t resident_memory_bytes();

// Ctrl-C handling: the first SIGINT/SIGTERM sets a flag that long jobs poll at safe points (so they can
// write a checkpoint and stop); a second one ends the process at once with the default action.
void install_interrupt_handler();
bool interrupt_requested();
// Throws InterruptedError naming `what` if an interrupt was requested.
void throw_if_interrupted(const std::string& what);
// For tests: set or clear the flag as if a signal had arrived.
void set_interrupt_requested(bool value);

}  // namespace detkit
