#include "infer/nms.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/text.h"

namespace detkit {

namespace {

void require_shapes(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  if (boxes.dim() != 2 || boxes.size(1) != 4 || scores.dim() != 1 || scores.size(0) != boxes.size(0))
    throw UsageError({cat("NMS needs boxes [N, 4] and scores [N]; got ", boxes.sizes(), " and ", scores.sizes()), "",
                      "pass xyxy boxes and one score per box"});
  if (!(iou_threshold >= 0 && iou_threshold <= 1))
    throw UsageError({cat("NMS IoU threshold must be in [0, 1]; got ", iou_threshold), "", "use e.g. 0.7"});
}

// Greedy NMS in the boxes' own precision, as torchvision's CPU kernel computes it.
template <class T>
std::vector<int64_t> nms_kernel(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  const int64_t n = boxes.size(0);
  std::vector<int64_t> keep;
  if (n == 0) return keep;
  const at::Tensor b = boxes.contiguous();
  const T* x = b.data_ptr<T>();
  std::vector<T> areas(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) areas[i] = (x[4 * i + 2] - x[4 * i]) * (x[4 * i + 3] - x[4 * i + 1]);
  const at::Tensor order_t = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const int64_t* order = order_t.data_ptr<int64_t>();
  std::vector<char> suppressed(static_cast<std::size_t>(n), 0);
  for (int64_t o = 0; o < n; ++o) {
    const int64_t i = order[o];
    if (suppressed[i]) continue;
    keep.push_back(i);
    const T ix1 = x[4 * i], iy1 = x[4 * i + 1], ix2 = x[4 * i + 2], iy2 = x[4 * i + 3], iarea = areas[i];
    for (int64_t p = o + 1; p < n; ++p) {
      const int64_t j = order[p];
      if (suppressed[j]) continue;
      const T w = std::max(static_cast<T>(0), std::min(ix2, x[4 * j + 2]) - std::max(ix1, x[4 * j]));
      const T h = std::max(static_cast<T>(0), std::min(iy2, x[4 * j + 3]) - std::max(iy1, x[4 * j + 1]));
      const T inter = w * h;
      const T iou = inter / (iarea + areas[j] - inter);
      if (iou > iou_threshold) suppressed[j] = 1;
    }
  }
  return keep;
}

std::vector<int64_t> run_nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  if (boxes.scalar_type() == at::kDouble) return nms_kernel<double>(boxes, scores, iou_threshold);
  return nms_kernel<float>(boxes.to(at::kFloat), scores, iou_threshold);
}

at::Tensor to_tensor(std::vector<int64_t> keep) {
  return at::tensor(keep, at::TensorOptions().dtype(at::kLong));
}

}  // namespace

at::Tensor nms(const at::Tensor& boxes_in, const at::Tensor& scores_in, double iou_threshold) {
  require_shapes(boxes_in, scores_in, iou_threshold);
  return to_tensor(run_nms(boxes_in.cpu(), scores_in.cpu(), iou_threshold));
}

at::Tensor batched_nms(const at::Tensor& boxes_in, const at::Tensor& scores_in, const at::Tensor& classes_in,
                       double iou_threshold) {
  require_shapes(boxes_in, scores_in, iou_threshold);
  if (classes_in.dim() != 1 || classes_in.size(0) != boxes_in.size(0))
    throw UsageError({cat("NMS needs one class per box; got ", classes_in.sizes(), " for ", boxes_in.size(0), " boxes"), "",
                      "pass classes [N]"});
  const at::Tensor boxes = boxes_in.cpu(), scores = scores_in.cpu(), classes = classes_in.cpu();
  const int64_t n = boxes.size(0);
  if (n == 0) return at::empty({0}, at::TensorOptions().dtype(at::kLong));
  if (boxes.numel() <= 4000) {
    // Shift each class's boxes past every other class's, then one NMS: torchvision's small-N path.
    const at::Tensor offsets = classes.to(boxes.scalar_type()) * (boxes.max() + at::ones({}, boxes.options()));
    return to_tensor(run_nms(boxes + offsets.unsqueeze(1), scores, iou_threshold));
  }
  // One NMS per class, then all kept boxes in decreasing score order: torchvision's large-N path.
  std::vector<int64_t> kept_indices;
  const at::Tensor unique = std::get<0>(at::_unique(classes));
  for (int64_t u = 0; u < unique.size(0); ++u) {
    const at::Tensor members = at::nonzero(classes == unique[u]).view({-1}).contiguous();
    const int64_t* member = members.data_ptr<int64_t>();
    for (int64_t k : run_nms(boxes.index_select(0, members), scores.index_select(0, members), iou_threshold))
      kept_indices.push_back(member[k]);
  }
  std::sort(kept_indices.begin(), kept_indices.end());
  const at::Tensor kept = to_tensor(kept_indices);
  const at::Tensor order = std::get<1>(scores.index_select(0, kept).sort(/*dim=*/0, /*descending=*/true));
  return kept.index_select(0, order);
}

}  // namespace detkit
