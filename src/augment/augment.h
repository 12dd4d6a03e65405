// Box-aware data augmentation on tensors (torch side: built into the LibTorch plugin).
//
// Every operation transforms an image and its boxes together, so a box never drifts from its object.
// The ops are plain tensor code (no OpenCV), so the same functions run on the CPU in the loader's
// threads or on the GPU on a whole device-side image.
//
// Conventions (all ops)
//   - Sample::image is an RGB image, channels first [3, H, W], uint8 or float32 (levels 0..255). Ops
//     return the dtype and device they were given. to_chw() turns an [H, W, 3] image into this layout.
//   - Boxes are float32 [N, 4] xyxy in pixels, in continuous coordinates whose origin is the top-left
//     corner of the top-left pixel (data/dataset.h): pixel (i, j) covers [j, j+1) x [i, i+1). So a flip
//     maps x to W - x exactly, and a resize by s maps x to s * x.
//   - After every op each box lies inside the image (0 <= x1 < x2 <= W, same for y). A box whose visible
//     part is less than BoxFilter::min_visible of its transformed area, or narrower or lower than
//     BoxFilter::min_box_px, is dropped together with its label.
//   - An image without boxes ([0, 4] boxes) goes through every op.
//   - Randomness comes only from an explicit Rng, never from LibTorch's global generator, so a sample is
//     a function of (seed, epoch, index) alone, whatever thread computes it.
//
// Errors: ops check their inputs with DETKIT_ASSERT (a wrong shape is a bug in the caller, not user
// input); LibTorch failures are translated by the callers at the plugin boundary (guard_torch).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "core/run_config.h"

namespace detkit::augment {

// The grey that fills the area an op uncovers (YOLOv5's 114), so padding looks the same everywhere.
inline constexpr int kFillLevel = 114;

struct Sample {
  at::Tensor image;   // [3, H, W] RGB, uint8 or float32 in 0..255
  at::Tensor boxes;   // [N, 4] float32 xyxy pixels
  at::Tensor labels;  // [N] int64 class index (0-based)

  int64_t width() const { return image.size(2); }
  int64_t height() const { return image.size(1); }
  int64_t box_count() const { return boxes.size(0); }
};

// A sample from an image (CHW, or HWC with 3 channels last) and boxes ([N, 4], any float dtype, may be
// undefined for none) with labels ([N], may be undefined for none). Boxes are clipped to the image.
Sample make_sample(const at::Tensor& image, const at::Tensor& boxes, const at::Tensor& labels);
// Sets `sample`'s boxes and labels to owned tensors copied from flat x1, y1, x2, y2 floats (4 per label)
// and their labels, as they are (no clipping).
void set_boxes(Sample& sample, const std::vector<float>& xyxy, const std::vector<int64_t>& labels);
// [H, W, 3] -> [3, H, W] (contiguous). A tensor already [3, H, W] is returned contiguous.
at::Tensor to_chw(const at::Tensor& image);

// A small, portable random generator (xoshiro256** seeded through splitmix64): the same numbers on every
// platform and standard library, unlike std::uniform_real_distribution. Not thread-safe: one per sample.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  // The generator of sample `index` in `epoch` for a run seeded with `seed`.
  static Rng for_sample(uint64_t seed, int64_t epoch, int64_t index);
  uint64_t next();
  double uniform();                       // [0, 1)
  double uniform(double lo, double hi);   // [lo, hi)
  bool chance(double p);                  // true with probability p; always draws, so streams stay aligned
  int64_t below(int64_t n);               // uniform in [0, n), n > 0
  double normal();                        // standard normal
  double beta(double a, double b);        // Beta(a, b), a, b >= 1

 private:
  uint64_t s_[4];
};

struct BoxFilter {
  double min_visible = 0.2;  // keep a box when at least this fraction of its (transformed) area stays inside
  double min_box_px = 2.0;   // and both its sides are at least this many pixels
  static BoxFilter from(const AugmentConfig& config) { return {config.min_visible, config.min_box_px}; }
};

enum class Interp { bilinear, nearest };

// ---- Geometric ops ---------------------------------------------------------------------------------

Sample flip_horizontal(const Sample& sample);
Sample flip_vertical(const Sample& sample);

// Resized to `width` x `height` (boxes scaled with it). Bilinear shrinking by more than 2 is antialiased
// (each output pixel averages the source pixels it covers, as PIL does), so small objects do not shimmer;
// above half size plain bilinear already reads every source pixel.
Sample resize(const Sample& sample, int64_t width, int64_t height, Interp interp = Interp::bilinear);

// Resized so its longer side is `size` (aspect ratio kept), then padded with kFillLevel to size x size,
// centred. `scale` and `pad_x`, `pad_y` map original coordinates to letterboxed ones: x' = x*scale + pad_x.
struct Letterboxed {
  Sample sample;
  double scale = 1;
  int64_t pad_x = 0, pad_y = 0;
};
Letterboxed letterbox(const Sample& sample, int64_t size, Interp interp = Interp::bilinear);

// The pixels [x0, x1) x [y0, y1) (inside the image), boxes shifted, clipped and filtered.
Sample crop(const Sample& sample, int64_t x0, int64_t y0, int64_t x1, int64_t y1, const BoxFilter& filter);

// A random crop (each side 30..100 % of the image's side, drawn independently) that keeps at least
// `min_coverage` of the area of at least one box; tried up to 50 times, else the sample is returned
// unchanged. An image without boxes accepts the first crop. (The SSD recipe, with coverage instead of IoU
// so small objects are not always rejected.)
Sample random_crop(const Sample& sample, Rng& rng, double min_coverage, const BoxFilter& filter);

