#include "models/yolo.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/pooling.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

#include <cmath>
#include <memory>

#include "core/error.h"
#include "core/text.h"
#include "export/graph.h"
#include "models/sync_batch_norm.h"

namespace detkit::models {

namespace F = torch::nn::functional;

// What every layer of one model shares: the convolutions add their cost of the current forward pass to
// `flops`; `sync_bn`, when set, makes BatchNorm in training use the statistics of all ranks' batches.
struct LayerShared {
  double flops = 0;
  std::shared_ptr<RankSum> sync_bn;
};

using exporting::Attribute;
using exporting::GraphBuilder;

namespace {

using FlopCounter = std::shared_ptr<LayerShared>;

std::vector<float> float_values(const at::Tensor& t) {
  const at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

// Conv2d, then (unless `plain`) BatchNorm and SiLU.
class ConvUnitImpl : public torch::nn::Module {
 public:
  ConvUnitImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, FlopCounter flops, bool plain = false)
      : in_(in), out_(out), kernel_(kernel), stride_(stride), plain_(plain), flops_(std::move(flops)) {
    conv_ = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                                          .stride(stride)
                                                          .padding(kernel / 2)
                                                          .bias(plain)));
    if (!plain) bn_ = register_module("bn", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).eps(1e-3).momentum(0.03)));
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor y = conv_->forward(x);
    flops_->flops += 2.0 * static_cast<double>(kernel_ * kernel_ * in_ * out_) * static_cast<double>(y.size(2) * y.size(3));
    if (plain_) return y;
    const bool synced = flops_->sync_bn && is_training();
    return F::silu(synced ? sync_batch_norm(y, *bn_, *flops_->sync_bn) : bn_->forward(y));
  }
  torch::nn::Conv2d& conv() { return conv_; }

  // As forward() in eval mode: the BatchNorm's running statistics folded into the convolution (in double,
  // so the folded weights round once), then SiLU as x * sigmoid(x).
  std::string emit(GraphBuilder& g, const std::string& x, const std::string& name) const {
    const at::Tensor w = conv_->weight.detach().to(at::kCPU, at::kDouble);
    at::Tensor weight = w, bias = plain_ ? conv_->bias.detach().to(at::kCPU, at::kDouble) : at::zeros({out_}, w.options());
    if (!plain_) {
      const auto& bn = bn_->options;
      const at::Tensor scale = bn_->weight.detach().to(at::kCPU, at::kDouble) /
                               (bn_->running_var.detach().to(at::kCPU, at::kDouble) + bn.eps()).sqrt();
      weight = w * scale.view({-1, 1, 1, 1});
      bias = bn_->bias.detach().to(at::kCPU, at::kDouble) - bn_->running_mean.detach().to(at::kCPU, at::kDouble) * scale;
    }
    const int64_t pad = kernel_ / 2, stride = stride_;
    const std::string y = g.op("Conv",
                               {x, g.constant(name + ".weight", weight.sizes().vec(), float_values(weight)),
                                g.constant(name + ".bias", {out_}, float_values(bias))},
                               {Attribute::make_ints("kernel_shape", {kernel_, kernel_}), Attribute::make_ints("strides", {stride, stride}),
                                Attribute::make_ints("pads", {pad, pad, pad, pad}), Attribute::make_int("group", 1)});
    return plain_ ? y : g.op("Mul", {y, g.op("Sigmoid", {y})});
  }

 private:
  int64_t in_, out_, kernel_, stride_;
  bool plain_;
  FlopCounter flops_;
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(ConvUnit);

class BottleneckImpl : public torch::nn::Module {
 public:
  BottleneckImpl(int64_t c, bool shortcut, const FlopCounter& flops) : shortcut_(shortcut) {
    cv1_ = register_module("cv1", ConvUnit(c, c, 3, 1, flops));
    cv2_ = register_module("cv2", ConvUnit(c, c, 3, 1, flops));
  }
  at::Tensor forward(const at::Tensor& x) {
    const at::Tensor y = cv2_->forward(cv1_->forward(x));
    return shortcut_ ? x + y : y;
  }
  std::string emit(GraphBuilder& g, const std::string& x, const std::string& name) const {
    const std::string y = cv2_->emit(g, cv1_->emit(g, x, name + ".cv1"), name + ".cv2");
    return shortcut_ ? g.op("Add", {x, y}) : y;
  }

