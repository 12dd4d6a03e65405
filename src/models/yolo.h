// The detector family: an anchor-free one-stage detector in the YOLO style.
//
// Backbone: strided 3x3 convolutions and CSP blocks (C2f: a split, a chain of bottlenecks, everything
// concatenated), ending in SPPF (three chained 5x5 max-pools). Neck: a PAN-FPN that fuses top-down then
// bottom-up over strides 8, 16 and 32. Head: decoupled per level, a box branch predicting a distribution
// over 16 distance bins for each side (distribution focal loss; decoded by their expectation) and a class
// branch. Scales n, s, m differ in depth and width multipliers. Everything is built from LibTorch modules;
// no pretrained weights are loaded or fetched.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace detkit::exporting {
class GraphBuilder;  // export/graph.h
}

namespace detkit::models {

class RankSum;       // models/sync_batch_norm.h
struct LayerShared;  // what the layers of one model share (yolo.cpp)

struct YoloScale {
  std::string name;       // "yolo-n", "yolo-s", "yolo-m"
  double depth = 0.33;    // multiplier on the number of bottlenecks per C2f block
  double width = 0.25;    // multiplier on channel counts
  int64_t max_channels = 1024;
};

// The scale called `name`. Throws UsageError naming the nearest known name for an unknown one.
YoloScale yolo_scale(const std::string& name);
std::vector<std::string> yolo_scale_names();

struct YoloOptions {
  YoloScale scale;
  int64_t classes = 80;  // number of classes
  int64_t reg_max = 16;  // distance bins per box side
  bool stride4 = false;  // add an output level at stride 4 (small objects; ~4x the anchors of stride 8)
};

// Raw head outputs for one level: box distribution logits [B, 4 * reg_max, H, W] and class logits
// [B, classes, H, W].
struct LevelOutput {
  at::Tensor box;
  at::Tensor cls;
  int64_t stride = 0;
};

class YoloDetectorImpl : public torch::nn::Module {
 public:
  explicit YoloDetectorImpl(const YoloOptions& options);
  // images [B, 3, H, W] float in 0..1, H and W multiples of 32. One LevelOutput per stride (4 when
  // stride4, then 8, 16, 32), finest first.
  std::vector<LevelOutput> forward(const at::Tensor& images);

  const YoloOptions& options() const { return options_; }
  std::vector<int64_t> strides() const {
    return options_.stride4 ? std::vector<int64_t>{4, 8, 16, 32} : std::vector<int64_t>{8, 16, 32};
  }
  // Appends the network, as forward() computes it in eval mode, to `graph` as ONNX operators reading the
  // value `images` (BatchNorm folded into the convolutions). Returns each level's raw (box, class) outputs,
  // finest first, as forward() orders its LevelOutputs.
  std::vector<std::pair<std::string, std::string>> export_graph(exporting::GraphBuilder& graph, const std::string& images) const;

  // Multiply-accumulate operations of the last forward's convolutions, times 2 (the GFLOPs convention).
  double last_forward_flops() const;

  // Distributed training with SyncBatchNorm: in training mode every BatchNorm normalises with the
  // statistics of all ranks' batches, summed through `ranks` (models/sync_batch_norm.h); nullptr: each
  // process's own batch. Every rank must then run the same number of forward and backward passes.
  void set_sync_batch_norm(std::shared_ptr<RankSum> ranks);

 private:
  YoloOptions options_;
  std::shared_ptr<LayerShared> flops_;  // per-forward FLOPs and the SyncBatchNorm setting
  torch::nn::ModuleList backbone_{nullptr}, neck_{nullptr}, neck_p2_{nullptr}, box_heads_{nullptr}, cls_heads_{nullptr};
  at::Tensor bins_;
};
TORCH_MODULE(YoloDetector);

// Stores the convolution weights in channels-last (NHWC) memory order, in place (tensors keep their
// shapes and values; gradients and optimizer state made afterwards follow). With NHWC inputs too, cuDNN's
// tensor-core kernels need no layout transposes. Call before building the optimizer.
void use_channels_last(YoloDetector& model);

struct ModelSummary {
  int64_t parameters = 0;
  int64_t trainable = 0;
  double gflops = 0;  // at the given image size, batch 1
  std::vector<int64_t> strides;
  std::vector<std::vector<int64_t>> level_shapes;  // [H, W] of each level's grid
};

// Builds the model and runs one forward pass on a blank imgsz x imgsz image to count. Throws UsageError
// for an unknown model or an imgsz that is not a positive multiple of 32.
ModelSummary summarize_model(const std::string& model, int64_t classes, int64_t imgsz, bool stride4 = false);

}  // namespace detkit::models
