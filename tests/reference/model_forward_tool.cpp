// Runs a detkit checkpoint on one raw image, for test_import_reference.py to compare with the Python model
// the weights came from. Usage: model_forward_tool MODEL.pt H W INPUT.bin OUTPUT.bin
// INPUT.bin: float32 [1, 3, H, W], little-endian. OUTPUT.bin: float32, for each level finest first, the box
// output [1, 4*16, h, w] then the class output [1, classes, h, w], each flattened (eval mode).
#include <ATen/ATen.h>
#include <torch/types.h>

#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>

#include "core/error.h"
#include "core/fs.h"
#include "models/checkpoint.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: model_forward_tool MODEL.pt H W INPUT.bin OUTPUT.bin\n";
    return 2;
  }
  try {
    const int64_t h = std::stoll(argv[2]), w = std::stoll(argv[3]);
    detkit::models::LoadedModel loaded = detkit::models::load_model(argv[1], c10::Device(c10::kCPU));
    const std::string raw = detkit::read_file(argv[4]);
    at::Tensor image = at::empty({1, 3, h, w}, at::kFloat);
    if (raw.size() != static_cast<std::size_t>(image.nbytes())) {
      std::cerr << "input has " << raw.size() << " bytes, expected " << image.nbytes() << "\n";
      return 2;
    }
    std::memcpy(image.data_ptr(), raw.data(), raw.size());
    torch::NoGradGuard no_grad;
    loaded.model->eval();
    std::ofstream out(argv[5], std::ios::binary);
    for (const auto& level : loaded.model->forward(image))
      for (const at::Tensor& t : {level.box, level.cls}) {
        const at::Tensor c = t.contiguous();
        out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
      }
    return out ? 0 : 1;
  } catch (const detkit::Error& e) {
    std::cerr << detkit::format_error(e) << "\n";
    return 6;
  } catch (const std::exception& e) {
    std::cerr << "model_forward_tool: " << e.what() << "\n";
    return 1;
  }
}
