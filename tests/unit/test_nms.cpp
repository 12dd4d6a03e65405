#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "infer/nms.h"
#include "test_util.h"

using namespace detkit;

namespace {
std::vector<int64_t> as_vector(const at::Tensor& t) { return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel()}; }
}  // namespace

TEST(Nms, HandWorkedExample) {
  // Boxes 0 and 1 overlap with IoU 81/100 = 0.81; box 2 is apart; box 3 equals box 0 but is another class.
  const at::Tensor boxes = at::tensor({0.f, 0.f, 10.f, 10.f, 1.f, 1.f, 10.f, 10.f, 50.f, 50.f, 60.f, 60.f, 0.f, 0.f, 10.f, 10.f}).view({4, 4});
  const at::Tensor scores = at::tensor({0.9f, 0.8f, 0.7f, 0.6f});
  const at::Tensor classes = at::tensor({int64_t(0), int64_t(0), int64_t(0), int64_t(1)});
  EXPECT_EQ(as_vector(batched_nms(boxes, scores, classes, 0.5)), (std::vector<int64_t>{0, 2, 3}));
  EXPECT_EQ(as_vector(batched_nms(boxes, scores, classes, 0.85)), (std::vector<int64_t>{0, 1, 2, 3}));  // 0.81 is not > 0.85
  EXPECT_EQ(as_vector(nms(boxes, scores, 0.5)), (std::vector<int64_t>{0, 2}));  // one class: 3 duplicates 0
  EXPECT_EQ(batched_nms(boxes.slice(0, 0, 0), scores.slice(0, 0, 0), classes.slice(0, 0, 0), 0.5).numel(), 0);
}

TEST(Nms, BadShapesAreUsageErrors) {
  const at::Tensor boxes = at::zeros({3, 4});
  EXPECT_THROW_WITH(nms(boxes, at::zeros({2}), 0.5), UsageError, "NMS needs boxes [N, 4] and scores [N]", "one score per box");
  EXPECT_THROW_WITH(nms(at::zeros({3, 5}), at::zeros({3}), 0.5), UsageError, "[3, 5]", "xyxy");
  EXPECT_THROW_WITH(nms(boxes, at::zeros({3}), 1.5), UsageError, "must be in [0, 1]", "0.7");
  EXPECT_THROW_WITH(batched_nms(boxes, at::zeros({3}), at::zeros({2}, at::kLong), 0.5), UsageError, "one class per box",
                    "classes [N]");
}