 private:
  bool shortcut_;
  ConvUnit cv1_{nullptr}, cv2_{nullptr};
};
TORCH_MODULE(Bottleneck);

// CSP block with two convolutions: split the 1x1 output in halves, run bottlenecks on one half, and
// fuse every intermediate result with a 1x1 convolution (rich gradient flow at low cost).
class C2fImpl : public torch::nn::Module {
 public:
  C2fImpl(int64_t in, int64_t out, int64_t n, bool shortcut, const FlopCounter& flops) : hidden_(out / 2) {
    cv1_ = register_module("cv1", ConvUnit(in, 2 * hidden_, 1, 1, flops));
    cv2_ = register_module("cv2", ConvUnit((2 + n) * hidden_, out, 1, 1, flops));
    blocks_ = register_module("m", torch::nn::ModuleList());
    for (int64_t i = 0; i < n; ++i) blocks_->push_back(Bottleneck(hidden_, shortcut, flops));
  }
  at::Tensor forward(const at::Tensor& x) {
    std::vector<at::Tensor> parts = cv1_->forward(x).chunk(2, 1);
    for (const auto& block : *blocks_) parts.push_back(block->as<BottleneckImpl>()->forward(parts.back()));
    return cv2_->forward(at::cat(parts, 1));
  }
  std::string emit(GraphBuilder& g, const std::string& x, const std::string& name) const {
    std::vector<std::string> parts = g.op_multi("Split", {cv1_->emit(g, x, name + ".cv1")}, 2, {Attribute::make_int("axis", 1)});
    for (std::size_t i = 0; i < blocks_->size(); ++i)
      parts.push_back((*blocks_)[i]->as<BottleneckImpl>()->emit(g, parts.back(), cat(name, ".m.", i)));
    return cv2_->emit(g, g.op("Concat", parts, {Attribute::make_int("axis", 1)}), name + ".cv2");
  }

 private:
  int64_t hidden_;
  ConvUnit cv1_{nullptr}, cv2_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
};
TORCH_MODULE(C2f);

// Spatial pyramid pooling, fast: three chained 5x5 max-pools see 5, 9 and 13 pixel neighbourhoods.
class SppfImpl : public torch::nn::Module {
 public:
  SppfImpl(int64_t in, int64_t out, const FlopCounter& flops) {
    cv1_ = register_module("cv1", ConvUnit(in, in / 2, 1, 1, flops));
    cv2_ = register_module("cv2", ConvUnit(in / 2 * 4, out, 1, 1, flops));
  }
  at::Tensor forward(const at::Tensor& x) {
    const auto pool = [](const at::Tensor& t) { return F::max_pool2d(t, F::MaxPool2dFuncOptions(5).stride(1).padding(2)); };
    const at::Tensor a = cv1_->forward(x), b = pool(a), c = pool(b), d = pool(c);
    return cv2_->forward(at::cat({a, b, c, d}, 1));
  }
  std::string emit(GraphBuilder& g, const std::string& x, const std::string& name) const {
    const auto pool = [&](const std::string& t) {
      return g.op("MaxPool", {t}, {Attribute::make_ints("kernel_shape", {5, 5}), Attribute::make_ints("strides", {1, 1}),
                                   Attribute::make_ints("pads", {2, 2, 2, 2})});
    };
    const std::string a = cv1_->emit(g, x, name + ".cv1"), b = pool(a), c = pool(b), d = pool(c);
    return cv2_->emit(g, g.op("Concat", {a, b, c, d}, {Attribute::make_int("axis", 1)}), name + ".cv2");
  }

 private:
  ConvUnit cv1_{nullptr}, cv2_{nullptr};
};
TORCH_MODULE(Sppf);

int64_t make_divisible(double x, int64_t divisor) { return static_cast<int64_t>(std::ceil(x / divisor)) * divisor; }

