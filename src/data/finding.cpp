#include "data/finding.h"

#include "core/text.h"

namespace detkit {

const char* to_string(Severity severity) {
  switch (severity) {
    case Severity::info: return "info";
    case Severity::warning: return "warning";
    case Severity::error: return "error";
  }
  return "?";
}

std::optional<Severity> parse_severity(const std::string& name) {
  const std::string n = to_lower(trim(name));
  if (n == "info") return Severity::info;
  if (n == "warning" || n == "warn") return Severity::warning;
  if (n == "error") return Severity::error;
  return std::nullopt;
}

std::string Finding::location() const {
  std::string out = file;
  if (line > 0) out += cat(":", line);
  if (!record.empty()) out += " (" + record + ")";
  return out;
}

}  // namespace detkit
