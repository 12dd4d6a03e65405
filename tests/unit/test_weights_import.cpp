// Weights from other files onto a YoloDetector (models/weights_import.h): detkit checkpoints of another
// class count or scale, `detkit import` round trips, and freeze=. Files written by python3-torch (state
// dicts, Ultralytics-layout module trees) are covered by tests/reference/test_import_reference.py.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/module.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/checkpoint.h"
#include "models/weights_import.h"
#include "models/yolo.h"
#include "pt_samples.h"
#include "test_util.h"

using namespace detkit;
using namespace detkit::models;
using detkit::testing::TempDir;

namespace {

YoloDetector detector(const std::string& scale, int64_t classes, uint64_t seed) {
  at::manual_seed(seed);
  YoloOptions options;
  options.scale = yolo_scale(scale);
  options.classes = classes;
  YoloDetector net(options);
  // Non-default running statistics, so a buffer that is not copied would show.
  torch::NoGradGuard no_grad;
  for (auto& b : net->named_buffers(true))
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
  return net;
}

fs::path save(YoloDetector& net, const fs::path& path, std::vector<std::string> names) {
  nlohmann::json meta;
  meta["format"] = kCheckpointFormat;
  meta["model"] = net->options().scale.name;
  meta["class_names"] = names;
  meta["imgsz"] = 320;
  write_checkpoint(path, serialize_checkpoint(net, nullptr, nullptr, meta));
  return path;
}

}  // namespace

TEST(WeightsImport, SameClassesLoadEveryTensorBitExactly) {
  TempDir dir;
  YoloDetector source = detector("yolo-n", 3, 1);
  const fs::path file = save(source, dir / "a.pt", {"a", "b", "c"});
  YoloDetector target = detector("yolo-n", 3, 2);
  const ImportResult r = load_weights_into(target, file.string(), "yolo-n");
  EXPECT_EQ(r.container, "detkit");
  EXPECT_EQ(r.count("new"), 0);
  EXPECT_EQ(r.count("unused"), 0);
  EXPECT_EQ(r.count("loaded"), static_cast<int64_t>(target->named_parameters(true).size() + target->named_buffers(true).size()));
  for (const auto& p : source->named_parameters(true)) EXPECT_TRUE(at::equal(p.value(), target->named_parameters(true)[p.key()])) << p.key();
  for (const auto& b : source->named_buffers(true)) EXPECT_TRUE(at::equal(b.value(), target->named_buffers(true)[b.key()])) << b.key();
}

TEST(WeightsImport, AnotherClassCountReinitialisesOnlyTheClassOutputLayers) {
  TempDir dir;
  YoloDetector source = detector("yolo-s", 5, 3);
  const fs::path file = save(source, dir / "five.pt", {"a", "b", "c", "d", "e"});
  YoloDetector target = detector("yolo-s", 2, 4);
  const at::Tensor fresh_bias = target->named_parameters(true)["cls_heads.0.2.conv.bias"].clone();
  const ImportResult r = load_weights_into(target, file.string(), "yolo-s");
  std::vector<std::string> fresh;
  for (const auto& row : r.rows)
    if (row.status == "new") fresh.push_back(row.target);
  EXPECT_EQ(fresh, (std::vector<std::string>{"cls_heads.0.2.conv.weight", "cls_heads.0.2.conv.bias", "cls_heads.1.2.conv.weight",
                                             "cls_heads.1.2.conv.bias", "cls_heads.2.2.conv.weight", "cls_heads.2.2.conv.bias"}));
  // The class branch's hidden layers keep their trained weights (their width does not depend on 2 vs 5).
  EXPECT_TRUE(at::equal(source->named_parameters(true)["cls_heads.1.0.conv.weight"], target->named_parameters(true)["cls_heads.1.0.conv.weight"]));
  EXPECT_TRUE(at::equal(fresh_bias, target->named_parameters(true)["cls_heads.0.2.conv.bias"]));
  EXPECT_NE(std::find_if(r.notes.begin(), r.notes.end(), [](const std::string& n) { return n.find("5 classes, the model 2") != std::string::npos; }),
            r.notes.end());
}

