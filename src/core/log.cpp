#include "core/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <mutex>

#include "core/error.h"

namespace detkit {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
std::mutex g_mutex;
std::string g_prefix;  // guarded by g_mutex
const char* const kNames[] = {"error", "warn", "info", "debug"};
}  // namespace

LogLevel parse_log_level(const std::string& name) {
  const std::string n = to_lower(trim(name));
  for (int i = 0; i < 4; ++i)
    if (n == kNames[i]) return static_cast<LogLevel>(i);
  if (n == "warning") return LogLevel::warn;
  throw UsageError({cat("unknown log level '", name, "'"), "", "use one of: error, warn, info, debug"});
}

void set_log_prefix(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_prefix = prefix;
}

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }
bool log_enabled(LogLevel level) { return static_cast<int>(level) <= g_level.load(); }

void log_message(LogLevel level, const std::string& message) {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "%s%s: %s\n", g_prefix.c_str(), kNames[static_cast<int>(level)], message.c_str());
  std::fflush(stderr);
}

bool stderr_is_terminal() {
  static const bool tty = isatty(STDERR_FILENO) == 1;
  return tty;
}

}  // namespace detkit
