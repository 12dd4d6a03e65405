// Small string utilities shared by the CLI, the config loader and the reports. Torch-free.
#pragma once

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace detkit {

// Concatenates any streamable values: cat("batch ", 16, " too large").
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

std::string trim(const std::string& s);
std::string to_lower(std::string s);
std::vector<std::string> split(const std::string& s, char sep);
std::string join(const std::vector<std::string>& parts, const std::string& sep);
bool starts_with(const std::string& s, const std::string& prefix);
bool ends_with(const std::string& s, const std::string& suffix);

// Levenshtein distance, used to suggest the nearest valid option or key.
std::size_t edit_distance(const std::string& a, const std::string& b);

// The candidate nearest to `word`, if it is close enough to be a plausible typo (or `word` is a prefix
// of exactly one candidate); nullopt otherwise.
std::optional<std::string> nearest(const std::string& word, const std::vector<std::string>& candidates);

// Strict number parsing: the whole string must be the number. nullopt when it is not.
std::optional<int64_t> parse_int(const std::string& s);
std::optional<double> parse_double(const std::string& s);
std::optional<bool> parse_bool(const std::string& s);  // true/false, yes/no, on/off, 1/0

// Byte sizes: "24GiB", "512MiB", "1.5GB", "4096". nullopt when unparseable.
std::optional<uint64_t> parse_bytes(const std::string& s);
std::string format_bytes(uint64_t bytes);     // "1.5 GiB"
std::string format_duration(double seconds);  // "1h02m", "3m07s", "12.3s"
std::string format_significant(double value, int digits = 3);  // printf %.*g: "0.00536", "1e-05", "nan"

}  // namespace detkit
