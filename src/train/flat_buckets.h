// Private to train/: packing many tensors into one flat tensor for a collective and writing the result
// back, shared by the blocking bucketed collectives (process_group.cpp) and the gradient buckets averaged
// during the backward pass (overlapped_average.cpp).
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace detkit::train {

// `t` with its dimensions in memory order (largest stride first): a contiguous view of any dense tensor,
// NCHW or channels-last alike, so it flattens without a copy and takes its values back in one fused copy.
inline at::Tensor in_memory_order(const at::Tensor& t) {
  std::vector<int64_t> dims(static_cast<std::size_t>(t.dim()));
  for (std::size_t d = 0; d < dims.size(); ++d) dims[d] = static_cast<int64_t>(d);
  std::stable_sort(dims.begin(), dims.end(), [&](int64_t a, int64_t b) { return t.stride(a) > t.stride(b); });
  return t.permute(dims);
}

// One flat tensor of `views`' values, in order (each view flattened as in_memory_order laid it out).
inline at::Tensor pack_flat(const std::vector<at::Tensor>& views) {
  std::vector<at::Tensor> parts;
  parts.reserve(views.size());
  for (const at::Tensor& v : views) parts.push_back(v.reshape({-1}));
  return at::cat(parts);
}

// Writes `flat` (as pack_flat made it from `views`, same device or not) back into `views`.
inline void unpack_flat(const std::vector<at::Tensor>& views, at::Tensor flat) {
  if (views.empty()) return;
  if (flat.device() != views.front().device()) flat = flat.to(views.front().device());
  std::vector<at::Tensor> results;
  results.reserve(views.size());
  bool fused = true;
  int64_t offset = 0;
  for (const at::Tensor& v : views) {
    results.push_back(flat.narrow(0, offset, v.numel()).view(v.sizes()));
    fused = fused && v.is_contiguous() && v.device() == flat.device();
    offset += v.numel();
  }
  if (fused) {  // two fused operators instead of one copy per tensor (a kernel launch each on a GPU)
    at::_foreach_zero_(views);
    at::_foreach_add_(views, results);
  } else {
    for (std::size_t i = 0; i < views.size(); ++i) views[i].copy_(results[i]);
  }
}

}  // namespace detkit::train
