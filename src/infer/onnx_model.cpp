#include "infer/onnx_model.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/text.h"

#ifdef DETKIT_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/dnn.hpp>
#endif

namespace detkit::infer {

bool is_onnx_path(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".onnx";
}

std::string onnx_runtime_name() {
#ifdef DETKIT_WITH_OPENCV
  return cat("OpenCV ", CV_VERSION, " DNN");
#else
  return "";
#endif
}

namespace {

// The facts detect and eval need, from the metadata `detkit export` writes.
void read_metadata(OnnxDetector& d) {
  const auto& meta = d.info.metadata;
  const auto classes = meta.find("detkit.classes");
  const auto imgsz = meta.find("detkit.imgsz");
  if (classes == meta.end() || imgsz == meta.end())
    throw DataError({"the ONNX file is not a detkit export",
                     "its metadata lacks detkit.classes and detkit.imgsz, which say what the outputs mean",
                     "export the model with 'detkit export --format onnx'", d.path});
  try {
    for (const auto& name : nlohmann::json::parse(classes->second)) d.class_names.push_back(name.get<std::string>());
    d.imgsz = std::stoll(imgsz->second);
  } catch (const std::exception& e) {
    throw DataError({"the ONNX file's detkit metadata cannot be read", e.what(), "export the model again", d.path});
  }
  if (meta.count("detkit.nms"))
    throw UsageError({"this ONNX file has NonMaxSuppression in its graph, which OpenCV's DNN module cannot run",
                      "it was exported with --nms for runtimes such as onnxruntime and TensorRT",
                      "export again without --nms to use it with detkit detect or eval", d.path});
  for (const auto& in : d.info.inputs)
    if (in.type != exporting::ElementType::float32)
      throw UsageError({"this ONNX file takes float16 input (exported with --half)", "OpenCV's DNN module runs float32 files on the CPU",
                        "export again without --half to use it with detkit detect or eval", d.path});
  if (d.info.inputs.size() != 1 || d.info.inputs[0].dims.size() != 4)
    throw DataError({"the ONNX file does not take one image batch [B, 3, H, W]", "", "export the model again", d.path});
  const auto& batch = d.info.inputs[0].dims[0];
  d.batch = batch.symbol.empty() ? batch.size : 0;
  bool has_boxes = false, has_scores = false;
  for (const auto& out : d.info.outputs) {
    has_boxes = has_boxes || out.name == "boxes";
    has_scores = has_scores || out.name == "scores";
  }
  if (!has_boxes || !has_scores)
    throw DataError({"the ONNX file has no 'boxes' and 'scores' outputs", "", "export the model again", d.path});
}

#ifdef DETKIT_WITH_OPENCV
at::Tensor to_tensor(const cv::Mat& m) {
  std::vector<int64_t> sizes;
  for (int k = 0; k < m.dims; ++k) sizes.push_back(m.size[k]);
  const cv::Mat dense = m.isContinuous() ? m : m.clone();
  return at::from_blob(const_cast<float*>(dense.ptr<float>()), sizes, at::kFloat).clone();
}
#endif

}  // namespace

OnnxDetector load_onnx_detector(const std::string& path) {
#ifndef DETKIT_WITH_OPENCV
  throw EnvironmentError({"this build of detkit cannot run ONNX files",
                          "OpenCV's DNN module was not found when detkit was built",
                          "install libopencv-dnn-dev and rebuild (make build), or run the file in onnxruntime", path});
#else
  OnnxDetector d;
  d.path = path;
  d.info = exporting::read_onnx_info(path);
  read_metadata(d);
  d.runtime = onnx_runtime_name();
  // One network per detector; OpenCV's Net is not safe to run from two threads at once.
  struct Runner {
    cv::dnn::Net net;
    std::mutex mutex;
  };
  auto runner = std::make_shared<Runner>();
  try {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
    runner->net = cv::dnn::readNetFromONNX(path);
    runner->net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    runner->net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  } catch (const cv::Exception& e) {
    throw DataError({"OpenCV's DNN module cannot load the ONNX file", e.what(),
                     "check the file with python3 -c 'import onnx; onnx.checker.check_model(\"FILE\")', or export it again", path});
  }
  const int64_t file_batch = d.batch, imgsz = d.imgsz;
  const std::string where = path;
  d.forward = [runner, file_batch, imgsz, where](const at::Tensor& input) {
    if (input.dim() != 4 || input.size(1) != 3 || input.size(2) != imgsz || input.size(3) != imgsz)
      throw UsageError({cat("the ONNX file takes ", imgsz, "x", imgsz, " images; got input ", input.sizes()),
                        "an exported file's input size is fixed", cat("use --imgsz ", imgsz, " (or 0: the file's size)"), where});
    const at::Tensor cpu = input.to(at::kCPU, at::kFloat).contiguous();
    const int64_t n = cpu.size(0), step = file_batch > 0 ? file_batch : n;
    std::vector<at::Tensor> boxes, scores;
    std::lock_guard<std::mutex> lock(runner->mutex);
    for (int64_t begin = 0; begin < n; begin += step) {
      const int64_t count = std::min(step, n - begin);
      at::Tensor chunk = cpu.narrow(0, begin, count);
      if (count < step) chunk = at::cat({chunk, at::zeros({step - count, 3, imgsz, imgsz}, chunk.options())});  // a fixed batch
      chunk = chunk.contiguous();
      const int sizes[4] = {static_cast<int>(step), 3, static_cast<int>(imgsz), static_cast<int>(imgsz)};
      std::vector<cv::Mat> outs;
      try {
        runner->net.setInput(cv::Mat(4, sizes, CV_32F, chunk.data_ptr<float>()), "images");
        runner->net.forward(outs, std::vector<cv::String>{"boxes", "scores"});
      } catch (const cv::Exception& e) {
        throw DataError({"OpenCV's DNN module failed to run the ONNX file", e.what(), "export the model again", where});
      }
      boxes.push_back(to_tensor(outs[0]).narrow(0, 0, count));
      scores.push_back(to_tensor(outs[1]).narrow(0, 0, count));
    }
    return DecodedPredictions{at::cat(boxes), at::cat(scores)};
  };
  return d;
#endif
}

}  // namespace detkit::infer
