// Leveled logging to stderr. stdout is reserved for results (reports, JSON), so logs never mix with them.
// Thread-safe: each message is written as one line under a lock.
#pragma once

#include <string>

#include "core/text.h"

namespace detkit {

enum class LogLevel { error = 0, warn = 1, info = 2, debug = 3 };

// Throws UsageError for an unknown level name (the accepted names are error, warn, info, debug).
LogLevel parse_log_level(const std::string& name);
void set_log_level(LogLevel level);
LogLevel log_level();
bool log_enabled(LogLevel level);
void log_message(LogLevel level, const std::string& message);
// Text put before every message ("[rank 1] "), so that the ranks of a distributed job can be told apart.
void set_log_prefix(const std::string& prefix);

template <class... Args>
void log_error(const Args&... args) { if (log_enabled(LogLevel::error)) log_message(LogLevel::error, cat(args...)); }
template <class... Args>
void log_warn(const Args&... args) { if (log_enabled(LogLevel::warn)) log_message(LogLevel::warn, cat(args...)); }
template <class... Args>
void log_info(const Args&... args) { if (log_enabled(LogLevel::info)) log_message(LogLevel::info, cat(args...)); }
template <class... Args>
void log_debug(const Args&... args) { if (log_enabled(LogLevel::debug)) log_message(LogLevel::debug, cat(args...)); }

// Whether stderr is an interactive terminal (progress bars redraw in place only then).
bool stderr_is_terminal();

}  // namespace detkit
