// detkit's two error channels.
//
// 1. User-facing problems (bad data, bad config, a broken environment, out of memory) are thrown as a
//    subclass of detkit::Error. Each carries what happened, where (file, line, record), why, and the
//    remedy: the concrete action that fixes it. Library code only throws; the CLI alone catches, prints
//    `error:` / `fix:` lines and maps the type to a documented exit code (ExitCode).
// 2. Bugs in detkit itself are DETKIT_ASSERT failures: an InternalError naming the source location.
#pragma once

#include <stdexcept>
#include <string>

namespace detkit {

// Process exit codes, documented in README.md. Stable: scripts depend on them.
enum class ExitCode : int {
  ok = 0,             // success
  failed = 1,         // findings at or above the failure threshold, or a run that did not succeed
  usage = 2,          // bad command line or configuration
  environment = 3,    // the machine cannot run this (missing libraries, driver, device)
  data = 4,           // the dataset or an input file cannot be read
  out_of_memory = 5,  // out of (GPU or host) memory after recovery was exhausted
  checkpoint = 6,     // a checkpoint cannot be read or written
  internal = 70,      // a bug in detkit (EX_SOFTWARE)
  interrupted = 130,  // stopped by Ctrl-C / SIGINT / SIGTERM
};

// The parts of a user-facing error. `what` is one sentence; `where` names the file (and line or record)
// when there is one; `why` gives the cause when it is known; `remedy` is the action that fixes it.
struct ErrorInfo {
  std::string what;
  std::string why = {};
  std::string remedy = {};
  std::string where = {};
};

class Error : public std::runtime_error {
 public:
  explicit Error(ErrorInfo info);
  ~Error() override;

  const std::string& message() const { return info_.what; }
  const std::string& why() const { return info_.why; }
  const std::string& remedy() const { return info_.remedy; }
  const std::string& where() const { return info_.where; }
  const ErrorInfo& info() const { return info_; }

  // The short name of the error class, e.g. "configuration error".
  virtual const char* kind() const { return "error"; }
  virtual ExitCode exit_code() const { return ExitCode::failed; }

 private:
  ErrorInfo info_;
};

#define DETKIT_DECLARE_ERROR(Name, kind_text, code)                               \
  class Name : public Error {                                                     \
   public:                                                                        \
    using Error::Error;                                                           \
    const char* kind() const override { return kind_text; }                       \
    ExitCode exit_code() const override { return ExitCode::code; }                \
  }

DETKIT_DECLARE_ERROR(UsageError, "usage error", usage);
DETKIT_DECLARE_ERROR(ConfigError, "configuration error", usage);
DETKIT_DECLARE_ERROR(DataError, "data error", data);
DETKIT_DECLARE_ERROR(EnvironmentError, "environment error", environment);
DETKIT_DECLARE_ERROR(OutOfMemoryError, "out of memory", out_of_memory);
DETKIT_DECLARE_ERROR(CheckpointError, "checkpoint error", checkpoint);
DETKIT_DECLARE_ERROR(RunError, "run failed", failed);
DETKIT_DECLARE_ERROR(InterruptedError, "interrupted", interrupted);
DETKIT_DECLARE_ERROR(InternalError, "internal error", internal);

#undef DETKIT_DECLARE_ERROR

// The text the CLI prints for an error: "error: WHERE: WHAT" then "  why: ..." and "fix: ..." lines.
std::string format_error(const Error& error);

[[noreturn]] void assertion_failed(const char* condition, const char* file, int line, const std::string& note);

}  // namespace detkit

// Internal invariant. Failing means a bug in detkit, never bad user input.
#define DETKIT_ASSERT(cond, note)                                          \
  do {                                                                     \
    if (!(cond)) ::detkit::assertion_failed(#cond, __FILE__, __LINE__, (note)); \
  } while (0)
