// Helper for test_export_reference.py: makes detectors with known random weights and runs them in LibTorch
// (detkit's own outputs) and in OpenCV's DNN module, so the Python test can compare both with onnxruntime.
//
//   export_tool make SCALE CLASSES IMGSZ SEED OUT.pt [stride4]
//       a randomly initialised detector with perturbed BatchNorm statistics and affine parameters (so
//       folding them into the convolutions is exercised), written as a detkit checkpoint.
//   export_tool forward MODEL.pt BATCH SIZE INPUT.bin OUTPUT.bin CONF IOU
//       LibTorch in eval mode on INPUT.bin (float32 [BATCH, 3, SIZE, SIZE]); OUTPUT.bin holds float32 boxes
//       [B, A, 4], scores [B, A, C], then each level's box and class logits, finest first. Prints JSON
//       {"detections": [[image, x1, y1, x2, y2, score, class], ...]}: detkit's postprocess (per-class NMS,
//       no cap on the count) at CONF and IOU.
//   export_tool nms PREDICTIONS.bin BATCH ANCHORS CLASSES CONF IOU
//       detkit's postprocess (as `forward` prints it) on float32 boxes [B, A, 4] then scores [B, A, C] computed
//       elsewhere (onnxruntime's outputs of a file without --nms).
//   export_tool opencv FILE.onnx BATCH SIZE INPUT.bin OUTPUT.bin
//       the file run by cv::dnn on the same input; OUTPUT.bin holds every graph output in the file's order.
#include <ATen/ATen.h>
#include <torch/types.h>

#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "core/fs.h"
#include "export/onnx.h"
#include "infer/postprocess.h"
#include "models/checkpoint.h"
#include "models/yolo.h"

#ifdef DETKIT_WITH_OPENCV
#include <opencv2/dnn.hpp>
#endif

namespace {

using namespace detkit;

at::Tensor read_input(const std::string& path, int64_t batch, int64_t size) {
  const std::string raw = read_file(path);
  at::Tensor input = at::empty({batch, 3, size, size}, at::kFloat);
  if (raw.size() != static_cast<std::size_t>(input.nbytes()))
    throw std::runtime_error("input has " + std::to_string(raw.size()) + " bytes, expected " + std::to_string(input.nbytes()));
  std::memcpy(input.data_ptr(), raw.data(), raw.size());
  return input;
}

void write_tensor(std::ofstream& out, const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
}

int make(int argc, char** argv) {
  if (argc < 7) return 2;
  at::manual_seed(std::stoll(argv[5]));
  models::YoloOptions options;
  options.scale = models::yolo_scale(argv[2]);
  options.classes = std::stoll(argv[3]);
  options.stride4 = argc > 7 && std::string(argv[7]) == "stride4";
  models::YoloDetector net(options);
  torch::NoGradGuard no_grad;
  for (auto& b : net->named_buffers(true)) {
    if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 2.0);
    if (b.key().find("running_mean") != std::string::npos) b.value().normal_(0.0, 0.2);
  }
  for (auto& p : net->named_parameters(true)) {
    const bool batchnorm = p.key().find(".bn.") != std::string::npos;
    if (batchnorm && p.key().find("weight") != std::string::npos) p.value().uniform_(0.7, 1.3);
    if (batchnorm && p.key().find("bias") != std::string::npos) p.value().normal_(0.0, 0.1);
  }
  // Class biases near zero, so scores spread over (0, 1) and NMS has real work on a random input.
  for (auto& p : net->named_parameters(true))
    if (p.key().rfind("cls_heads.", 0) == 0 && p.key().find("bias") != std::string::npos && p.value().dim() == 1 &&
        p.value().size(0) == options.classes)
      p.value().normal_(0.0, 0.5);
  nlohmann::json meta;
  meta["format"] = models::kCheckpointFormat;
  meta["model"] = options.scale.name;
  std::vector<std::string> names;
  for (int64_t c = 0; c < options.classes; ++c) names.push_back("class" + std::to_string(c));
  meta["class_names"] = names;
  meta["imgsz"] = std::stoll(argv[4]);
  meta["stride4"] = options.stride4;
  models::write_checkpoint(argv[6], models::serialize_checkpoint(net, nullptr, nullptr, meta));
  return 0;
}

