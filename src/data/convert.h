// Converting a dataset between COCO, YOLO and VOC layouts: annotations rewritten, images copied.
// Torch-free.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/fs.h"
#include "data/formats_read.h"

namespace detkit {

struct ConvertResult {
  std::size_t images = 0;       // images written
  std::size_t annotations = 0;  // boxes written
  std::vector<std::string> notes;  // what the target layout cannot hold, images left out, and why
};

// Writes `source` in the `to` layout into `out_dir` (which must not exist or be empty), copying every
// image from its split's image_dir. The source is only read. Written as a whole or not at all
// (StagedDirectory). Images whose file is missing, or (for YOLO, which stores normalised boxes) whose size
// is unknown, are left out and noted; attributes the target cannot hold (VOC difficult/truncated, COCO
// iscrowd) are counted in the notes. Throws UsageError for a non-empty `out_dir`, RunError on write
// failures.
ConvertResult convert_dataset(const DatasetSource& source, AnnotationFormat to, const fs::path& out_dir);

// The bytes to write for `image` (whose file is `from`), or nullopt to copy the file unchanged.
using ImageRewriteFn = std::function<std::optional<std::string>(const ImageRecord& image, const fs::path& from)>;

// What convert_dataset does, for any Dataset whose splits name their image_dir; `rewrite` may replace an
// image's bytes (check --fix writes EXIF-rotated pictures upright); `extra_files` (relative path -> bytes)
// are written too, inside the same all-or-nothing directory.
ConvertResult write_dataset(const Dataset& dataset, AnnotationFormat to, const fs::path& out_dir,
                            const ImageRewriteFn& rewrite = {}, const std::map<std::string, std::string>& extra_files = {});

}  // namespace detkit
