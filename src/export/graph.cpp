#include "export/graph.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/text.h"

namespace detkit::exporting {

Attribute Attribute::make_float(std::string name, float v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::f;
  a.f = v;
  return a;
}
Attribute Attribute::make_int(std::string name, int64_t v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::i;
  a.i = v;
  return a;
}
Attribute Attribute::make_string(std::string name, std::string v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::s;
  a.s = std::move(v);
  return a;
}
Attribute Attribute::make_ints(std::string name, std::vector<int64_t> v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::ints;
  a.ints = std::move(v);
  return a;
}

const Attribute* Node::attribute(const std::string& attribute_name) const {
  for (const auto& a : attributes)
    if (a.name == attribute_name) return &a;
  return nullptr;
}

int64_t Initializer::element_count() const {
  int64_t n = 1;
  for (const int64_t d : dims) n *= d;
  return n;
}

const Initializer* Graph::find_initializer(const std::string& value) const {
  for (const auto& init : initializers)
    if (init.name == value) return &init;
  return nullptr;
}

std::map<std::string, int64_t> Graph::op_counts() const {
  std::map<std::string, int64_t> counts;
  for (const auto& node : nodes) ++counts[node.op];
  return counts;
}

int64_t Graph::parameter_count() const {
  int64_t n = 0;
  for (const auto& init : initializers)
    if (init.type != ElementType::int64) n += init.element_count();
  return n;
}

std::string GraphBuilder::unique(const std::string& base) {
  const int64_t n = used_[base]++;
  return n == 0 ? base : cat(base, "_", n);
}

std::string GraphBuilder::constant(const std::string& name, std::vector<int64_t> dims, std::vector<float> values,
                                   bool keep_float32) {
  Initializer init;
  init.name = unique(name);
  init.dims = std::move(dims);
  init.floats = std::move(values);
  init.keep_float32 = keep_float32;
  DETKIT_ASSERT(init.element_count() == static_cast<int64_t>(init.floats.size()),
                cat("initializer ", init.name, " has ", init.floats.size(), " values for ", init.element_count(), " elements"));
  graph_.initializers.push_back(std::move(init));
  return graph_.initializers.back().name;
}

std::string GraphBuilder::constant_int64(const std::string& name, std::vector<int64_t> dims, std::vector<int64_t> values) {
  Initializer init;
  init.name = unique(name);
  init.type = ElementType::int64;
  init.dims = std::move(dims);
  init.ints = std::move(values);
  DETKIT_ASSERT(init.element_count() == static_cast<int64_t>(init.ints.size()),
                cat("initializer ", init.name, " has ", init.ints.size(), " values for ", init.element_count(), " elements"));
  graph_.initializers.push_back(std::move(init));
  return graph_.initializers.back().name;
}

std::vector<std::string> GraphBuilder::op_multi(const std::string& type, std::vector<std::string> inputs, int outputs,
                                                std::vector<Attribute> attributes) {
  Node node;
  node.op = type;
  node.name = unique(type);
  node.inputs = std::move(inputs);
  node.attributes = std::move(attributes);
  for (int k = 0; k < outputs; ++k) node.outputs.push_back(outputs == 1 ? node.name + ".out" : cat(node.name, ".out", k));
  graph_.nodes.push_back(std::move(node));
  return graph_.nodes.back().outputs;
}

std::string GraphBuilder::op(const std::string& type, std::vector<std::string> inputs, std::vector<Attribute> attributes) {
  return op_multi(type, std::move(inputs), 1, std::move(attributes)).front();
}

void GraphBuilder::output(const std::string& value, ValueInfo info) {
  // Graph outputs get stable, documented names; the producing node's output is renamed in place.
  for (auto& node : graph_.nodes)
    for (auto& out : node.outputs)
      if (out == value) {
        out = info.name;
        for (auto& other : graph_.nodes)
          for (auto& in : other.inputs)
            if (in == value) in = info.name;
        graph_.outputs.push_back(std::move(info));
        return;
      }
  DETKIT_ASSERT(false, cat("graph output ", value, " is not produced by any node"));
}

uint16_t float_to_half(float value) {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t exponent = (x >> 23) & 0xffu;
  uint32_t mantissa = x & 0x7fffffu;
  if (exponent == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mantissa ? 0x200u : 0u));  // inf, nan
  const int32_t e = static_cast<int32_t>(exponent) - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow
  if (e <= 0) {                                               // subnormal or zero in half precision
    if (e < -10) return static_cast<uint16_t>(sign);
    mantissa |= 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = (static_cast<uint32_t>(e) << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent: correct
  return static_cast<uint16_t>(sign | half);
}

float half_to_float(uint16_t bits) {
  const uint32_t sign = (bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  float out;
  if (exponent == 0) {
    out = std::ldexp(static_cast<float>(mantissa), -24);
    if (sign) out = -out;
    return out;
  }
  uint32_t x;
  if (exponent == 31) x = sign | 0x7f800000u | (mantissa << 13);
  else x = sign | ((exponent + 112) << 23) | (mantissa << 13);
  std::memcpy(&out, &x, 4);
  return out;
}

void convert_to_float16(Graph& graph) {
  for (auto& init : graph.initializers)
    if (init.type == ElementType::float32 && !init.keep_float32) init.type = ElementType::float16;
  for (auto& v : graph.inputs)
    if (v.type == ElementType::float32) v.type = ElementType::float16;
  for (auto& v : graph.outputs)
    if (v.type == ElementType::float32) v.type = ElementType::float16;
}

}  // namespace detkit::exporting
