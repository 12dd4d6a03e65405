// An export graph as TorchScript source: the `forward` method of a module whose attributes are the
// graph's weights. The plugin registers the attributes and compiles the source with LibTorch's
// TorchScript compiler (torch::jit::Module::define), so the saved file loads with torch.jit.load in
// Python and torch::jit::load in C++, with a dynamic batch (the C++ tracer would bake the batch size
// into every reshape). Torch-free.
#pragma once

#include <string>
#include <vector>

#include "export/graph.h"

namespace detkit::exporting {

struct TorchScriptSource {
  std::string code;  // "def forward(self, images: Tensor) -> Tuple[Tensor, ...]:\n    ..."
  // Initializer name -> module attribute name (a Python identifier), for every initializer the code reads.
  std::vector<std::pair<std::string, std::string>> attributes;
};

// Translates the graph. Supports the operators the detector graph uses without NMS (Conv, Sigmoid, Mul,
// Add, Sub, Split into equal halves, Concat, MaxPool, nearest Resize by constant scales, Reshape to a
// constant shape, Softmax, Transpose, Identity). Throws UsageError naming the first operator it cannot
// translate (e.g. NonMaxSuppression: LibTorch has no NMS operator without torchvision).
TorchScriptSource torchscript_source(const Graph& graph);

}  // namespace detkit::exporting