at::Tensor upsample2(const at::Tensor& x) {
  return F::interpolate(x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
}

// Nearest-neighbour upsampling by 2, as F::interpolate computes it (source index = floor(dst / 2)).
std::string emit_upsample2(GraphBuilder& g, const std::string& x) {
  return g.op("Resize", {x, "", g.constant("upsample.scales", {4}, {1.f, 1.f, 2.f, 2.f}, /*keep_float32=*/true)},
              {Attribute::make_string("mode", "nearest"), Attribute::make_string("coordinate_transformation_mode", "asymmetric"),
               Attribute::make_string("nearest_mode", "floor")});
}

}  // namespace

std::vector<std::string> yolo_scale_names() { return {"yolo-n", "yolo-s", "yolo-m"}; }

YoloScale yolo_scale(const std::string& name) {
  if (name == "yolo-n") return {name, 0.33, 0.25, 1024};
  if (name == "yolo-s") return {name, 0.33, 0.50, 1024};
  if (name == "yolo-m") return {name, 0.67, 0.75, 768};
  const auto near = nearest(name, yolo_scale_names());
  throw UsageError({cat("unknown model '", name, "'"), "",
                    near ? cat("did you mean '", *near, "'?") : "use " + join(yolo_scale_names(), ", ")});
}

YoloDetectorImpl::YoloDetectorImpl(const YoloOptions& options) : options_(options) {
  const YoloScale& s = options.scale;
  const auto ch = [&](int64_t c) { return make_divisible(static_cast<double>(std::min(c, s.max_channels)) * s.width, 8); };
  const auto depth = [&](int64_t n) { return std::max<int64_t>(1, std::llround(n * s.depth)); };
  const FlopCounter flops = std::make_shared<LayerShared>();
  flops_ = flops;
  const int64_t c1 = ch(64), c2 = ch(128), c3 = ch(256), c4 = ch(512), c5 = ch(1024);
  backbone_ = register_module("backbone", torch::nn::ModuleList());
  backbone_->push_back(ConvUnit(3, c1, 3, 2, flops));          // stride 2
  backbone_->push_back(ConvUnit(c1, c2, 3, 2, flops));         // 4
  backbone_->push_back(C2f(c2, c2, depth(3), true, flops));
  backbone_->push_back(ConvUnit(c2, c3, 3, 2, flops));         // 8: P3
  backbone_->push_back(C2f(c3, c3, depth(6), true, flops));
  backbone_->push_back(ConvUnit(c3, c4, 3, 2, flops));         // 16: P4
  backbone_->push_back(C2f(c4, c4, depth(6), true, flops));
  backbone_->push_back(ConvUnit(c4, c5, 3, 2, flops));         // 32: P5
  backbone_->push_back(C2f(c5, c5, depth(3), true, flops));
  backbone_->push_back(Sppf(c5, c5, flops));
  neck_ = register_module("neck", torch::nn::ModuleList());
  neck_->push_back(C2f(c5 + c4, c4, depth(3), false, flops));  // top-down at 16
  neck_->push_back(C2f(c4 + c3, c3, depth(3), false, flops));  // top-down at 8: P3 out
  neck_->push_back(ConvUnit(c3, c3, 3, 2, flops));
  neck_->push_back(C2f(c3 + c4, c4, depth(3), false, flops));  // bottom-up at 16: P4 out
  neck_->push_back(ConvUnit(c4, c4, 3, 2, flops));
  neck_->push_back(C2f(c4 + c5, c5, depth(3), false, flops));  // bottom-up at 32: P5 out
  // The optional stride-4 level (for objects a few pixels wide): a further top-down step from P3 onto the
  // backbone's stride-4 features, then a bottom-up step that feeds it back into P3. Its modules live in
  // their own list, so models without it keep their layout (and their checkpoints).
  if (options.stride4) {
    neck_p2_ = register_module("neck_p2", torch::nn::ModuleList());
    neck_p2_->push_back(C2f(c3 + c2, c2, depth(3), false, flops));  // top-down at 4: P2 out
    neck_p2_->push_back(ConvUnit(c2, c2, 3, 2, flops));
    neck_p2_->push_back(C2f(c2 + c3, c3, depth(3), false, flops));  // bottom-up at 8: P3 out
  }
  const int64_t reg = options.reg_max, nc = options.classes;
  std::vector<int64_t> level_channels{c3, c4, c5};
  if (options.stride4) level_channels.insert(level_channels.begin(), c2);
  const std::vector<int64_t> level_strides = strides();
  const int64_t first = level_channels.front();
  const int64_t box_ch = std::max<int64_t>({16, first / 4, 4 * reg}), cls_ch = std::max(first, std::min<int64_t>(nc, 100));
  box_heads_ = register_module("box_heads", torch::nn::ModuleList());
  cls_heads_ = register_module("cls_heads", torch::nn::ModuleList());
  for (std::size_t level = 0; level < level_channels.size(); ++level) {
    const int64_t c = level_channels[level];
    torch::nn::Sequential box(ConvUnit(c, box_ch, 3, 1, flops), ConvUnit(box_ch, box_ch, 3, 1, flops),
                              ConvUnit(box_ch, 4 * reg, 1, 1, flops, /*plain=*/true));
    torch::nn::Sequential cls(ConvUnit(c, cls_ch, 3, 1, flops), ConvUnit(cls_ch, cls_ch, 3, 1, flops),
                              ConvUnit(cls_ch, nc, 1, 1, flops, /*plain=*/true));
    // Start from sensible outputs: box logits flat, class scores at about 5 objects per 640x640 image.
    torch::NoGradGuard no_grad;
    box[2]->as<ConvUnitImpl>()->conv()->bias.fill_(1.0);
    const double cells = std::pow(640.0 / static_cast<double>(level_strides[level]), 2);
    cls[2]->as<ConvUnitImpl>()->conv()->bias.fill_(std::log(5.0 / static_cast<double>(nc) / cells));
    box_heads_->push_back(box);
    cls_heads_->push_back(cls);
  }
  // The distance bins 0..reg_max-1: decoding takes the expectation of each side's distribution over them.
  bins_ = register_parameter("bins", at::arange(reg, at::kFloat), /*requires_grad=*/false);
}

