#include "export/onnx.h"

#include <cstring>

#include "core/error.h"
#include "core/text.h"

namespace detkit::exporting {

namespace {

static_assert(sizeof(float) == 4, "ONNX raw_data holds IEEE 754 binary32");

// Field numbers of onnx.proto (proto2): the wire format is the contract with every ONNX runtime.
namespace model_field {
constexpr int ir_version = 1, producer_name = 2, producer_version = 3, doc_string = 6, graph = 7, opset_import = 8,
              metadata_props = 14;
}
namespace graph_field {
constexpr int node = 1, name = 2, initializer = 5, input = 11, output = 12;
}
namespace node_field {
constexpr int input = 1, output = 2, name = 3, op_type = 4, attribute = 5;
}
namespace attribute_field {
constexpr int name = 1, f = 2, i = 3, s = 4, ints = 8, type = 20;
constexpr int type_float = 1, type_int = 2, type_string = 3, type_ints = 7;
}
namespace tensor_field {
constexpr int dims = 1, data_type = 2, name = 8, raw_data = 9;
}
namespace value_field {
constexpr int name = 1, type = 2, doc_string = 3;
}
constexpr int kTypeTensor = 1, kTensorElemType = 1, kTensorShape = 2, kShapeDim = 1, kDimValue = 1, kDimParam = 2;
constexpr int kWireVarint = 0, kWire64 = 1, kWireBytes = 2, kWire32 = 5;

class ProtoWriter {
 public:
  void varint(uint64_t v) {
    while (v >= 0x80) {
      bytes_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    bytes_.push_back(static_cast<char>(v));
  }
  void key(int field, int wire) { varint(static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire)); }
  void integer(int field, int64_t v) {
    key(field, kWireVarint);
    varint(static_cast<uint64_t>(v));
  }
  void bytes(int field, const std::string& s) {
    key(field, kWireBytes);
    varint(s.size());
    bytes_ += s;
  }
  void message(int field, const ProtoWriter& m) { bytes(field, m.bytes_); }
  void float32(int field, float v) {
    key(field, kWire32);
    char raw[4];
    std::memcpy(raw, &v, 4);
    bytes_.append(raw, 4);
  }
  const std::string& str() const { return bytes_; }

 private:
  std::string bytes_;
};

template <typename T>
void append_raw(std::string& out, T v) {
  char raw[sizeof(T)];
  std::memcpy(raw, &v, sizeof(T));
  out.append(raw, sizeof(T));
}

ProtoWriter encode_tensor(const Initializer& init) {
  ProtoWriter t;
  for (const int64_t d : init.dims) t.integer(tensor_field::dims, d);
  t.integer(tensor_field::data_type, static_cast<int64_t>(init.type));
  t.bytes(tensor_field::name, init.name);
  std::string raw;
  switch (init.type) {
    case ElementType::float32:
      raw.reserve(init.floats.size() * 4);
      for (const float v : init.floats) append_raw(raw, v);
      break;
    case ElementType::float16:
      raw.reserve(init.floats.size() * 2);
      for (const float v : init.floats) append_raw(raw, float_to_half(v));
      break;
    case ElementType::int64:
      raw.reserve(init.ints.size() * 8);
      for (const int64_t v : init.ints) append_raw(raw, v);
      break;
  }
  t.bytes(tensor_field::raw_data, raw);
  return t;
}

ProtoWriter encode_value(const ValueInfo& value) {
  ProtoWriter shape;
  for (const auto& d : value.dims) {
    ProtoWriter dim;
    if (!d.symbol.empty()) dim.bytes(kDimParam, d.symbol);
    else dim.integer(kDimValue, d.size);
    shape.message(kShapeDim, dim);
  }
  ProtoWriter tensor;
  tensor.integer(kTensorElemType, static_cast<int64_t>(value.type));
  tensor.message(kTensorShape, shape);
  ProtoWriter type;
  type.message(kTypeTensor, tensor);
  ProtoWriter v;
  v.bytes(value_field::name, value.name);
  v.message(value_field::type, type);
  if (!value.doc.empty()) v.bytes(value_field::doc_string, value.doc);
  return v;
}

ProtoWriter encode_node(const Node& node) {
  ProtoWriter n;
  for (const auto& in : node.inputs) n.bytes(node_field::input, in);
  for (const auto& out : node.outputs) n.bytes(node_field::output, out);
  n.bytes(node_field::name, node.name);
  n.bytes(node_field::op_type, node.op);
  for (const auto& a : node.attributes) {
    ProtoWriter attr;
    attr.bytes(attribute_field::name, a.name);
    switch (a.kind) {
      case Attribute::Kind::f:
        attr.float32(attribute_field::f, a.f);
        attr.integer(attribute_field::type, attribute_field::type_float);
        break;
      case Attribute::Kind::i:
        attr.integer(attribute_field::i, a.i);
        attr.integer(attribute_field::type, attribute_field::type_int);
        break;
      case Attribute::Kind::s:
        attr.bytes(attribute_field::s, a.s);
        attr.integer(attribute_field::type, attribute_field::type_string);
        break;
      case Attribute::Kind::ints:
        for (const int64_t v : a.ints) attr.integer(attribute_field::ints, v);
        attr.integer(attribute_field::type, attribute_field::type_ints);
        break;
    }
    n.message(node_field::attribute, attr);
  }
  return n;
}

// ---- Reading -----------------------------------------------------------------------------------------

class ProtoReader {
 public:
  ProtoReader(const char* begin, std::size_t size, const std::string& where) : p_(begin), end_(begin + size), where_(where) {}
  bool done() const { return p_ >= end_; }
  // The next field's number and wire type.
  std::pair<int, int> key() {
    const uint64_t k = varint();
    return {static_cast<int>(k >> 3), static_cast<int>(k & 7)};
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) fail("a number runs past the end of the file");
      const auto byte = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
    fail("a number is longer than 10 bytes");
  }
  std::string bytes() {
    const uint64_t n = varint();
    if (n > static_cast<uint64_t>(end_ - p_)) fail("a field runs past the end of the file");
    std::string s(p_, static_cast<std::size_t>(n));
    p_ += n;
    return s;
  }
  ProtoReader sub() {
    const uint64_t n = varint();
    if (n > static_cast<uint64_t>(end_ - p_)) fail("a message runs past the end of the file");
    ProtoReader r(p_, static_cast<std::size_t>(n), where_);
    p_ += n;
    return r;
  }
  void skip(int wire) {
    switch (wire) {
      case kWireVarint: varint(); return;
      case kWire64: advance(8); return;
      case kWireBytes: advance(varint()); return;
      case kWire32: advance(4); return;
      default: fail(cat("unknown protobuf wire type ", wire));
    }
  }
  void expect(int wire, int want, const char* what) {
    if (wire != want) fail(cat("field '", what, "' has wire type ", wire, ", expected ", want));
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw DataError({"not a well-formed ONNX model", why, "export the model again with 'detkit export'", where_});
  }

