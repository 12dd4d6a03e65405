#include "diag/version.h"

#include <algorithm>
#include <cctype>

namespace detkit::diag {

std::vector<int> version_numbers(const std::string& text) {
  std::vector<int> numbers;
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    long value = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (value < 100000000) value = value * 10 + (text[i] - '0');
      ++i;
    }
    numbers.push_back(static_cast<int>(value));
    // A dot continues the version only when a digit follows it ("12.4." ends at 12.4).
    if (i + 1 < text.size() && text[i] == '.' && std::isdigit(static_cast<unsigned char>(text[i + 1])))
      ++i;
    else
      break;
  }
  return numbers;
}

int compare_versions(const std::string& a, const std::string& b) {
  const auto x = version_numbers(a), y = version_numbers(b);
  for (std::size_t i = 0; i < std::max(x.size(), y.size()); ++i) {
    const int p = i < x.size() ? x[i] : 0, q = i < y.size() ? y[i] : 0;
    if (p != q) return p < q ? -1 : 1;
  }
  return 0;
}

std::string version_prefix(const std::string& text, int parts) {
  const auto n = version_numbers(text);
  std::string out;
  for (int i = 0; i < parts && i < static_cast<int>(n.size()); ++i) out += (i ? "." : "") + std::to_string(n[i]);
  return out;
}

int version_major(const std::string& text) {
  const auto n = version_numbers(text);
  return n.empty() ? -1 : n[0];
}

bool version_matches(const std::string& version, const std::string& prefix) {
  const auto v = version_numbers(version), p = version_numbers(prefix);
  if (p.empty() || v.size() < p.size()) return false;
  for (std::size_t i = 0; i < p.size(); ++i)
    if (v[i] != p[i]) return false;
  return true;
}

std::string cuda_version_from_int(int value) {
  if (value <= 0) return "";
  return std::to_string(value / 1000) + "." + std::to_string((value % 1000) / 10);
}

std::string cudnn_version_from_int(long value) {
  if (value <= 0) return "";
  const long base = value >= 90000 ? 10000 : 1000;
  return std::to_string(value / base) + "." + std::to_string((value % base) / 100) + "." + std::to_string(value % 100);
}

int arch_number(const std::string& text) {
  std::string t = text;
  for (const char* prefix : {"sm_", "compute_"})
    if (t.rfind(prefix, 0) == 0) {
      const auto n = version_numbers(t.substr(std::string(prefix).size()));
      return n.empty() ? -1 : n[0];
    }
  const auto n = version_numbers(t);
  if (n.size() >= 2 && t.find('.') != std::string::npos) return n[0] * 10 + n[1];
  return -1;
}

}  // namespace detkit::diag
