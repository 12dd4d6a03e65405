// A finding: one defect or notable fact about a dataset, with where it is and how to fix it.
// Produced by the annotation readers (record-level problems) and by `check` (everything else).
// Torch-free.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace detkit {

enum class Severity { info = 0, warning = 1, error = 2 };

const char* to_string(Severity severity);
// "info", "warning" (or "warn"), "error"; nullopt otherwise.
std::optional<Severity> parse_severity(const std::string& name);

struct Finding {
  std::string kind;                    // stable id, e.g. "out_of_bounds_box" (documented in docs/check.md)
  Severity severity = Severity::error;
  std::string file;                    // the file it is about: an annotation file or an image
  int64_t line = 0;                    // 1-based line in `file`, 0 when not applicable
  std::string record;                  // "annotation id 17", "object 3", "" when the whole file
  std::string split;                   // "train", "val", "" when not split-specific
  std::string image;                   // image path (as the dataset names it), "" when none
  int64_t image_id = -1;
  int64_t annotation_id = -1;
  std::string message;                 // what is wrong, with the numbers
  std::string remedy;                  // what to do about it

  // "FILE:LINE (RECORD)" as printed in reports.
  std::string location() const;
};

}  // namespace detkit
