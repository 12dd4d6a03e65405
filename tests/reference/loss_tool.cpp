// Runs detkit's box-loss functions on the inputs in a JSON file and prints their outputs as JSON, for
// test_box_loss_reference.py to compare with torchvision and plain-PyTorch references.
#include <ATen/ATen.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "models/box_loss.h"

namespace {
at::Tensor tensor(const nlohmann::json& values, std::vector<int64_t> shape) {
  std::vector<float> flat;
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& v) {
    if (v.is_array())
      for (const auto& x : v) walk(x);
    else
      flat.push_back(v.get<float>());
  };
  walk(values);
  return at::tensor(flat).view(shape);
}
std::vector<float> values(const at::Tensor& t) {
  const at::Tensor c = t.contiguous().to(at::kFloat);
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: loss_tool INPUT.json\n";
    return 2;
  }
  using namespace detkit::models;
  const auto in = nlohmann::json::parse(detkit::read_file(argv[1]));
  const int64_t n = in["n"], bins = in["bins"];
  nlohmann::json out;
  out["ciou"] = values(complete_iou(tensor(in["a"], {n, 4}), tensor(in["b"], {n, 4})));
  out["dfl"] = values(distribution_focal_loss(tensor(in["dfl_logits"], {n, 4, bins}), tensor(in["dfl_targets"], {n, 4})));
  out["decoded"] = values(decode_distribution(tensor(in["dfl_logits"], {n, 4 * bins}), bins));
  const auto [points, strides] = make_anchors(in["grids"].get<std::vector<std::vector<int64_t>>>(),
                                              in["strides"].get<std::vector<int64_t>>());
  out["anchors"] = values(points);
  out["anchor_strides"] = values(strides);
  const at::Tensor p = tensor(in["points"], {n, 2});
  const at::Tensor boxes = tensor(in["a"], {n, 4});
  const at::Tensor d = bbox_to_distance(p, boxes, 1e9);
  out["roundtrip"] = values(distance_to_bbox(d, p));
  std::cout << out.dump() << "\n";
  return 0;
}
