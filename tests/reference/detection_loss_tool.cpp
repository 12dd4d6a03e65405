// Runs detkit's task-aligned assigner and detection loss on the inputs in a JSON file and prints their
// outputs as JSON, for test_detection_loss_reference.py to compare with its plain-PyTorch implementation.
// Tensors travel as flat lists of numbers with their shapes given alongside.
#include <ATen/ATen.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "models/assigner.h"
#include "models/loss.h"
#include "models/yolo.h"

namespace {

at::Tensor tensor(const nlohmann::json& values, const std::vector<int64_t>& shape, at::ScalarType type = at::kFloat) {
  const std::vector<double> flat = values.get<std::vector<double>>();
  return at::tensor(flat, at::kDouble).to(type).view(shape);
}

template <class T>
std::vector<T> values(const at::Tensor& t) {
  const at::Tensor c = t.contiguous().to(c10::CppTypeToScalarType<T>::value);
  return {c.data_ptr<T>(), c.data_ptr<T>() + c.numel()};
}

nlohmann::json run_assigner(const nlohmann::json& in) {
  const int64_t b = in["B"], a = in["A"], c = in["C"], m = in["M"];
  detkit::models::AssignerOptions options;
  options.topk = in["topk"];
  options.alpha = in["alpha"];
  options.beta = in["beta"];
  const auto out = detkit::models::assign_task_aligned(
      tensor(in["scores"], {b, a, c}), tensor(in["pred_boxes"], {b, a, 4}), tensor(in["anchors"], {a, 2}),
      tensor(in["gt_labels"], {b, m, 1}, at::kLong), tensor(in["gt_boxes"], {b, m, 4}),
      tensor(in["gt_mask"], {b, m, 1}, at::kBool), options);
  return {{"labels", values<int64_t>(out.labels)},     {"boxes", values<float>(out.boxes)},
          {"scores", values<float>(out.scores)},       {"foreground", values<int64_t>(out.foreground)},
          {"gt_index", values<int64_t>(out.gt_index)}};
}

nlohmann::json run_loss(const nlohmann::json& in) {
  const int64_t b = in["B"], c = in["C"], bins = in["reg_max"];
  std::vector<detkit::models::LevelOutput> outputs;
  for (const auto& level : in["levels"]) {
    const int64_t h = level["h"], w = level["w"];
    outputs.push_back({tensor(level["box"], {b, 4 * bins, h, w}), tensor(level["cls"], {b, c, h, w}), level["stride"]});
  }
  detkit::models::LossOptions options;
  options.reg_max = bins;
  const detkit::models::DetectionLoss loss(options);
  nlohmann::json results = nlohmann::json::array();
  for (const auto& targets : in["targets"]) {
    const int64_t n = static_cast<int64_t>(targets.size()) / 6;
    const auto terms = loss(outputs, tensor(targets, {n, 6}), b);
    results.push_back({{"total", terms.total.item<double>()},
                       {"box", terms.box.item<double>()},
                       {"cls", terms.cls.item<double>()},
                       {"dfl", terms.dfl.item<double>()}});
  }
  return results;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: detection_loss_tool INPUT.json\n";
    return 2;
  }
  try {
    const auto in = nlohmann::json::parse(detkit::read_file(argv[1]));
    nlohmann::json out;
    out["assign"] = nlohmann::json::array();
    for (const auto& problem : in["assign"]) out["assign"].push_back(run_assigner(problem));
    out["loss"] = run_loss(in["loss"]);
    std::cout << out.dump() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "detection_loss_tool: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
