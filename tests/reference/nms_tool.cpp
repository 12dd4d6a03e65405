// Runs detkit's batched_nms on the cases in a JSON file and prints the kept indices as JSON, for
// test_nms_reference.py to compare with torchvision.ops.batched_nms on the same inputs.
#include <ATen/ATen.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "infer/nms.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: nms_tool CASES.json\n";
    return 2;
  }
  const auto doc = nlohmann::json::parse(detkit::read_file(argv[1]));
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : doc["cases"]) {
    std::vector<float> flat;
    for (const auto& box : c["boxes"])
      for (const auto& v : box) flat.push_back(v.get<float>());
    const int64_t n = static_cast<int64_t>(c["scores"].size());
    const at::Tensor boxes = at::tensor(flat).view({n, 4});
    const at::Tensor scores = at::tensor(c["scores"].get<std::vector<float>>());
    const at::Tensor classes = at::tensor(c["classes"].get<std::vector<int64_t>>());
    const at::Tensor keep = detkit::batched_nms(boxes, scores, classes, c["iou"].get<double>());
    out.push_back(std::vector<int64_t>(keep.data_ptr<int64_t>(), keep.data_ptr<int64_t>() + keep.numel()));
  }
  std::cout << out.dump() << "\n";
  return 0;
}
