// `detkit augment --preview` on the torch side: the loader's samples drawn as a grid and written as PNG.
#pragma once

#include "core/torch_plugin.h"
#include "data/raster.h"

namespace detkit::augment {

struct Preview {
  RgbImage image;
  AugmentPreviewResult result;  // width, height and counts (nothing written yet)
};

// The grid for `request` (request.out is not used): up to request.images samples of the split's epoch
// request.epoch, in the loader's order, request.columns per row, each tile request.imgsz square with a
// 4-pixel dark gap. Throws UsageError for an unknown split or no dataset, DataError when not one image of
// the split can be read.
Preview render_preview(const AugmentPreviewRequest& request);

// render_preview, then the PNG written atomically to request.out.
AugmentPreviewResult write_preview(const AugmentPreviewRequest& request);

}  // namespace detkit::augment
