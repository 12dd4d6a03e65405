// `detkit check`: every defect of a detection dataset that would hurt training, found before training,
// each with where it is and the fix; plus the statistics that matter for choosing a model and image size.
// Torch-free. Reads files, never modifies them.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/finding.h"
#include "data/formats_read.h"

namespace detkit {

struct CheckOptions {
  int64_t imgsz = 640;              // planned training size (longest side), for the box-size statistics
  double small_box_px = 8;          // a box whose both sides are smaller than this at imgsz counts as tiny
  int64_t max_boxes_per_image = 300;  // more boxes than this in one image is reported
  double duplicate_iou = 0.95;      // same-class boxes overlapping at least this much are duplicates
  double aspect_outlier = 15;       // boxes longer than this many times their width (or vice versa)
  int64_t max_pixels = 178956970;   // an image header claiming more pixels is a decompression bomb
  bool decode = false;              // also decode every image fully (finds damage inside the data)
};

struct DatasetStats {
  std::size_t images = 0;
  std::size_t annotations = 0;
  std::size_t empty_images = 0;                // images without any box (background; counted, not a defect)
  std::size_t max_boxes_in_image = 0;
  std::map<std::string, std::size_t> images_per_split;
  std::vector<std::pair<std::string, std::size_t>> boxes_per_class;  // by declared class, in order
  double imbalance_ratio = 0;                  // most / least frequent class (0 when a class is unused)
  // Boxes by sqrt(area) in pixels after resizing the image's longest side to imgsz:
  // <8, 8-16, 16-32, 32-64, 64-128, 128-256, >=256.
  std::array<std::size_t, 7> box_size_histogram{};
  std::size_t tiny_boxes = 0;                  // both sides < small_box_px at imgsz
  std::size_t aspect_outliers = 0;
  std::map<std::string, std::size_t> image_sizes;  // "640x480" -> count (displayed size)
};

struct CheckReport {
  std::string format;  // coco, yolo, voc
  std::string root;
  std::vector<Finding> findings;  // reading findings first, then check findings; grouped by kind when printed
  DatasetStats stats;
  CheckOptions options;

  std::size_t count(Severity severity) const;
  // True when any finding is at or above `threshold`.
  bool fails(Severity threshold) const;
};

// Runs every check on `source` (findings from reading are carried over). Uses thread_count() threads for
// reading and hashing images. Throws InterruptedError on Ctrl-C.
CheckReport check_dataset(const DatasetSource& source, const CheckOptions& options = {});

// The readable report: findings grouped by kind (count, first `examples` locations, the fix), then the
// statistics.
std::string format_check_report(const CheckReport& report, std::size_t examples = 3);
// Every finding and statistic as JSON.
std::string check_report_json(const CheckReport& report);

}  // namespace detkit
