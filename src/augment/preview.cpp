#include "augment/preview.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>

#include "augment/draw.h"
#include "augment/loader.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"
#include "data/dataset.h"
#include "data/image_write.h"

namespace detkit::augment {

namespace {

constexpr int kGap = 4;
constexpr Rgb kBackground{32, 32, 32};

}  // namespace

Preview render_preview(const AugmentPreviewRequest& request) {
  if (!request.dataset) throw UsageError({"no dataset given for the augmentation preview"});
  if (request.images < 1 || request.columns < 1) throw UsageError({"the preview needs at least one image and one column"});
  const Dataset& dataset = *request.dataset;
  const Split& split = dataset.split(request.split);
  if (split.images.empty())
    throw UsageError({"split '" + request.split + "' has no images", "", "use --split with a split that has images"});

  LoaderOptions options;
  options.imgsz = request.imgsz;
  options.batch = std::min<int64_t>(request.images, static_cast<int64_t>(split.images.size()));
  options.seed = static_cast<uint64_t>(request.seed);
  options.augment = request.augmented;
  options.recipe = request.augment;
  options.epochs = request.epochs;
  Loader loader(dataset, split, options);
  loader.start_epoch(request.epoch);

  // Tiles in the loader's order; a batch that lost samples to unreadable images is topped up by the next.
  std::vector<at::Tensor> tiles, targets;
  int64_t skipped = 0;  // samples left out (a bad mosaic partner only greys a tile)
  while (static_cast<int64_t>(tiles.size()) < options.batch) {
    auto batch = loader.next();
    if (!batch) break;
    skipped += batch->skipped;
    for (int64_t i = 0; i < batch->images.size(0) && static_cast<int64_t>(tiles.size()) < options.batch; ++i) {
      const auto t = batch->targets;
      const auto mine = t.index_select(0, (t.select(1, 0) == static_cast<double>(i)).nonzero().select(1, 0));
      tiles.push_back(batch->images[i].to(at::kCPU));
      targets.push_back(mine.to(at::kCPU));
    }
  }
  const LoaderStats stats = loader.stats();
  if (tiles.empty())
    throw DataError({"no image of split '" + request.split + "' could be read for the preview", "",
                     "run 'detkit check' on the dataset to see what is wrong with its images"});

  const int s = static_cast<int>(request.imgsz);
  const int n = static_cast<int>(tiles.size());
  const int cols = std::min<int>(static_cast<int>(request.columns), n), rows = (n + cols - 1) / cols;
  Preview out;
  out.image = RgbImage(cols * s + (cols + 1) * kGap, rows * s + (rows + 1) * kGap);
  fill_rect(out.image, 0, 0, out.image.width, out.image.height, kBackground);
  for (int i = 0; i < n; ++i) {
    const int ox = kGap + (i % cols) * (s + kGap), oy = kGap + (i / cols) * (s + kGap);
    RgbImage tile(s, s);
    const auto hwc = tiles[static_cast<std::size_t>(i)].permute({1, 2, 0}).contiguous();
    std::memcpy(tile.pixels.data(), hwc.data_ptr<uint8_t>(), tile.pixels.size());
    const auto boxes = targets[static_cast<std::size_t>(i)].to(at::kDouble).contiguous();
    const auto b = boxes.accessor<double, 2>();
    for (int64_t k = 0; k < boxes.size(0); ++k) {
      const auto cls = static_cast<int64_t>(b[k][1]);
      const std::string name = cls >= 0 && cls < static_cast<int64_t>(dataset.categories.size())
                                   ? dataset.categories[static_cast<std::size_t>(cls)].name
                                   : std::to_string(cls);
      draw_labelled_box(tile, b[k][2], b[k][3], b[k][4], b[k][5], name, class_colour(cls));
    }
    out.result.boxes += boxes.size(0);
    for (int y = 0; y < s; ++y)
      std::memcpy(out.image.at(ox, oy + y), tile.at(0, y), static_cast<std::size_t>(s) * 3);
  }
  out.result.width = out.image.width;
  out.result.height = out.image.height;
  out.result.samples = n;
  out.result.skipped = skipped;
  out.result.bad_files = stats.bad_files;
  return out;
}

AugmentPreviewResult write_preview(const AugmentPreviewRequest& request) {
  if (request.out.empty()) throw UsageError({"no output file given for the augmentation preview", "", "add --preview out.png"});
  Preview preview = render_preview(request);
  write_file_atomic(request.out, encode_png(preview.image));
  return preview.result;
}

}  // namespace detkit::augment