// A 2x3 affine map from source pixel coordinates to output pixel coordinates: x' = m0 x + m1 y + m2,
// y' = m3 x + m4 y + m5 (continuous coordinates, see above).
struct Affine {
  std::array<double, 6> m{1, 0, 0, 0, 1, 0};
  Affine then(const Affine& next) const;  // `next` applied after this
  Affine inverse() const;
};

// The random affine of the YOLO recipe for a `src_w` x `src_h` image mapped into `out_w` x `out_h`:
// the source centre is moved to the origin, rotated by +/- degrees and scaled by 1 +/- scale, sheared by
// +/- shear degrees in x and y, then moved to (0.5 +/- translate) of the output size.
Affine random_affine(Rng& rng, const AugmentConfig& config, int64_t src_w, int64_t src_h, int64_t out_w, int64_t out_h);

// The image warped by `map` into `out_w` x `out_h` (uncovered pixels kFillLevel). Each box's four corners
// are mapped and their bounding box taken, then clipped and filtered (the visible fraction is measured
// against the mapped box before clipping). A map without rotation or shear (the default recipe) is done
// as crop + resize + paste, several times faster than per-pixel resampling; its scale and offset are then
// rounded to whole output pixels (under a pixel from `map`) and the boxes follow the map actually applied.
Sample warp_affine(const Sample& sample, const Affine& map, int64_t out_w, int64_t out_h, const BoxFilter& filter,
                   Interp interp = Interp::bilinear);

// Four images on a 2*size x 2*size canvas around a random centre in [size/2, 3*size/2) in x and y: image 0
// ends at the centre (top left), 1 starts right of it, 2 below, 3 below right, each cut by the canvas
// edge. Boxes follow their image; those cut by the canvas are filtered. Images should already have their
// longer side equal to `size` (larger ones are cut).
Sample mosaic(const std::array<Sample, 4>& tiles, int64_t size, Rng& rng, const BoxFilter& filter);

// A mosaic around a given centre (xc, yc) followed by an axis-aligned affine `map` (scale and translation:
// the default recipe) into out_w x out_h, in one resampling. Each tile is first scaled so its longer side
// is `size` (as the loader's load() does), then placed as mosaic() places it. On the CPU with uint8 tiles
// each output pixel is read straight from its tile (bilinear in 8-bit fixed point, antialiased when the
// tile shrinks by more than 2; the output pixel goes to the tile whose canvas window holds its centre), and
// boxes follow the same continuous map exactly; mosaic() then warp_affine() everywhere else (another
// device, float images, rotation or shear), with the tiles scaled first.
Sample mosaic_affine(const std::array<Sample, 4>& tiles, int64_t size, int64_t xc, int64_t yc, const Affine& map,
                     int64_t out_w, int64_t out_h, const BoxFilter& filter, Interp interp = Interp::bilinear);

// letterbox(sample, size) followed by warp_affine(map), in one resampling on the CPU fast path (as above).
Sample letterbox_affine(const Sample& sample, int64_t size, const Affine& map, int64_t out_w, int64_t out_h,
                        const BoxFilter& filter, Interp interp = Interp::bilinear);

// a * ratio + b * (1 - ratio), boxes of both. Both images must have the same size.
Sample mixup(const Sample& a, const Sample& b, double ratio);

// ---- Colour ----------------------------------------------------------------------------------------

// A colour change as one 3x3 matrix and offset on RGB levels, so it costs one small matmul and runs on
// the GPU unchanged (uint8 images on the CPU: the same matrix in 14-bit fixed point, per pixel, within a
// level of the float result). Hue is a rotation about the grey axis (the linear form of an HSV hue shift: greys
// stay grey); saturation blends with the BT.601 luma; value multiplies; contrast scales around the
// image's mean luma; brightness adds levels.
struct ColorJitter {
  double hue = 0;         // fraction of the hue circle, -0.5..0.5
  double saturation = 1;  // gain (0: grey)
  double value = 1;       // gain
  double contrast = 1;    // gain around the mean
  double brightness = 0;  // offset, fraction of 255
  static ColorJitter random(Rng& rng, const AugmentConfig& config);
};
Sample adjust_color(const Sample& sample, const ColorJitter& jitter);

// ---- The recipe ------------------------------------------------------------------------------------

// Returns the sample at `index`, at any size: the recipe scales it so its longer side is `size` (aspect
// kept), in the same resampling as the affine where it can (the loader gives its decoded image, possibly
// from its RAM cache at training size). May throw (a corrupt image is a DataError naming the file).
using LoadFn = std::function<Sample(int64_t index)>;

struct RecipeOptions {
  AugmentConfig config;
  int64_t size = 640;        // output images are size x size
  bool mosaic = true;        // false in the last close_mosaic epochs (and for validation-like previews)
  Interp interp = Interp::bilinear;
};

// The training recipe for sample `index` of `count`: with probability config.mosaic a mosaic of it and
// three random others, else it letterboxed after an optional random crop (config.crop); then the random
// affine; with probability config.mixup a second such image blended in (ratio ~ Beta(32, 32)); then
// colour jitter and flips. All randomness from `rng`. Tiles of a mosaic or mixup whose load throws a
// DataError are left grey (the error is given to `on_partner_error` when set); a failure to load `index`
// itself propagates.
Sample apply_recipe(int64_t index, int64_t count, const LoadFn& load, const RecipeOptions& options, Rng& rng,
                    const std::function<void(int64_t index, const std::exception&)>& on_partner_error = {});

// Clips boxes to [0, width] x [0, height] and keeps those passing `filter`, measuring visibility against
// `reference_area` per box (the area before clipping). Exposed for tests.
Sample filter_boxes(Sample sample, const at::Tensor& reference_area, const BoxFilter& filter);

}  // namespace detkit::augment
