#include "core/error.h"

namespace detkit {

namespace {
std::string summary_of(const ErrorInfo& info) {
  return info.where.empty() ? info.what : info.where + ": " + info.what;
}
}  // namespace

Error::Error(ErrorInfo info) : std::runtime_error(summary_of(info)), info_(std::move(info)) {}
Error::~Error() = default;

std::string format_error(const Error& error) {
  std::string out = "error: " + std::string(error.what()) + "\n";
  if (!error.why().empty()) out += "  why: " + error.why() + "\n";
  if (!error.remedy().empty()) out += "fix: " + error.remedy() + "\n";
  return out;
}

void assertion_failed(const char* condition, const char* file, int line, const std::string& note) {
  throw InternalError({"internal check failed: " + std::string(condition) + (note.empty() ? "" : " (" + note + ")"),
                       "this is a bug in detkit, not a problem with your data or setup",
                       "please report it with the command line and this message",
                       std::string(file) + ":" + std::to_string(line)});
}

}  // namespace detkit
