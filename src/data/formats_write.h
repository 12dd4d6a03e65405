// Writing a Dataset's annotations in the three layouts detkit supports. Each file is written atomically.
// Images are not written here; image_relative_path() says where each layout expects them. Torch-free.
//
// Layouts (ROOT is the dataset directory):
//   coco: ROOT/annotations/instances_<split>.json, images in ROOT/images/<split>/
//   yolo: ROOT/data.yaml, ROOT/labels/<split>/<stem>.txt, images in ROOT/images/<split>/
//   voc:  ROOT/Annotations/<stem>.xml, ROOT/ImageSets/Main/<split>.txt, ROOT/classes.txt (names in order),
//         images in ROOT/JPEGImages/
#pragma once

#include <string>

#include "core/fs.h"
#include "data/dataset.h"

namespace detkit {

enum class AnnotationFormat { coco, yolo, voc };

const char* to_string(AnnotationFormat format);
// Throws UsageError naming the nearest format for an unknown name.
AnnotationFormat parse_annotation_format(const std::string& name);

// Where the image `file_name` of `split` lives, relative to the dataset root.
fs::path image_relative_path(AnnotationFormat format, const std::string& split, const std::string& file_name);

// Writes every split's annotations under `root`. Conventions: COCO bbox is [x, y, w, h] in pixels and
// category ids are kept; YOLO lines are "class cx cy w h" normalised by the declared image size with the
// class index = position in dataset.categories (an annotation whose category is unknown is written with
// index categories.size() + (id - known max), i.e. out of range, so defects survive); VOC boxes are
// 1-based inclusive pixel corners (xmin = x1 + 1, xmax = x2) with the category name (or "unknown-<id>").
// Throws RunError when a file cannot be written.
void write_annotations(const Dataset& dataset, AnnotationFormat format, const fs::path& root);

}  // namespace detkit