std::vector<LevelOutput> YoloDetectorImpl::forward(const at::Tensor& images) {
  flops_->flops = 0;
  std::vector<at::Tensor> taps;  // backbone outputs at strides 4, 8, 16, 32
  at::Tensor x = images;
  for (std::size_t i = 0; i < backbone_->size(); ++i) {
    const auto& m = (*backbone_)[i];
    if (auto conv = m->as<ConvUnitImpl>()) x = conv->forward(x);
    else if (auto c2f = m->as<C2fImpl>()) x = c2f->forward(x);
    else x = m->as<SppfImpl>()->forward(x);
    if (i == 2 || i == 4 || i == 6 || i == 9) taps.push_back(x);
  }
  const auto c2f = [&](std::size_t i, const at::Tensor& t) { return (*neck_)[i]->as<C2fImpl>()->forward(t); };
  const auto conv = [&](std::size_t i, const at::Tensor& t) { return (*neck_)[i]->as<ConvUnitImpl>()->forward(t); };
  const at::Tensor n4 = c2f(0, at::cat({upsample2(taps[3]), taps[2]}, 1));
  at::Tensor p3 = c2f(1, at::cat({upsample2(n4), taps[1]}, 1));
  std::vector<at::Tensor> levels;
  if (options_.stride4) {
    const at::Tensor p2 = (*neck_p2_)[0]->as<C2fImpl>()->forward(at::cat({upsample2(p3), taps[0]}, 1));
    p3 = (*neck_p2_)[2]->as<C2fImpl>()->forward(at::cat({(*neck_p2_)[1]->as<ConvUnitImpl>()->forward(p2), p3}, 1));
    levels.push_back(p2);
  }
  const at::Tensor p4 = c2f(3, at::cat({conv(2, p3), n4}, 1));
  const at::Tensor p5 = c2f(5, at::cat({conv(4, p4), taps[3]}, 1));
  levels.insert(levels.end(), {p3, p4, p5});
  const std::vector<int64_t> level_strides = strides();
  std::vector<LevelOutput> out;
  for (std::size_t level = 0; level < levels.size(); ++level)
    out.push_back({(*box_heads_)[level]->as<torch::nn::SequentialImpl>()->forward(levels[level]),
                   (*cls_heads_)[level]->as<torch::nn::SequentialImpl>()->forward(levels[level]), level_strides[level]});
  return out;
}

