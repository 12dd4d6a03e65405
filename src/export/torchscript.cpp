#include "export/torchscript.h"

#include <cctype>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/text.h"

namespace detkit::exporting {

namespace {

std::string list(const std::vector<int64_t>& v) {
  std::vector<std::string> parts;
  for (const int64_t x : v) parts.push_back(std::to_string(x));
  return "[" + join(parts, ", ") + "]";
}

std::string identifier(const std::string& name) {
  std::string out;
  for (const char c : name) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out.front()))) out = "w_" + out;
  return out;
}

class Translator {
 public:
  explicit Translator(const Graph& graph) : graph_(graph) {
    for (const auto& in : graph.inputs) names_[in.name] = identifier(in.name);
  }

  TorchScriptSource run() {
    std::ostringstream body;
    for (const auto& node : graph_.nodes) body << "    " << statement(node) << "\n";
    std::vector<std::string> outs, types;
    for (const auto& out : graph_.outputs) {
      outs.push_back(value(out.name));
      types.push_back("Tensor");
    }
    std::vector<std::string> params;
    for (const auto& in : graph_.inputs) params.push_back(identifier(in.name) + ": Tensor");
    TorchScriptSource source;
    source.code = cat("def forward(self, ", join(params, ", "), ") -> Tuple[", join(types, ", "), "]:\n", body.str(),
                      "    return (", join(outs, ", "), ",)\n");
    source.attributes = attributes_;
    return source;
  }

 private:
  // The expression for a value: a local, or a module attribute for an initializer.
  std::string value(const std::string& name) {
    if (name.empty()) return "None";
    if (const auto it = names_.find(name); it != names_.end()) return it->second;
    if (graph_.find_initializer(name)) {
      std::string attr = identifier(name);
      while (attribute_names_.count(attr)) attr += "_";
      attribute_names_.insert(attr);
      attributes_.emplace_back(name, attr);
      return names_[name] = "self." + attr;
    }
    DETKIT_ASSERT(false, cat("TorchScript translation: value ", name, " is used before it is produced"));
  }
  std::string local(const std::string& name) { return names_[name] = cat("v", ++locals_); }

  const std::vector<int64_t>& ints(const Node& node, const char* attribute) {
    const Attribute* a = node.attribute(attribute);
    DETKIT_ASSERT(a && a->kind == Attribute::Kind::ints, cat(node.op, " needs the attribute ", attribute));
    return a->ints;
  }
  int64_t integer(const Node& node, const char* attribute, int64_t fallback) {
    const Attribute* a = node.attribute(attribute);
    return a ? a->i : fallback;
  }
  const Initializer& constant(const Node& node, std::size_t input) {
    const Initializer* init = node.inputs.size() > input ? graph_.find_initializer(node.inputs[input]) : nullptr;
    if (!init) unsupported(node, "its shape or scales are not constants");
    return *init;
  }
  // Symmetric padding as TorchScript takes it, from ONNX's [begin..., end...].
  std::vector<int64_t> symmetric_pads(const Node& node) {
    const Attribute* a = node.attribute("pads");
    if (!a) return {0, 0};
    const auto& pads = a->ints;
    const std::size_t half = pads.size() / 2;
    std::vector<int64_t> out(pads.begin(), pads.begin() + static_cast<std::ptrdiff_t>(half));
    for (std::size_t k = 0; k < half; ++k)
      if (pads[k] != pads[k + half]) unsupported(node, "its padding is not symmetric");
    return out;
  }
  [[noreturn]] void unsupported(const Node& node, const std::string& why) {
    throw UsageError({cat("the graph cannot be written as TorchScript: ", node.op, " (", node.name, ")"), why,
                      node.op == "NonMaxSuppression"
                          ? "export TorchScript without --nms and run NMS on its outputs (torchvision.ops.batched_nms)"
                          : "export to ONNX instead"});
  }

  std::string statement(const Node& node) {
    const auto in = [&](std::size_t k) { return value(node.inputs.at(k)); };
    const std::string& op = node.op;
    if (op == "Split") {
      if (node.inputs.size() > 1) unsupported(node, "only equal splits are translated");
      const std::string parts = cat("parts", ++locals_);
      std::string s = cat(parts, " = torch.chunk(", in(0), ", ", node.outputs.size(), ", ", integer(node, "axis", 0), ")");
      for (std::size_t k = 0; k < node.outputs.size(); ++k) s += cat("\n    ", local(node.outputs[k]), " = ", parts, "[", k, "]");
      return s;
    }
    std::string expr;
    if (op == "Conv") {
      if (!node.attribute("strides") || ints(node, "kernel_shape").size() != 2) unsupported(node, "only 2-d convolutions are translated");
      expr = cat("torch.conv2d(", in(0), ", ", in(1), ", ", node.inputs.size() > 2 ? in(2) : "None", ", ",
                 list(ints(node, "strides")), ", ", list(symmetric_pads(node)), ", [1, 1], ", integer(node, "group", 1), ")");
    } else if (op == "Sigmoid") {
      expr = cat("torch.sigmoid(", in(0), ")");
    } else if (op == "Mul" || op == "Add" || op == "Sub") {
      expr = cat("torch.", op == "Mul" ? "mul" : op == "Add" ? "add" : "sub", "(", in(0), ", ", in(1), ")");
    } else if (op == "Concat") {
      std::vector<std::string> parts;
      for (std::size_t k = 0; k < node.inputs.size(); ++k) parts.push_back(in(k));
      expr = cat("torch.cat([", join(parts, ", "), "], ", integer(node, "axis", 0), ")");
    } else if (op == "MaxPool") {
      expr = cat("torch.max_pool2d(", in(0), ", ", list(ints(node, "kernel_shape")), ", ", list(ints(node, "strides")), ", ",
                 list(symmetric_pads(node)), ")");
    } else if (op == "Resize") {
      const Attribute* mode = node.attribute("mode");
      if (!mode || mode->s != "nearest") unsupported(node, "only nearest resizing is translated");
      const Initializer& scales = constant(node, 2);
      if (scales.floats.size() != 4 || scales.floats[0] != 1.f || scales.floats[1] != 1.f)
        unsupported(node, "only spatial scales of a 4-d tensor are translated");
      expr = cat("torch.upsample_nearest2d(", in(0), ", None, [", std::to_string(scales.floats[2]), ", ",
                 std::to_string(scales.floats[3]), "])");
    } else if (op == "Reshape") {
      const Initializer& shape = constant(node, 1);
      std::vector<std::string> dims;
      const std::string source = in(0);
      for (std::size_t k = 0; k < shape.ints.size(); ++k)
        dims.push_back(shape.ints[k] == 0 ? cat(source, ".size(", k, ")") : std::to_string(shape.ints[k]));
      expr = cat(source, ".reshape([", join(dims, ", "), "])");
    } else if (op == "Softmax") {
      expr = cat("torch.softmax(", in(0), ", ", integer(node, "axis", -1), ")");
    } else if (op == "Transpose") {
      expr = cat(in(0), ".permute(", list(ints(node, "perm")), ")");
    } else if (op == "Identity") {
      expr = in(0);
    } else {
      unsupported(node, "TorchScript translation covers the detector's operators only");
    }
    return cat(local(node.outputs.at(0)), " = ", expr);
  }

  const Graph& graph_;
  std::map<std::string, std::string> names_;
  std::set<std::string> attribute_names_;
  std::vector<std::pair<std::string, std::string>> attributes_;
  int64_t locals_ = 0;
};

}  // namespace

TorchScriptSource torchscript_source(const Graph& graph) { return Translator(graph).run(); }

}  // namespace detkit::exporting