 private:
  void advance(uint64_t n) {
    if (n > static_cast<uint64_t>(end_ - p_)) fail("a field runs past the end of the file");
    p_ += n;
  }
  const char* p_;
  const char* end_;
  const std::string& where_;
};

ValueInfo parse_value(ProtoReader r) {
  ValueInfo v;
  while (!r.done()) {
    const auto [field, wire] = r.key();
    if (field == value_field::name && wire == kWireBytes) v.name = r.bytes();
    else if (field == value_field::doc_string && wire == kWireBytes) v.doc = r.bytes();
    else if (field == value_field::type && wire == kWireBytes) {
      ProtoReader type = r.sub();
      while (!type.done()) {
        const auto [tf, tw] = type.key();
        if (tf != kTypeTensor || tw != kWireBytes) {
          type.skip(tw);
          continue;
        }
        ProtoReader tensor = type.sub();
        while (!tensor.done()) {
          const auto [f, w] = tensor.key();
          if (f == kTensorElemType && w == kWireVarint) v.type = static_cast<ElementType>(tensor.varint());
          else if (f == kTensorShape && w == kWireBytes) {
            ProtoReader shape = tensor.sub();
            while (!shape.done()) {
              const auto [sf, sw] = shape.key();
              if (sf != kShapeDim || sw != kWireBytes) {
                shape.skip(sw);
                continue;
              }
              ProtoReader dim = shape.sub();
              Dimension d;
              while (!dim.done()) {
                const auto [df, dw] = dim.key();
                if (df == kDimValue && dw == kWireVarint) d.size = static_cast<int64_t>(dim.varint());
                else if (df == kDimParam && dw == kWireBytes) d.symbol = dim.bytes();
                else dim.skip(dw);
              }
              v.dims.push_back(d);
            }
          } else tensor.skip(w);
        }
      }
    } else r.skip(wire);
  }
  return v;
}

}  // namespace

int64_t ir_version_for_opset(int opset) { return opset <= 14 ? 7 : 8; }

std::string serialize_onnx(const Graph& graph, const OnnxWriteOptions& options) {
  if (options.opset < kMinOpset || options.opset > kMaxOpset)
    throw UsageError({cat("ONNX opset ", options.opset, " is not supported"),
                      cat("detkit writes opsets ", kMinOpset, " to ", kMaxOpset,
                          ": Softmax and Resize took their present form in 13, and 18 changed Split and the Reduce operators"),
                      cat("use --opset ", options.opset < kMinOpset ? kMinOpset : kMaxOpset)});
  ProtoWriter g;
  for (const auto& node : graph.nodes) g.message(graph_field::node, encode_node(node));
  g.bytes(graph_field::name, graph.name);
  for (const auto& init : graph.initializers) g.message(graph_field::initializer, encode_tensor(init));
  for (const auto& in : graph.inputs) g.message(graph_field::input, encode_value(in));
  for (const auto& out : graph.outputs) g.message(graph_field::output, encode_value(out));

  ProtoWriter m;
  m.integer(model_field::ir_version, ir_version_for_opset(options.opset));
  m.bytes(model_field::producer_name, "detkit");
  m.bytes(model_field::producer_version, options.producer_version);
  if (!options.doc.empty()) m.bytes(model_field::doc_string, options.doc);
  m.message(model_field::graph, g);
  ProtoWriter opset;
  opset.bytes(1, "");
  opset.integer(2, options.opset);
  m.message(model_field::opset_import, opset);
  for (const auto& [key, value] : options.metadata) {
    ProtoWriter entry;
    entry.bytes(1, key);
    entry.bytes(2, value);
    m.message(model_field::metadata_props, entry);
  }
  return m.str();
}

