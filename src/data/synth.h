// A deterministic synthetic detection dataset: the embedded default data for the demo and the tests.
//
// Images of several sizes (JPEG and PNG) with shapes of several classes on cluttered, noisy backgrounds;
// object sizes from a few pixels to most of the image (log-uniform, so small objects are common);
// overlapping objects occlude each other. Each box tightly bounds the object's *visible* pixels, and
// objects that are mostly hidden are left out of the picture entirely, so annotations are exact.
// The same options and seed give byte-identical files, whatever the number of threads.
//
// With `plant_defects`, known defects are planted and listed in synth.json, so validators can be tested
// against ground truth.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/fs.h"
#include "data/dataset.h"
#include "data/formats_write.h"
#include "data/raster.h"

namespace detkit {

struct SynthOptions {
  int64_t seed = 0;                 // same seed -> identical dataset (>= 0)
  AnnotationFormat format = AnnotationFormat::coco;  // annotation layout
  int64_t train_images = 64;        // images in the train split
  int64_t val_images = 16;          // images in the val split
  int64_t classes = 5;              // shape classes (1..6): circle, square, triangle, cross, ring, diamond
  int64_t max_objects = 12;         // most objects in one image
  double empty_fraction = 0.05;     // share of images with no objects
  int64_t min_object_px = 4;        // smallest object side in pixels
  double png_fraction = 0.25;       // share of images written as PNG (the rest JPEG)
  int64_t jpeg_quality = 90;        // JPEG quality
  double noise = 12.0;              // per-pixel noise amplitude (0..255 levels)
  std::vector<std::string> sizes = {"640x480", "480x640", "512x512", "416x320", "320x320"};  // WxH choices
  bool plant_defects = false;       // plant known defects and list them in synth.json
  bool simple = false;              // an easy set: no clutter, upright undistorted shapes wholly inside the image
};

// One planted defect: what, where, and how a validator should see it.
struct PlantedDefect {
  std::string kind;     // out_of_bounds_box, degenerate_box, unknown_class, corrupt_image, truncated_image,
                        // duplicate_image, train_val_leakage, exif_rotated, size_mismatch
  std::string split;
  std::string file;     // image path relative to the dataset root
  int64_t image_id = 0;
  int64_t annotation_id = -1;  // -1 when the defect is about the image
  std::string detail;
};

struct SynthResult {
  Dataset dataset;  // the annotations as written (defects included)
  std::vector<PlantedDefect> defects;
  std::vector<std::string> skipped;  // defects that the format cannot express, with the reason
};

// Generates the dataset into `out_dir`, which must not exist or be empty (nothing is ever overwritten).
// Files are written into a temporary sibling directory that is renamed into place at the end, so an
// interrupted run leaves no half dataset. Throws UsageError for invalid options or a non-empty
// `out_dir`, RunError for write failures, InterruptedError on Ctrl-C.
SynthResult generate_synthetic_dataset(const SynthOptions& options, const fs::path& out_dir);

// Generates the annotations and pixels of one image (exposed for tests): `index` is the image's global
// 0-based position; the result is a function of (options, index) alone.
struct SynthImage {
  RgbImage pixels;
  std::vector<Annotation> annotations;  // ids are 0; category ids are 1-based class numbers
  std::vector<int32_t> owner;           // per pixel: index into annotations of the visible object, or -1
};
SynthImage render_synthetic_image(const SynthOptions& options, int64_t index);

// Class names in order; the first `classes` are used.
const std::vector<std::string>& synthetic_class_names();

}  // namespace detkit
