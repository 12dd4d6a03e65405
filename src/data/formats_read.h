// Reading COCO JSON, YOLO txt and Pascal VOC XML datasets into the in-memory Dataset.
//
// Readers are lenient record by record and strict file by file: a malformed record (a YOLO line with
// four numbers, a VOC object without <bndbox>, a COCO annotation whose bbox is not 4 numbers) becomes
// a Finding naming the file, line or record, and is left out; a file that cannot be read or parsed at
// all (missing data.yaml, invalid JSON or XML) is a DataError naming the file and line. So `check` can
// report every defect, and nothing crashes on bad input. Files are only read, never modified.
//
// Conventions: boxes become xyxy pixels. COCO bbox [x, y, w, h] is taken as is; YOLO "class cx cy w h"
// is normalised by the image's displayed size (after EXIF orientation, as Ultralytics does); VOC corners
// are 1-based inclusive, so x1 = xmin - 1 and x2 = xmax (Detectron2's reading). Category ids: COCO keeps
// its ids; YOLO class index i becomes id i + 1; VOC names get ids 1..N in the order of classes.txt (or
// the reader's `classes`, or order of first appearance).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/fs.h"
#include "data/dataset.h"
#include "data/finding.h"
#include "data/formats_write.h"

namespace detkit {

// The displayed size (width, height) of an image file, or nullopt when it cannot be determined.
using ImageSizeFn = std::function<std::optional<std::pair<int64_t, int64_t>>(const fs::path&)>;

// An ImageSizeFn that reads each image's header (displayed size, EXIF applied); nullopt for an image that
// cannot be read (check reports it).
ImageSizeFn image_size_from_header();

struct ReadOptions {
  std::optional<AnnotationFormat> format;  // nullopt: detect from the path
  std::string images_dir;                  // COCO: directory holding the images (default: searched)
  std::vector<std::string> classes;        // VOC: class names in order (default: classes.txt, else as found)
  ImageSizeFn image_size;                  // YOLO: needed to turn normalised boxes into pixels
};

struct DatasetSource {
  Dataset dataset;
  AnnotationFormat format = AnnotationFormat::coco;
  fs::path root;                            // the dataset directory
  std::vector<std::string> annotation_files;  // what was read
  std::vector<Finding> findings;            // record-level problems met while reading
};

// The layout at `path`: a COCO .json file (or a directory with annotations/*.json), a YOLO data.yaml (or
// a directory holding one), or a VOC directory (Annotations/ and JPEGImages/). nullopt when none fits.
std::optional<AnnotationFormat> detect_annotation_format(const fs::path& path);

// Reads the dataset at `path`. Throws DataError (exit 4) when the layout cannot be recognised or an
// essential file cannot be read or parsed; record-level problems go to DatasetSource::findings.
DatasetSource read_dataset(const fs::path& path, const ReadOptions& options = {});

// Text-level parsers (also the fuzz targets' entry points). `source` names the text in findings and
// errors. They throw DataError only when the whole text is unusable.

// A COCO document: categories, and images with their annotations (annotations on unknown images are
// reported and dropped).
struct CocoDocument {
  std::vector<Category> categories;
  std::vector<ImageRecord> images;
};
CocoDocument parse_coco_dataset_text(const std::string& text, const std::string& source, std::vector<Finding>& findings);

// One YOLO label file. Boxes are returned in pixels of a `width` x `height` image (both > 0), or
// normalised (cxcywh in 0..1 converted to xyxy in 0..1) when the size is unknown (0).
std::vector<Annotation> parse_yolo_label_text(const std::string& text, const std::string& source,
                                              int64_t width, int64_t height, std::vector<Finding>& findings);

// One VOC annotation file. Category ids are left 0: read_dataset() resolves `names` against the classes.
struct VocRecord {
  std::string filename;
  int64_t width = 0, height = 0;
  std::vector<Annotation> annotations;
  std::vector<std::string> names;  // object names, parallel to annotations
};
VocRecord parse_voc_xml_text(const std::string& text, const std::string& source, std::vector<Finding>& findings);

}  // namespace detkit
