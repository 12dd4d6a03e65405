// `detkit check --fix`: a cleaned copy of a dataset, and a quarantine list of everything changed or
// removed and why. The input is never modified. Torch-free.
#pragma once

#include <string>
#include <vector>

#include "data/check.h"
#include "data/convert.h"

namespace detkit {

struct QuarantineEntry {
  std::string action;  // "image removed", "box removed", "box clipped", "turned upright", ...
  Finding finding;     // why
};

struct FixResult {
  ConvertResult written;
  std::vector<QuarantineEntry> entries;
  std::size_t images_removed = 0, boxes_removed = 0, boxes_clipped = 0, images_rewritten = 0, sizes_corrected = 0;
};

// Writes `source` minus its defects, as `report` found them, to `out_dir` (which must not exist or be
// empty), in the source's layout, with OUT_DIR/quarantine.json listing every entry. What it does:
//   - removes images that are missing, empty, unreadable, corrupt, truncated, unsupported or too large;
//     the later copy of a duplicate image (so a train/val leak leaves validation); repeated entries;
//   - clips boxes that leave the image partly; removes boxes entirely outside, degenerate, inverted,
//     non-finite or of an undeclared class, and the second of two duplicate boxes;
//   - writes EXIF-rotated pictures upright (annotations match the upright view), and pictures whose boxes
//     were drawn on the stored view as stored, both without the orientation tag;
//   - corrects a declared image size that differs from the file when every box fits the real size, and
//     removes the image otherwise (its boxes belong to another version of the picture).
// Records the reader could not use are already left out; they are listed too. Findings about the whole
// dataset (unused classes, name variants) need a person and are left as they are.
// Throws UsageError for a non-empty `out_dir`, RunError on write failures, DataError if an image that
// needs rewriting cannot be decoded.
FixResult fix_dataset(const DatasetSource& source, const CheckReport& report, const fs::path& out_dir);

}  // namespace detkit
