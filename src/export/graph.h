// A small dataflow graph of ONNX operators: what `detkit export` builds from a detector, and what the
// ONNX and TorchScript writers serialise. Torch-free: the model side (models/yolo) fills it through
// GraphBuilder with plain float vectors.
//
// Semantics are ONNX's (opset 13..17, the operators listed in export/onnx.h); values are named by
// strings, every node output has exactly one producer, and nodes are kept in a valid topological order
// because they are appended only after their inputs exist.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace detkit::exporting {

enum class ElementType : int32_t { float32 = 1, int64 = 7, float16 = 10 };  // ONNX TensorProto.DataType values

struct Attribute {
  enum class Kind { f, i, s, ints };
  std::string name;
  Kind kind = Kind::i;
  float f = 0;
  int64_t i = 0;
  std::string s;
  std::vector<int64_t> ints;

  static Attribute make_float(std::string name, float v);
  static Attribute make_int(std::string name, int64_t v);
  static Attribute make_string(std::string name, std::string v);
  static Attribute make_ints(std::string name, std::vector<int64_t> v);
};

struct Node {
  std::string op;                    // ONNX op_type, default domain
  std::vector<std::string> inputs;   // "" for an omitted optional input
  std::vector<std::string> outputs;
  std::vector<Attribute> attributes;
  std::string name;

  const Attribute* attribute(const std::string& attribute_name) const;
};

// A constant tensor (weights, anchors, shapes). Values are held as float or int64; float16 exports keep
// float storage and convert when written.
struct Initializer {
  std::string name;
  ElementType type = ElementType::float32;
  std::vector<int64_t> dims;
  std::vector<float> floats;    // type float32 or float16
  std::vector<int64_t> ints;    // type int64
  bool keep_float32 = false;    // stays float32 in a float16 export (operands that must be float: NMS thresholds)
  int64_t element_count() const;
};

// A graph input or output. A dimension is either a size (>= 0) or, when its name is set, symbolic.
struct Dimension {
  int64_t size = -1;
  std::string symbol;  // "batch": any size, named
};
struct ValueInfo {
  std::string name;
  ElementType type = ElementType::float32;
  std::vector<Dimension> dims;
  std::string doc;  // one line: what the value holds
};

struct Graph {
  std::string name;
  std::vector<ValueInfo> inputs, outputs;
  std::vector<Node> nodes;
  std::vector<Initializer> initializers;

  const Initializer* find_initializer(const std::string& value) const;
  // Operator type -> count, for reports.
  std::map<std::string, int64_t> op_counts() const;
  int64_t parameter_count() const;  // elements of float initializers
};

// Appends nodes and initializers with fresh, readable names ("backbone.0.conv.weight", "Conv_12").
class GraphBuilder {
 public:
  explicit GraphBuilder(std::string name) { graph_.name = std::move(name); }

  // A float initializer called `name` (made unique). Throws InternalError when values.size() does not
  // match the dims' product.
  std::string constant(const std::string& name, std::vector<int64_t> dims, std::vector<float> values,
                       bool keep_float32 = false);
  std::string constant_int64(const std::string& name, std::vector<int64_t> dims, std::vector<int64_t> values);
  // One node with one output; returns the output's name.
  std::string op(const std::string& type, std::vector<std::string> inputs, std::vector<Attribute> attributes = {});
  // One node with `outputs` outputs.
  std::vector<std::string> op_multi(const std::string& type, std::vector<std::string> inputs, int outputs,
                                    std::vector<Attribute> attributes = {});

  void input(ValueInfo value) { graph_.inputs.push_back(std::move(value)); }
  // Declares `value` an output of the graph under `name` (an Identity node renames it when needed).
  void output(const std::string& value, ValueInfo info);

  Graph& graph() { return graph_; }
  Graph take() { return std::move(graph_); }

 private:
  std::string unique(const std::string& base);
  Graph graph_;
  std::map<std::string, int64_t> used_;
};

// Converts every float initializer (except keep_float32 ones), input and output to float16, with Cast
// nodes where a keep_float32 operand meets float16 values is the caller's business (the exporter inserts
// them). Returns the graph changed in place.
void convert_to_float16(Graph& graph);

// IEEE 754 binary16 bits of `value`, rounded to nearest even (overflow to infinity).
uint16_t float_to_half(float value);
float half_to_float(uint16_t bits);

}  // namespace detkit::exporting
