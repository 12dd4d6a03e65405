// An ONNX file written by `detkit export`, run through OpenCV's DNN module: an independent runtime, so
// `detkit detect --model FILE.onnx` and `detkit eval --model FILE.onnx` check an export on the user's own
// images with the same loader, letterbox, NMS and outputs as the LibTorch model.
//
// OpenCV is optional at build time (Debian's libopencv-dnn-dev); without it, loading throws an
// EnvironmentError that says so.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "export/onnx.h"
#include "infer/predict.h"

namespace detkit::infer {

struct OnnxDetector {
  std::string path;
  exporting::OnnxInfo info;
  std::vector<std::string> class_names;
  int64_t imgsz = 0;       // the file's square input size (fixed at export)
  int64_t batch = 0;       // the file's batch size; 0: dynamic
  std::string runtime;     // "OpenCV 4.6.0 DNN"
  ForwardFn forward;       // CPU tensors in and out; any batch (split or padded to the file's)
};

// True for a path ending in .onnx (any case).
bool is_onnx_path(const std::string& path);

// Whether this build can run ONNX files (OpenCV DNN was found), and its version ("" when not).
std::string onnx_runtime_name();

// Reads the file's metadata and loads it into OpenCV. Throws DataError for a file that is not a detkit
// export (no class names or input size in its metadata) or that OpenCV cannot load, UsageError for an
// export with NMS in the graph (OpenCV's DNN module has no NonMaxSuppression) or a float16 one, and
// EnvironmentError when this build has no OpenCV.
OnnxDetector load_onnx_detector(const std::string& path);

}  // namespace detkit::infer