std::vector<std::pair<std::string, std::string>> YoloDetectorImpl::export_graph(exporting::GraphBuilder& g,
                                                                               const std::string& images) const {
  const auto emit = [&](const torch::nn::ModuleList& list, std::size_t i, const std::string& x, const std::string& name) {
    const auto& m = (*list)[i];
    const std::string at_name = cat(name, ".", i);
    if (auto conv = m->as<ConvUnitImpl>()) return conv->emit(g, x, at_name);
    if (auto c2f = m->as<C2fImpl>()) return c2f->emit(g, x, at_name);
    return m->as<SppfImpl>()->emit(g, x, at_name);
  };
  const auto concat = [&](std::vector<std::string> parts) { return g.op("Concat", std::move(parts), {Attribute::make_int("axis", 1)}); };
  std::vector<std::string> taps;
  std::string x = images;
  for (std::size_t i = 0; i < backbone_->size(); ++i) {
    x = emit(backbone_, i, x, "backbone");
    if (i == 2 || i == 4 || i == 6 || i == 9) taps.push_back(x);
  }
  const std::string n4 = emit(neck_, 0, concat({emit_upsample2(g, taps[3]), taps[2]}), "neck");
  std::string p3 = emit(neck_, 1, concat({emit_upsample2(g, n4), taps[1]}), "neck");
  std::vector<std::string> levels;
  if (options_.stride4) {
    const std::string p2 = emit(neck_p2_, 0, concat({emit_upsample2(g, p3), taps[0]}), "neck_p2");
    p3 = emit(neck_p2_, 2, concat({emit(neck_p2_, 1, p2, "neck_p2"), p3}), "neck_p2");
    levels.push_back(p2);
  }
  const std::string p4 = emit(neck_, 3, concat({emit(neck_, 2, p3, "neck"), n4}), "neck");
  const std::string p5 = emit(neck_, 5, concat({emit(neck_, 4, p4, "neck"), taps[3]}), "neck");
  levels.insert(levels.end(), {p3, p4, p5});
  std::vector<std::pair<std::string, std::string>> out;
  for (std::size_t level = 0; level < levels.size(); ++level) {
    const auto head = [&](const torch::nn::ModuleList& heads, const std::string& name) {
      const auto& seq = *(*heads)[level]->as<torch::nn::SequentialImpl>();
      std::string y = levels[level];
      for (std::size_t k = 0; k < seq.size(); ++k) y = seq[k]->as<ConvUnitImpl>()->emit(g, y, cat(name, ".", level, ".", k));
      return y;
    };
    out.emplace_back(head(box_heads_, "box_heads"), head(cls_heads_, "cls_heads"));
  }
  return out;
}

double YoloDetectorImpl::last_forward_flops() const { return flops_->flops; }

void use_channels_last(YoloDetector& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
}

void YoloDetectorImpl::set_sync_batch_norm(std::shared_ptr<RankSum> ranks) { flops_->sync_bn = std::move(ranks); }

ModelSummary summarize_model(const std::string& model, int64_t classes, int64_t imgsz, bool stride4) {
  if (imgsz <= 0 || imgsz % 32 != 0)
    throw UsageError({cat("image size ", imgsz, " is not a positive multiple of 32 (the largest stride)"), "",
                      cat("use --imgsz ", std::max<int64_t>(32, (imgsz + 31) / 32 * 32))});
  if (classes < 1) throw UsageError({cat("a detector needs at least one class; got ", classes), "", "use --classes 1 or more"});
  YoloOptions options;
  options.scale = yolo_scale(model);
  options.classes = classes;
  options.stride4 = stride4;
  YoloDetector net(options);
  net->eval();
  ModelSummary summary;
  for (const auto& p : net->parameters()) {
    summary.parameters += p.numel();
    if (p.requires_grad()) summary.trainable += p.numel();
  }
  torch::NoGradGuard no_grad;
  const auto outputs = net->forward(at::zeros({1, 3, imgsz, imgsz}));
  summary.gflops = net->last_forward_flops() / 1e9;
  for (const auto& level : outputs) {
    summary.strides.push_back(level.stride);
    summary.level_shapes.push_back({level.box.size(2), level.box.size(3)});
  }
  return summary;
}

}  // namespace detkit::models
