// The in-memory detection dataset: what every annotation format is read into and written from.
// Boxes are held in one explicit format (xyxy, absolute pixels, origin at the top-left corner of the
// top-left pixel); format readers and writers convert at the boundary. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/boxes.h"

namespace detkit {

struct Category {
  int64_t id = 0;    // COCO category id (YOLO class index + 1, VOC position + 1 when converted)
  std::string name;  // unique, as written in the annotations
};

struct Annotation {
  int64_t id = 0;           // unique within the dataset (COCO annotation id)
  int64_t category_id = 0;  // refers to Category::id (may refer to none in a defective dataset)
  Box box;                  // xyxy, pixels
  bool iscrowd = false;     // COCO crowd region
  bool difficult = false;   // VOC difficult flag
  bool truncated = false;   // VOC truncated flag
  int64_t source_line = 0;  // 1-based line of this box in ImageRecord::annotation_file (0: unknown)
};

struct ImageRecord {
  int64_t id = 0;         // unique within the dataset (COCO image id)
  std::string file_name;  // path relative to the split's image directory, e.g. "000012.jpg"
  int64_t width = 0;      // as declared by the annotations (0 when the format does not record it)
  int64_t height = 0;
  std::vector<Annotation> annotations;
  std::string annotation_file;  // the file holding this image's annotations, as read ("" when in memory)
};

struct Split {
  std::string name;       // "train", "val", ...
  std::string image_dir;  // where ImageRecord::file_name is relative to ("" when unknown, e.g. in memory)
  std::vector<ImageRecord> images;
};

struct Dataset {
  std::vector<Category> categories;  // ordered: the order defines YOLO class indices and VOC name order
  std::vector<Split> splits;
  // Classes that annotations use but the dataset does not declare (a YOLO index >= nc, a VOC name missing
  // from classes.txt), by the category id they were given, with the name or index as written.
  std::vector<Category> undeclared;

  // The category with `id`, or nullptr.
  const Category* find_category(int64_t id) const;
  // The split called `name`, or nullptr.
  const Split* find_split(const std::string& name) const;
  // The split called `name`. Throws UsageError naming the splits there are, with `option` (e.g.
  // "--split") in the fix.
  const Split& split(const std::string& name, const std::string& option = "--split") const;
  // Position of `id` in `categories`, or -1.
  int64_t category_index(int64_t id) const;
  std::size_t image_count() const;
  std::size_t annotation_count() const;
};

}  // namespace detkit