void write_onnx(const fs::path& path, const Graph& graph, const OnnxWriteOptions& options) {
  write_file_atomic(path, serialize_onnx(graph, options));
}

OnnxInfo parse_onnx_info(const std::string& bytes, const std::string& where) {
  OnnxInfo info;
  ProtoReader r(bytes.data(), bytes.size(), where);
  bool has_graph = false;
  std::vector<std::string> initializer_names;
  std::vector<ValueInfo> inputs;
  while (!r.done()) {
    const auto [field, wire] = r.key();
    switch (field) {
      case model_field::ir_version:
        r.expect(wire, kWireVarint, "ir_version");
        info.ir_version = static_cast<int64_t>(r.varint());
        break;
      case model_field::producer_name:
        r.expect(wire, kWireBytes, "producer_name");
        info.producer_name = r.bytes();
        break;
      case model_field::producer_version:
        r.expect(wire, kWireBytes, "producer_version");
        info.producer_version = r.bytes();
        break;
      case model_field::opset_import: {
        r.expect(wire, kWireBytes, "opset_import");
        ProtoReader o = r.sub();
        std::string domain;
        int64_t version = 0;
        while (!o.done()) {
          const auto [f, w] = o.key();
          if (f == 1 && w == kWireBytes) domain = o.bytes();
          else if (f == 2 && w == kWireVarint) version = static_cast<int64_t>(o.varint());
          else o.skip(w);
        }
        if (domain.empty() || domain == "ai.onnx") info.opset = version;
        break;
      }
      case model_field::metadata_props: {
        r.expect(wire, kWireBytes, "metadata_props");
        ProtoReader e = r.sub();
        std::string key, value;
        while (!e.done()) {
          const auto [f, w] = e.key();
          if (f == 1 && w == kWireBytes) key = e.bytes();
          else if (f == 2 && w == kWireBytes) value = e.bytes();
          else e.skip(w);
        }
        info.metadata[key] = value;
        break;
      }
      case model_field::graph: {
        r.expect(wire, kWireBytes, "graph");
        has_graph = true;
        ProtoReader g = r.sub();
        while (!g.done()) {
          const auto [f, w] = g.key();
          if (f == graph_field::node && w == kWireBytes) {
            ProtoReader n = g.sub();
            ++info.nodes;
            while (!n.done()) {
              const auto [nf, nw] = n.key();
              if (nf == node_field::op_type && nw == kWireBytes) ++info.op_counts[n.bytes()];
              else n.skip(nw);
            }
          } else if (f == graph_field::initializer && w == kWireBytes) {
            ProtoReader t = g.sub();
            ++info.initializers;
            while (!t.done()) {
              const auto [tf, tw] = t.key();
              if (tf == tensor_field::name && tw == kWireBytes) initializer_names.push_back(t.bytes());
              else t.skip(tw);
            }
          } else if (f == graph_field::input && w == kWireBytes) {
            inputs.push_back(parse_value(g.sub()));
          } else if (f == graph_field::output && w == kWireBytes) {
            info.outputs.push_back(parse_value(g.sub()));
          } else {
            g.skip(w);
          }
        }
        break;
      }
      default:
        r.skip(wire);
    }
  }
  if (!has_graph) r.fail("the file has no graph");
  // Old exporters list initializers among the inputs too; a caller feeds only the others.
  for (auto& in : inputs) {
    bool is_initializer = false;
    for (const auto& name : initializer_names) is_initializer = is_initializer || name == in.name;
    if (!is_initializer) info.inputs.push_back(std::move(in));
  }
  return info;
}

OnnxInfo read_onnx_info(const fs::path& path) {
  if (!fs::is_regular_file(path))
    throw DataError({"ONNX model not found", "", "pass the file 'detkit export' wrote", path.string()});
  std::string bytes;
  try {
    bytes = read_file(path);
  } catch (const Error& e) {
    throw DataError({"cannot read the ONNX model", e.message(), "check the file's permissions", path.string()});
  }
  return parse_onnx_info(bytes, path.string());
}

std::string describe_value(const ValueInfo& value) {
  std::string type = value.type == ElementType::float32 ? "float32"
                     : value.type == ElementType::float16 ? "float16"
                     : value.type == ElementType::int64   ? "int64"
                                                          : cat("type", static_cast<int>(value.type));
  std::vector<std::string> dims;
  for (const auto& d : value.dims) dims.push_back(d.symbol.empty() ? (d.size < 0 ? std::string("?") : std::to_string(d.size)) : d.symbol);
  return cat(type, "[", join(dims, ","), "]");
}

}  // namespace detkit::exporting
