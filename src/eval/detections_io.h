// Writing detections to disk: the COCO results format (what `detkit eval --detections` and pycocotools'
// loadRes read) and YOLO txt files, one per image. Torch-free.
//
// Needs: detections in coco_eval.h's CocoDetection (boxes xywh in pixels, score in any finite range).
// Guarantees: every file is written atomically (write_file_atomic: a reader sees the old file or the new
// one, never a torn one); inputs are never modified; the output depends only on the inputs (fixed number
// formatting, no locale). Detections are written in the order given (COCO) or by score, highest first
// (YOLO).
// Throws: DataError naming the detection (its 0-based position in the vector) or the image when a value
// cannot be written faithfully; RunError when a file cannot be written.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "eval/coco_eval.h"

namespace detkit {

// The COCO results document: [{"image_id": 1, "category_id": 3, "bbox": [x, y, w, h], "score": s}, ...],
// one record per line. Boxes are rounded to 1/1000 pixel and scores to 6 significant digits: far below
// any IoU or ranking difference that matters, and a results file a third the size of full precision.
// (Scores that differ only past the 6th digit become ties; COCOeval breaks ties by file order, which is
// kept.) parse_coco_detections reads it back to the rounded values.
// Throws DataError for a non-finite box or score (JSON cannot hold them; a diverged model produces them).
std::string coco_results_to_json(const std::vector<CocoDetection>& detections);

// Writes coco_results_to_json(detections) to `path` atomically. Throws DataError or RunError.
void write_coco_results(const std::filesystem::path& path, const std::vector<CocoDetection>& detections);

// An image as YOLO txt output needs it.
struct YoloImageInfo {
  int64_t image_id = 0;
  std::string file_name;  // the image file; the txt file is named after its stem ("a/000012.jpg" -> 000012.txt)
  double width = 0;       // pixels, > 0
  double height = 0;      // pixels, > 0
};

// Writes one DIR/<stem>.txt per image of `images`, each line "class cx cy w h score": the class index from
// `class_index` (category id -> YOLO class index), the box centre and size normalised by the image size,
// with 6 decimals. Boxes are not clipped (a box past the image edge gives values outside [0, 1], as the
// detections said). Lines are sorted by score, highest first (ties in input order). An image without
// detections gets an empty file, so "no detections" and "not processed" can be told apart. Other files in
// `dir` are left alone; `dir` is created when missing.
// Throws DataError naming the record for: a detection on an image not in `images`, a category missing
// from `class_index`, a non-finite box or score, an image with non-positive or non-finite size, two images
// with the same id or the same txt name. Nothing is written when the inputs are invalid. RunError when a
// file cannot be written.
void write_yolo_detections(const std::filesystem::path& dir, const std::vector<CocoDetection>& detections,
                           const std::vector<YoloImageInfo>& images, const std::map<int64_t, int64_t>& class_index);

}  // namespace detkit
