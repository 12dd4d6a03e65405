#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>

#include "infer/postprocess.h"
#include "models/loss.h"
#include "models/yolo.h"
#include "test_util.h"

using namespace detkit;
using namespace detkit::models;

// The architecture's published sizes (YOLOv8's model summaries for 80 classes: 3,157,200 / 11,166,560 /
// 25,902,640 parameters, of which the 16 distance bins are not trained). Equal counts at every scale are a
// strong check that every block, width and depth rule is built as designed.
TEST(YoloModel, ParameterCountsMatchThePublishedArchitecture) {
  EXPECT_EQ(summarize_model("yolo-n", 80, 640).parameters, 3157200);
  EXPECT_EQ(summarize_model("yolo-n", 80, 640).trainable, 3157184);
  EXPECT_EQ(summarize_model("yolo-s", 80, 64).parameters, 11166560);  // counts do not depend on imgsz
  EXPECT_EQ(summarize_model("yolo-m", 80, 64).parameters, 25902640);
}

TEST(YoloModel, OutputsOneGridPerStrideAndCountsFlops) {
  const ModelSummary s = summarize_model("yolo-n", 3, 416);
  EXPECT_EQ(s.strides, (std::vector<int64_t>{8, 16, 32}));
  EXPECT_EQ(s.level_shapes, (std::vector<std::vector<int64_t>>{{52, 52}, {26, 26}, {13, 13}}));
  // 2 x multiply-accumulates of every convolution; YOLOv8n is quoted at 8.7 GFLOPs at 640 with 80 classes.
  const double at_640 = summarize_model("yolo-n", 80, 640).gflops;
  EXPECT_GT(at_640, 8.0);
  EXPECT_LT(at_640, 9.5);
  YoloOptions options;
  options.scale = yolo_scale("yolo-n");
  options.classes = 3;
  YoloDetector net(options);
  const auto out = net->forward(at::rand({2, 3, 64, 96}));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].box.sizes(), (std::vector<int64_t>{2, 64, 8, 12}));
  EXPECT_EQ(out[0].cls.sizes(), (std::vector<int64_t>{2, 3, 8, 12}));
  EXPECT_EQ(out[2].cls.sizes(), (std::vector<int64_t>{2, 3, 2, 3}));
}

TEST(YoloModel, BadRequestsAreUsageErrors) {
  EXPECT_THROW_WITH(yolo_scale("yolo-x"), UsageError, "unknown model 'yolo-x'", "did you mean 'yolo-");
  EXPECT_THROW_WITH(summarize_model("yolo-n", 80, 650), UsageError, "650 is not a positive multiple of 32", "--imgsz 672");
  EXPECT_THROW_WITH(summarize_model("yolo-n", 0, 640), UsageError, "at least one class", "--classes 1");
}

TEST(YoloModel, TheStride4LevelAddsAFinerGridThatTrainsAndDecodes) {
  using namespace detkit::models;
  YoloOptions options;
  options.scale = yolo_scale("yolo-n");
  options.classes = 3;
  options.stride4 = true;
  YoloDetector net(options);
  EXPECT_EQ(net->strides(), (std::vector<int64_t>{4, 8, 16, 32}));
  const auto outputs = net->forward(at::rand({2, 3, 64, 64}));
  ASSERT_EQ(outputs.size(), 4u);
  const int64_t expected_grids[] = {16, 8, 4, 2};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(outputs[i].stride, net->strides()[i]);
    EXPECT_EQ(outputs[i].box.size(2), expected_grids[i]);
    EXPECT_EQ(outputs[i].cls.size(1), 3);
  }
  // A 3 px box: no stride-8 anchor centre can fall inside it, a stride-4 one can (centre at 6, 6).
  const at::Tensor targets = at::tensor({0.f, 1.f, 4.5f, 4.5f, 7.5f, 7.5f}).view({1, 6});
  const LossTerms terms = DetectionLoss()(outputs, targets, 2);
  EXPECT_TRUE(std::isfinite(terms.total.item<double>()));
  EXPECT_GT(terms.box.item<double>(), 0);  // the box is assigned, so it has a box loss
  terms.total.backward();
  const auto detections = detkit::postprocess(net->forward(at::rand({1, 3, 64, 64})));
  ASSERT_EQ(detections.size(), 1u);
  // Without the level the same model family has 4x fewer anchors.
  options.stride4 = false;
  EXPECT_EQ(YoloDetector(options)->forward(at::rand({1, 3, 64, 64})).size(), 3u);
  const auto with = summarize_model("yolo-n", 3, 640, true), without = summarize_model("yolo-n", 3, 640, false);
  // The finer level costs compute (a 160x160 grid at 640), not parameters: its heads are narrower.
  EXPECT_GT(with.gflops, without.gflops * 1.3);
  EXPECT_EQ(with.level_shapes.front(), (std::vector<int64_t>{160, 160}));
}
