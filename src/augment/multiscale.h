// Multi-scale training (augment.multi_scale): each training batch is resized, images and boxes together,
// to its own square size around imgsz, so the detector learns objects at more scales than the data has.
// On tensors, on whatever device the batch is on (the GPU in a CUDA run).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace detkit::augment {

// The side of training batch `iteration` (counted over the whole run): imgsz x a factor drawn uniformly
// from [1 - fraction, 1 + fraction], rounded down to a multiple of `stride`, and never below `stride`.
// `fraction` 0 gives imgsz. Deterministic in (seed, iteration) and independent of the loader's streams,
// so a resumed run and a batch redone after out-of-memory get the same size.
int64_t multi_scale_size(uint64_t seed, int64_t iteration, int64_t imgsz, double fraction, int64_t stride = 32);

// The largest side multi_scale_size can return (memory planning sizes for it).
int64_t multi_scale_max(int64_t imgsz, double fraction, int64_t stride = 32);

// Resizes float images [B, C, S, S] to [B, C, size, size] (bilinear, pixel centres aligned as in
// data/dataset.h's continuous coordinates) and scales the boxes of targets [M, 6] (image, class, x1, y1,
// x2, y2 in pixels) by size / S, so each box still bounds its object. Returns the inputs unchanged when
// size == S. Needs float images (the model's input); asserts on other shapes.
void rescale_batch(at::Tensor& images, at::Tensor& targets, int64_t size);

}  // namespace detkit::augment