nlohmann::json detections_json(const DecodedPredictions& decoded, double conf, double iou, int64_t reg) {
  PostprocessOptions po;
  po.conf_threshold = conf;
  po.iou_threshold = iou;
  po.max_det = 1000000;
  po.max_candidates = 1000000;
  po.reg_max = reg;
  nlohmann::json detections = nlohmann::json::array();
  const auto per_image = postprocess(decoded, po);
  for (std::size_t i = 0; i < per_image.size(); ++i) {
    const Detections& d = per_image[i];
    for (int64_t k = 0; k < d.scores.size(0); ++k)
      detections.push_back({static_cast<double>(i), d.boxes[k][0].item<double>(), d.boxes[k][1].item<double>(),
                            d.boxes[k][2].item<double>(), d.boxes[k][3].item<double>(), d.scores[k].item<double>(),
                            static_cast<double>(d.classes[k].item<int64_t>())});
  }
  return nlohmann::json{{"detections", detections}};
}

int nms(int argc, char** argv) {
  if (argc != 8) return 2;
  const int64_t batch = std::stoll(argv[3]), anchors = std::stoll(argv[4]), classes = std::stoll(argv[5]);
  const std::string raw = read_file(argv[2]);
  const int64_t box_values = batch * anchors * 4, score_values = batch * anchors * classes;
  if (raw.size() != static_cast<std::size_t>((box_values + score_values) * 4))
    throw std::runtime_error("predictions file has " + std::to_string(raw.size()) + " bytes");
  DecodedPredictions decoded;
  decoded.boxes = at::empty({batch, anchors, 4}, at::kFloat);
  decoded.probabilities = at::empty({batch, anchors, classes}, at::kFloat);
  std::memcpy(decoded.boxes.data_ptr(), raw.data(), static_cast<std::size_t>(box_values * 4));
  std::memcpy(decoded.probabilities.data_ptr(), raw.data() + box_values * 4, static_cast<std::size_t>(score_values * 4));
  std::cout << detections_json(decoded, std::stod(argv[6]), std::stod(argv[7]), 16).dump() << "\n";
  return 0;
}

int forward(int argc, char** argv) {
  if (argc != 9) return 2;
  models::LoadedModel loaded = models::load_model(argv[2], c10::Device(c10::kCPU));
  loaded.model->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor input = read_input(argv[5], std::stoll(argv[3]), std::stoll(argv[4]));
  const auto levels = loaded.model->forward(input);
  const int64_t reg = loaded.model->options().reg_max;
  const DecodedPredictions decoded = decode_predictions(levels, reg);
  std::ofstream out(argv[6], std::ios::binary);
  write_tensor(out, decoded.boxes);
  write_tensor(out, decoded.probabilities);
  for (const auto& level : levels) {
    write_tensor(out, level.box);
    write_tensor(out, level.cls);
  }
  std::cout << detections_json(decoded, std::stod(argv[7]), std::stod(argv[8]), reg).dump() << "\n";
  return out ? 0 : 1;
}

int opencv(int argc, char** argv) {
  if (argc != 7) return 2;
#ifdef DETKIT_WITH_OPENCV
  const exporting::OnnxInfo info = exporting::read_onnx_info(argv[2]);
  const int64_t batch = std::stoll(argv[3]), size = std::stoll(argv[4]);
  const at::Tensor input = read_input(argv[5], batch, size);
  cv::dnn::Net net = cv::dnn::readNetFromONNX(argv[2]);
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  const int dims[] = {static_cast<int>(batch), 3, static_cast<int>(size), static_cast<int>(size)};
  cv::Mat blob(4, dims, CV_32F, input.data_ptr<float>());
  net.setInput(blob, info.inputs.at(0).name);
  std::vector<cv::String> names;
  for (const auto& o : info.outputs) names.push_back(o.name);
  std::vector<cv::Mat> outputs;
  net.forward(outputs, names);
  std::ofstream out(argv[6], std::ios::binary);
  for (const cv::Mat& m : outputs) {
    const cv::Mat c = m.isContinuous() ? m : m.clone();
    out.write(reinterpret_cast<const char*>(c.ptr<float>()), static_cast<std::streamsize>(c.total() * sizeof(float)));
  }
  return out ? 0 : 1;
#else
  std::cerr << "export_tool: built without OpenCV\n";
  return 77;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "";
  try {
    int rc = 2;
    if (what == "make") rc = make(argc, argv);
    else if (what == "forward") rc = forward(argc, argv);
    else if (what == "nms") rc = nms(argc, argv);
    else if (what == "opencv") rc = opencv(argc, argv);
    if (rc == 2) std::cerr << "usage: see the comment at the top of export_tool.cpp\n";
    return rc;
  } catch (const detkit::Error& e) {
    std::cerr << detkit::format_error(e) << "\n";
    return 6;
  } catch (const std::exception& e) {
    std::cerr << "export_tool: " << e.what() << "\n";
    return 1;
  }
}
