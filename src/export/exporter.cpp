#include "export/exporter.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>

#include "augment/augment.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/text.h"
#include "core/torch/runtime.h"
#include "detkit/build_info.h"
#include "export/onnx.h"
#include "export/torchscript.h"
#include "infer/onnx_model.h"
#include "infer/postprocess.h"
#include "models/checkpoint.h"
#include "models/loss.h"
#include "models/yolo.h"

namespace detkit::exporting {

namespace {

// Agreement the written file must reach with LibTorch on float32: probabilities absolutely, boxes (in
// pixels, up to the input size) relative to max(1, |value|). Runtimes pick other convolution algorithms,
// and a trained model's sharp bin softmax amplifies their rounding: a BCCD-trained yolo-n reached 9e-5
// in OpenCV, so 1e-3 (0.3 px at 320) leaves room without passing a wrong graph (those are off by whole
// pixels). The reference tests hold random-weight exports to 1e-4.
constexpr double kTolerance = 1e-3;

std::vector<float> to_floats(const at::Tensor& t) {
  const at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

Attribute axis(int64_t a) { return Attribute::make_int("axis", a); }
Attribute perm(std::vector<int64_t> p) { return Attribute::make_ints("perm", std::move(p)); }

}  // namespace

Graph detector_graph(models::YoloDetector& model, const DetectorGraphOptions& options) {
  if (options.imgsz <= 0 || options.imgsz % 32 != 0)
    throw UsageError({cat("export size ", options.imgsz, " is not a positive multiple of 32 (the largest stride)"), "",
                      cat("use --imgsz ", std::max<int64_t>(32, (options.imgsz + 31) / 32 * 32))});
  const models::YoloOptions& mo = model->options();
  const int64_t reg = mo.reg_max, nc = mo.classes, s = options.imgsz;
  GraphBuilder g(mo.scale.name);
  Dimension batch = options.batch > 0 ? Dimension{options.batch, ""} : Dimension{-1, "batch"};
  g.input({"images", ElementType::float32, {batch, {3, ""}, {s, ""}, {s, ""}},
           "RGB in 0..1, letterboxed: resized so the longer side fits, centred, padded with 114/255"});
  const auto levels = model->export_graph(g, "images");

  // The anchors and strides exactly as the loss and decode_predictions lay them out.
  std::vector<models::LevelOutput> shapes;
  const std::vector<int64_t> strides = model->strides();
  for (const int64_t stride : strides)
    shapes.push_back({at::zeros({1, 4 * reg, s / stride, s / stride}), at::zeros({1, nc, s / stride, s / stride}), stride});
  const models::FlatHead head = models::flatten_head(shapes, reg);
  const int64_t anchors = head.anchors.size(0);
  const at::Tensor anchor4 = at::cat({head.anchors, head.anchors}, 1).t().contiguous();  // [4, A]: x, y, x, y

  std::vector<std::string> box_parts, cls_parts;
  const std::string box_shape = g.constant_int64("shape.box_level", {3}, {0, 4 * reg, -1});
  const std::string cls_shape = g.constant_int64("shape.cls_level", {3}, {0, nc, -1});
  for (const auto& [box, cls] : levels) {
    box_parts.push_back(g.op("Reshape", {box, box_shape}));
    cls_parts.push_back(g.op("Reshape", {cls, cls_shape}));
  }
  const std::string box_all = g.op("Concat", box_parts, {axis(2)});  // [B, 4 * reg, A]
  const std::string cls_all = g.op("Concat", cls_parts, {axis(2)});  // [B, C, A]
  // Each side's distance: the expectation of its softmax over the bins, as a 1x1 convolution with the
  // bin values as weights ([B, reg, 4, A] -> [B, 1, 4, A]).
  const std::string sides = g.op("Reshape", {box_all, g.constant_int64("shape.sides", {4}, {0, 4, reg, -1})});
  const std::string bins_first = g.op("Transpose", {g.op("Softmax", {sides}, {axis(2)})}, {perm({0, 2, 1, 3})});
  std::vector<float> bin_values;
  for (int64_t k = 0; k < reg; ++k) bin_values.push_back(static_cast<float>(k));
  const std::string expectation = g.op("Conv", {bins_first, g.constant("decode.bins", {1, reg, 1, 1}, bin_values)},
                                       {Attribute::make_ints("kernel_shape", {1, 1}), Attribute::make_ints("strides", {1, 1})});
  const std::string distances = g.op("Reshape", {expectation, g.constant_int64("shape.distances", {3}, {0, 4, -1})});
  // x1 = (ax - left) * stride, y1 = (ay - top) * stride, x2 = (ax + right) * stride, y2 = (ay + bottom) * stride,
  // computed as distance * (±stride) + anchor * stride (strides are powers of two, so this rounds as
  // decode_predictions does), by a depthwise 1x1 convolution over [B, 4 * A, 1, 1]: a per-element scale and
  // offset that every runtime takes, where OpenCV 4.6's DNN module refuses or mis-broadcasts an elementwise
  // Mul or Add of a [B, 4, A] tensor with a constant.
  std::vector<float> side_scale, anchor_offset;
  const std::vector<float> stride_of = to_floats(head.strides.view({-1})), anchor_xyxy = to_floats(anchor4);
  for (int64_t side = 0; side < 4; ++side)
    for (int64_t a = 0; a < anchors; ++a) {
      side_scale.push_back((side < 2 ? -1.f : 1.f) * stride_of[a]);
      anchor_offset.push_back(anchor_xyxy[side * anchors + a] * stride_of[a]);
    }
  const std::string per_element = g.op("Reshape", {distances, g.constant_int64("shape.per_element", {4}, {0, 4 * anchors, 1, 1})});
  const std::string placed =
      g.op("Conv", {per_element, g.constant("decode.side_scale", {4 * anchors, 1, 1, 1}, side_scale),
                    g.constant("decode.anchor_offset", {4 * anchors}, anchor_offset)},
           {Attribute::make_ints("kernel_shape", {1, 1}), Attribute::make_ints("strides", {1, 1}), Attribute::make_int("group", 4 * anchors)});
  const std::string pixel_boxes = g.op("Reshape", {placed, g.constant_int64("shape.box_sides", {3}, {0, 4, anchors})});
  const std::string boxes = g.op("Transpose", {pixel_boxes}, {perm({0, 2, 1})});
  const std::string scores_by_class = g.op("Sigmoid", {cls_all});  // [B, C, A]
  const std::string scores = g.op("Transpose", {scores_by_class}, {perm({0, 2, 1})});
  g.output(boxes, {"boxes", ElementType::float32, {batch, {anchors, ""}, {4, ""}}, "x1 y1 x2 y2 in pixels of the input, per anchor"});
  g.output(scores, {"scores", ElementType::float32, {batch, {anchors, ""}, {nc, ""}}, "class probabilities per anchor"});

  if (options.nms) {
    std::string nms_boxes = "boxes", nms_scores = scores_by_class;
    if (options.half) {  // NonMaxSuppression takes float32 only
      nms_boxes = g.op("Cast", {nms_boxes}, {Attribute::make_int("to", static_cast<int64_t>(ElementType::float32))});
      nms_scores = g.op("Cast", {nms_scores}, {Attribute::make_int("to", static_cast<int64_t>(ElementType::float32))});
    }
    const std::string selected = g.op(
        "NonMaxSuppression",
        {nms_boxes, nms_scores, g.constant_int64("nms.max_per_class", {1}, {options.max_det}),
         g.constant("nms.iou_threshold", {1}, {static_cast<float>(options.iou)}, true),
         g.constant("nms.score_threshold", {1}, {static_cast<float>(options.conf)}, true)},
        {Attribute::make_int("center_point_box", 0)});  // [K, 3]: image, class, anchor
    const auto columns = [&](const std::string& name, std::vector<int64_t> which) {
      return g.op("Gather", {selected, g.constant_int64(name, {static_cast<int64_t>(which.size())}, which)}, {axis(1)});
    };
    const std::string kept_boxes = g.op("GatherND", {nms_boxes, columns("nms.image_anchor", {0, 2})});  // [K, 4]
    const std::string kept_scores =
        g.op("Reshape", {g.op("GatherND", {nms_scores, selected}), g.constant_int64("shape.column", {2}, {-1, 1})});
    const auto as_float = [&](const std::string& v) {
      return g.op("Cast", {v}, {Attribute::make_int("to", static_cast<int64_t>(ElementType::float32))});
    };
    const std::string detections =
        g.op("Concat", {as_float(columns("nms.image", {0})), kept_boxes, kept_scores, as_float(columns("nms.class", {1}))}, {axis(1)});
    g.output(detections, {"detections", ElementType::float32, {{-1, "detections"}, {7, ""}},
                          "image index, x1, y1, x2, y2, score, class (0-based) per kept box"});
  }
  if (options.raw_outputs) {
    for (std::size_t level = 0; level < levels.size(); ++level) {
      const int64_t grid = s / strides[level];
      g.output(g.op("Identity", {levels[level].first}),
               {cat("box_s", strides[level]), ElementType::float32, {batch, {4 * reg, ""}, {grid, ""}, {grid, ""}},
                "raw distance-bin logits of this level"});
      g.output(g.op("Identity", {levels[level].second}),
               {cat("cls_s", strides[level]), ElementType::float32, {batch, {nc, ""}, {grid, ""}, {grid, ""}},
                "raw class logits of this level"});
    }
  }
  Graph graph = g.take();
  if (options.half) {
    convert_to_float16(graph);
    for (auto& out : graph.outputs)
      if (out.name == "detections") out.type = ElementType::float32;
  }
  return graph;
}

namespace {

struct Comparison {
  double max_abs = 0, max_rel = 0;
};

// Largest differences between the file's (boxes, scores) and LibTorch's on the same input.
Comparison compare(const DecodedPredictions& file, const DecodedPredictions& reference) {
  Comparison c;
  const auto update = [&](const at::Tensor& got, const at::Tensor& want) {
    if (!got.sizes().equals(want.sizes()))
      throw RunError({cat("the exported file's outputs have shape ", got.sizes(), ", LibTorch's ", want.sizes()), "",
                      "report this as a detkit bug"});
    const at::Tensor diff = (got.to(at::kDouble) - want.to(at::kDouble)).abs();
    c.max_abs = std::max(c.max_abs, diff.max().item<double>());
    c.max_rel = std::max(c.max_rel, (diff / want.to(at::kDouble).abs().clamp_min(1.0)).max().item<double>());
  };
  update(file.boxes, reference.boxes);
  update(file.probabilities, reference.probabilities);
  return c;
}

// A fixed, image-like input: smooth gradients plus noise, so every layer sees varied values.
at::Tensor verification_input(int64_t batch, int64_t imgsz) {
  at::manual_seed(20261206);
  const at::Tensor ramp = at::linspace(0, 1, imgsz).view({1, 1, 1, imgsz});
  return (0.5 * ramp + 0.5 * at::rand({batch, 3, imgsz, imgsz})).clamp(0, 1);
}

std::vector<std::pair<std::string, std::string>> metadata(const models::LoadedModel& loaded, const ExportRequest& request,
                                                          int64_t imgsz) {
  const auto& mo = loaded.model->options();
  std::vector<std::pair<std::string, std::string>> meta{
      {"detkit.format", "1"},
      {"detkit.model", mo.scale.name},
      {"detkit.classes", nlohmann::json(loaded.class_names).dump()},
      {"detkit.imgsz", std::to_string(imgsz)},
      {"detkit.strides", nlohmann::json(loaded.model->strides()).dump()},
      {"detkit.reg_max", std::to_string(mo.reg_max)},
      {"detkit.input", cat("images: RGB float in 0..1, letterboxed to ", imgsz, "x", imgsz,
                           " (longer side resized to fit, centred, padded with ", augment::kFillLevel, "/255)")},
      {"detkit.outputs", "boxes [B, A, 4] x1 y1 x2 y2 in input pixels; scores [B, A, C] class probabilities"},
      {"detkit.checkpoint", loaded.path},
  };
  if (request.nms)
    meta.emplace_back("detkit.nms", nlohmann::json{{"conf", request.conf}, {"iou", request.iou}, {"max_det", request.max_det}}.dump());
  if (request.half) meta.emplace_back("detkit.precision", "float16");
  return meta;
}

at::Tensor initializer_tensor(const Initializer& init) {
  if (init.type == ElementType::int64) return at::tensor(init.ints, at::kLong).view(init.dims);
  at::Tensor t = at::tensor(init.floats, at::kFloat).view(init.dims);
  return init.type == ElementType::float16 ? t.to(at::kHalf) : t;
}

void write_torchscript(const Graph& graph, const std::vector<std::pair<std::string, std::string>>& meta, const fs::path& out) {
  const TorchScriptSource source = torchscript_source(graph);
  torch::jit::Module module("DetkitDetector");
  for (const auto& [name, attribute] : source.attributes) module.register_buffer(attribute, initializer_tensor(*graph.find_initializer(name)));
  module.define(source.code);
  nlohmann::ordered_json j;
  for (const auto& [k, v] : meta) j[k] = v;
  std::ostringstream bytes;
  module.save(bytes, {{"detkit.json", j.dump(2)}});
  write_file_atomic(out, bytes.str());
}

}  // namespace

ExportResult export_model(const ExportRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  if (request.format != "onnx" && request.format != "torchscript")
    throw UsageError({cat("unknown export format '", request.format, "'"), "", "use --format onnx or --format torchscript"});
  if (request.format == "torchscript" && request.nms)
    throw UsageError({"TorchScript exports cannot hold NMS", "LibTorch has no NMS operator without torchvision",
                      "export TorchScript without --nms and run torchvision.ops.batched_nms on its outputs, or export ONNX with --nms"});
  if (request.nms && (!(request.conf >= 0 && request.conf <= 1) || !(request.iou >= 0 && request.iou <= 1) || request.max_det < 1))
    throw UsageError({"--conf and --iou must lie in [0, 1] and --max-det be at least 1", "", "use for example --conf 0.25 --iou 0.7"});
  if (request.batch < 0) throw UsageError({cat("--batch ", request.batch, " is negative"), "", "use a batch size, or 0 for dynamic"});
  if (request.format == "onnx" && (request.opset < kMinOpset || request.opset > kMaxOpset))
    throw UsageError({cat("ONNX opset ", request.opset, " is not supported"),
                      cat("detkit writes opsets ", kMinOpset, " to ", kMaxOpset), cat("use --opset ", kMaxOpset)});

  models::LoadedModel loaded = models::load_model(request.model, c10::Device(c10::kCPU));
  loaded.model->eval();
  at::NoGradGuard no_grad;
  DetectorGraphOptions go;
  go.imgsz = request.imgsz > 0 ? request.imgsz : loaded.imgsz;
  go.batch = request.batch;
  go.raw_outputs = request.raw_outputs;
  go.nms = request.nms;
  go.conf = request.conf;
  go.iou = request.iou;
  go.max_det = request.max_det;
  go.half = request.half;
  const Graph graph = detector_graph(loaded.model, go);
  const auto meta = metadata(loaded, request, go.imgsz);
  const fs::path out = !request.out.empty() ? fs::path(request.out)
                                            : fs::path(loaded.path).replace_extension(request.format == "onnx" ? ".onnx" : ".torchscript");
  if (out.has_parent_path()) ensure_directory(out.parent_path());

  ExportResult result;
  result.out = out.string();
  result.format = request.format;
  result.imgsz = go.imgsz;
  result.class_names = loaded.class_names;
  result.metadata = meta;
  result.parameters = graph.parameter_count();
  for (const auto& [op, n] : graph.op_counts()) result.operators.emplace_back(op, n);
  for (const auto& in : graph.inputs) result.inputs.emplace_back(in.name, describe_value(in));
  for (const auto& o : graph.outputs) result.outputs.emplace_back(o.name, describe_value(o));
  if (request.format == "onnx") {
    OnnxWriteOptions wo;
    wo.opset = request.opset;
    wo.producer_version = DETKIT_VERSION;
    wo.metadata = meta;
    wo.doc = cat("detkit ", loaded.model->options().scale.name, " detector, ", loaded.class_names.size(), " classes, from ", loaded.path);
    write_onnx(out, graph, wo);
    result.opset = request.opset;
  } else {
    guard_torch("writing TorchScript", [&] { write_torchscript(graph, meta, out); });
  }
  result.bytes = static_cast<int64_t>(fs::file_size(out));

  // Run the written file and compare it with LibTorch on the same input.
  if (!request.verify) {
    result.not_verified_because = "--no-verify";
  } else if (request.half) {
    result.not_verified_because = "float16 files run on GPU runtimes; the CPU reference runs float32";
  } else if (request.format == "onnx" && request.nms) {
    result.not_verified_because = "OpenCV's DNN module cannot run NonMaxSuppression (check it in onnxruntime)";
  } else if (request.format == "onnx" && infer::onnx_runtime_name().empty()) {
    result.not_verified_because = "this build has no OpenCV DNN module";
  } else {
    const int64_t batch = request.batch > 0 ? request.batch : 2;
    const at::Tensor input = verification_input(batch, go.imgsz);
    const DecodedPredictions reference = decode_predictions(loaded.model->forward(input), loaded.model->options().reg_max);
    DecodedPredictions got;
    if (request.format == "onnx") {
      const infer::OnnxDetector file = infer::load_onnx_detector(out.string());
      got = file.forward(input);
      result.verified_with = file.runtime;
    } else {
      guard_torch("running the TorchScript file", [&] {
        torch::jit::Module module = torch::jit::load(out.string());
        const auto outputs = module.forward({input}).toTuple()->elements();
        got = {outputs.at(0).toTensor(), outputs.at(1).toTensor()};
      });
      result.verified_with = "torch::jit::load";
    }
    const Comparison c = compare(got, reference);
    result.max_abs_diff = c.max_abs;
    result.max_rel_diff = c.max_rel;
    if (c.max_rel > kTolerance) {
      std::error_code ignored;
      fs::remove(out, ignored);
      throw RunError({cat("the exported file's outputs differ from LibTorch's by up to ", c.max_rel, " (relative)"),
                      cat("verified with ", result.verified_with, "; the file was removed"), "report this as a detkit bug; --no-verify writes it anyway"});
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace detkit::exporting