TEST(WeightsImport, AnotherScaleIsAConfigErrorNamingTheScaleToSet) {
  TempDir dir;
  YoloDetector source = detector("yolo-s", 3, 5);
  const fs::path file = save(source, dir / "s.pt", {"a", "b", "c"});
  YoloDetector target = detector("yolo-n", 3, 6);
  EXPECT_THROW_WITH(load_weights_into(target, file.string(), "yolo-n"), ConfigError, "are a yolo-s, the run builds a yolo-n",
                    "set model=yolo-s");
  EXPECT_EQ(read_architecture(file.string()).model, "yolo-s");
}

TEST(WeightsImport, ImportWritesACheckpointThatLoadsAsAModel) {
  TempDir dir;
  YoloDetector source = detector("yolo-n", 3, 7);
  const fs::path file = save(source, dir / "src.pt", {"a", "b", "c"});
  ImportRequest request;
  request.file = file.string();
  request.out = (dir / "out.pt").string();
  request.class_names = {"x", "y", "z"};
  const ImportResult r = import_weights(request);
  EXPECT_EQ(r.model, "yolo-n");
  EXPECT_EQ(r.imgsz, 320);
  const LoadedModel loaded = load_model(request.out, c10::Device(c10::kCPU));
  EXPECT_EQ(loaded.class_names, (std::vector<std::string>{"x", "y", "z"}));
  for (const auto& p : source->named_parameters(true)) EXPECT_TRUE(at::equal(p.value(), loaded.model->named_parameters(true)[p.key()])) << p.key();
  request.class_names = {"x"};
  EXPECT_THROW_WITH(import_weights(request), UsageError, "--names gives 1 class names", "exactly 3");
  request.file = (dir / "missing.pt").string();
  EXPECT_THROW_WITH(import_weights(request), CheckpointError, "missing.pt", "");
  // A readable torch.save file of something else: named as not a detector, with the layouts detkit maps.
  std::ofstream(dir / "other.pt", std::ios::binary) << samples::pt::small_torch_zip();
  request.file = (dir / "other.pt").string();
  EXPECT_THROW_WITH(import_weights(request), CheckpointError, "its tensors are not a YOLOv8-layout detector", "yolo-n, yolo-s and yolo-m");
  std::ofstream(dir / "junk.pt") << "not a checkpoint at all";
  request.file = (dir / "junk.pt").string();
  EXPECT_THROW_WITH(import_weights(request), CheckpointError, "not a PyTorch checkpoint", "torch.save");
}

TEST(WeightsImport, FreezeStopsGradientsByYoloV8LayerNumber) {
  const auto frozen_names = [](const std::string& spec) {
    YoloDetector net = detector("yolo-n", 3, 8);
    const int64_t n = apply_freeze(net, spec);
    std::vector<std::string> names;
    for (const auto& p : net->named_parameters(true))
      if (!p.value().requires_grad() && p.key() != "bins") names.push_back(p.key());
    EXPECT_EQ(static_cast<int64_t>(names.size()), n) << spec;
    return names;
  };
  EXPECT_TRUE(frozen_names("").empty());
  EXPECT_TRUE(frozen_names("0").empty());
  const auto backbone = frozen_names("backbone");
  ASSERT_FALSE(backbone.empty());
  for (const auto& n : backbone) EXPECT_EQ(n.rfind("backbone.", 0), 0u) << n;
  EXPECT_EQ(frozen_names("10"), backbone);
  const auto two = frozen_names("2");  // layers 0 and 1: the two stem convolutions
  EXPECT_EQ(two, (std::vector<std::string>{"backbone.0.conv.weight", "backbone.0.bn.weight", "backbone.0.bn.bias",
                                           "backbone.1.conv.weight", "backbone.1.bn.weight", "backbone.1.bn.bias"}));
  const auto thirteen = frozen_names("13");  // the backbone and layer 12 (neck.0)
  for (const auto& n : thirteen) EXPECT_TRUE(n.rfind("backbone.", 0) == 0 || n.rfind("neck.0.", 0) == 0) << n;
  EXPECT_GT(thirteen.size(), backbone.size());
  YoloDetector net = detector("yolo-n", 3, 9);
  EXPECT_EQ(apply_freeze(net, "23"), static_cast<int64_t>(net->parameters().size()) - 1);  // all but the fixed bins
  EXPECT_THROW_WITH(apply_freeze(net, "neck"), ConfigError, "'neck' is not a layer count", "freeze=backbone");
}
