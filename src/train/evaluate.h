// Evaluating a detector on a split: predictions through the validation loader, mapped back to each image's
// own pixels, scored with COCO's rules (eval/coco_eval.h), plus the curves and confusion matrix of
// eval/detection_metrics.h for `detkit eval --model`.
#pragma once

#include <c10/core/Device.h>

#include <string>
#include <vector>

#include "augment/loader.h"
#include "core/torch_plugin.h"
#include "data/dataset.h"
#include "eval/coco_eval.h"
#include "infer/predict.h"
#include "models/yolo.h"

namespace detkit::train {

// The split's boxes as COCO ground truth (xywh pixels, area w*h, crowd kept as crowd); boxes whose class
// is not declared are left out, as the loader leaves them out of training.
CocoGroundTruth split_ground_truth(const Dataset& dataset, const Split& split);

struct Validation {
  CocoEvalResult coco;
  std::vector<CocoDetection> detections;  // category ids of the dataset, boxes in the images' pixels
  infer::PredictStats predict;
};

// Predicts every image of `loader` (built on `split` of `dataset` with augment=false) and scores the
// predictions against the split's ground truth. With score=false the detections are collected and `coco`
// is left empty (distributed validation scores all ranks' detections together).
Validation validate(models::YoloDetector& model, augment::Loader& loader, const c10::Device& device, const Dataset& dataset,
                    const Split& split, const infer::PredictOptions& options, bool score = true);
// The same for any backend's forward pass (an exported ONNX file).
Validation validate(const infer::ForwardFn& forward, augment::Loader& loader, const c10::Device& device, const Dataset& dataset,
                    const Split& split, const infer::PredictOptions& options, bool score = true);

// `detkit eval --model`: loads the checkpoint, validates, and writes into request.out_dir (when set)
// metrics.json (COCO stats, per-class AP, precision/recall/F1 at the best confidence), curves.json (PR
// and confidence curves, confusion matrix), predictions.json (COCO results) and samples.jpg (the first
// 16 images with ground truth in white and predictions above 0.25 confidence in class colours). Throws UsageError (unknown split, class
// names that differ from the model's), DataError (checkpoint, images).
EvaluateModelResult evaluate_model(const EvaluateModelRequest& request);

}  // namespace detkit::train
