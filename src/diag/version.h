// Version text as the NVIDIA and framework tools print it, compared numerically. Torch-free.
#pragma once

#include <string>
#include <vector>

namespace detkit::diag {

// The leading dotted numbers of `text`: "535.104.05" -> {535, 104, 5}; "2.5.1+cu124" -> {2, 5, 1};
// "12.4" -> {12, 4}. Stops at the first character that is neither a digit nor a dot between digits.
std::vector<int> version_numbers(const std::string& text);

// <0, 0, >0 like strcmp, comparing component by component; a missing component counts as 0, so
// "12.4" == "12.4.0" and "12.4" < "12.10".
int compare_versions(const std::string& a, const std::string& b);

// The first `parts` components joined with dots: ("12.4.127", 2) -> "12.4"; "" when there are none.
std::string version_prefix(const std::string& text, int parts);

// The first component, or -1 when `text` does not start with a number.
int version_major(const std::string& text);

// True when `version` starts with the components of `prefix` ("12.4.1" matches "12.4", not "12.40").
bool version_matches(const std::string& version, const std::string& prefix);

// cuDriverGetVersion / cudaRuntimeGetVersion encoding: 12040 -> "12.4"; "" for values <= 0.
std::string cuda_version_from_int(int value);

// cudnnGetVersion encoding: 8902 -> "8.9.2" (MAJOR*1000 + MINOR*100 + PATCH up to cuDNN 8);
// 90100 -> "9.1.0" (MAJOR*10000 + MINOR*100 + PATCH from cuDNN 9); "" for values <= 0.
std::string cudnn_version_from_int(long value);

// A compute capability as one number: (8, 6) -> 86; "sm_86", "compute_86", "sm_90a" -> 86 / 90;
// "8.6" or "8.6+PTX" -> 86. -1 when `text` is none of these.
int arch_number(const std::string& text);

}  // namespace detkit::diag
