// `detkit detect`: a trained checkpoint on image files, in batches, writing
//   OUT/predictions.json   COCO results (image_id = position of the image in `sources` + 1, category_id =
//                          class index + 1) with OUT/images.json mapping ids to files and class names
//   OUT/labels/NAME.txt    YOLO lines "class cx cy w h score" (normalised)
//   OUT/NAME.jpg           the image with boxes, class names and scores drawn (save_images)
// Unreadable images are logged with their file name, counted in DetectResult::failed and skipped. Every
// file is written atomically; inputs are never modified.
#pragma once

#include "core/torch_plugin.h"

namespace detkit::infer {

// Throws UsageError (no sources, bad thresholds), DataError (the checkpoint).
DetectResult detect(const DetectRequest& request);

}  // namespace detkit::infer
