// Starting from weights users already have: a PyTorch checkpoint (models/pt_file.h), an Ultralytics-layout
// YOLOv8 detection checkpoint, or a detkit checkpoint, mapped name by name onto a YoloDetector.
//
// Name mapping. detkit's own names (and those of the Python model in bench/train/peer.py) load as they
// are. Ultralytics YOLOv8 names ("model.N.…" inside a DetectionModel) map by layer: 0-9 are the backbone
// (backbone.N), 12, 15, 16, 18, 19, 21 the neck (neck.0-5), 22 the head: cv2.L → box_heads.L, cv3.L →
// cls_heads.L (their last, plain convolution gains detkit's ".conv."), dfl.conv.weight [1,16,1,1] → bins [16].
// A tensor loads when its element count matches (a different shape of the same size is "reshaped");
// otherwise the model's own initialisation is kept ("new"): a different class count re-initialises the
// class branch's layers whose width depends on it, and nothing else.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/torch_plugin.h"
#include "models/yolo.h"

namespace detkit::models {

// What a weights file describes, read from its tensors' shapes: scale, classes, class names, imgsz.
struct WeightsArchitecture {
  std::string model;                     // "yolo-n", "yolo-s", "yolo-m"
  int64_t classes = 0;
  bool stride4 = false;
  std::vector<std::string> class_names;  // from the file ("" entries when it names none)
  int64_t imgsz = 0;                     // from the file, 0 when it does not record one
};

// Loads `file` into `model` (on any device) by the mapping above and returns the table of what happened
// (result.rows; result.out is left empty). `expect_model` names the scale the caller built: a file of
// another scale is a ConfigError saying which scale it holds. Throws CheckpointError (unreadable file, or
// fewer than half the model's tensors found: not a layout detkit knows).
ImportResult load_weights_into(YoloDetector& model, const std::string& file, const std::string& expect_model);

// The architecture stored in `file`. Throws CheckpointError when it is not a detector detkit can build
// (another family, YOLOv8 l/x, a reg_max other than 16).
WeightsArchitecture read_architecture(const std::string& file);

// Throws ConfigError naming the scale to set when `arch` is not `expect_model`.
void check_weights_scale(const WeightsArchitecture& arch, const std::string& file, const std::string& expect_model);

// `detkit import`: builds the detector `file` describes, loads it, and writes a detkit checkpoint to
// request.out (atomically) that `detect`, `eval --model` and `weights=` read. Class names and imgsz come
// from the request, else from the file, else "class0".. and 640.
ImportResult import_weights(const ImportRequest& request);

// freeze=backbone|N|"" (config field): stops gradients for the backbone (the first 10 layers in
// Ultralytics' numbering) or for layers 0..N-1 in that numbering. Returns the number of parameter tensors
// frozen. Throws ConfigError for another value.
int64_t apply_freeze(YoloDetector& model, const std::string& freeze);

}  // namespace detkit::models
