// ONNX files written and read by detkit itself: a protocol-buffer encoder for the parts of onnx.proto
// an exported detector uses (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
// ValueInfoProto, metadata), and a reader for what `detkit detect`/`eval` need to know about a file
// (inputs, outputs, opset, metadata). Torch-free, no libonnx: the same code builds on GPU hosts that have
// only a pip LibTorch.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/fs.h"
#include "export/graph.h"

namespace detkit::exporting {

// Opsets detkit writes. Every operator the exporter emits has the same semantics over this range;
// opset 18 changed Split and the Reduce operators, and Debian's onnx 1.12 and OpenCV 4.6 stop at 17.
inline constexpr int kMinOpset = 13, kMaxOpset = 17;

struct OnnxWriteOptions {
  int opset = 17;
  std::string producer_version;                              // detkit's version
  std::vector<std::pair<std::string, std::string>> metadata;  // metadata_props, in order
  std::string doc;                                            // the model's doc_string
};

// The IR version that goes with `opset` (7 up to opset 14, 8 from 15).
int64_t ir_version_for_opset(int opset);

// The serialised ModelProto. Throws UsageError for an opset outside [kMinOpset, kMaxOpset].
std::string serialize_onnx(const Graph& graph, const OnnxWriteOptions& options);
// serialize_onnx written atomically to `path`. Throws RunError when it cannot be written.
void write_onnx(const fs::path& path, const Graph& graph, const OnnxWriteOptions& options);

// What a reader of the file needs, without the weights.
struct OnnxInfo {
  int64_t ir_version = 0;
  int64_t opset = 0;                    // of the default domain ("" or "ai.onnx")
  std::string producer_name, producer_version;
  std::map<std::string, std::string> metadata;
  std::vector<ValueInfo> inputs;        // graph inputs that are not initializers
  std::vector<ValueInfo> outputs;
  std::map<std::string, int64_t> op_counts;
  int64_t initializers = 0;
  int64_t nodes = 0;
};

// Parses `bytes` (a ModelProto). Throws DataError naming `where` (the file) for bytes that are not a
// well-formed ONNX model (truncated, wrong wire types, no graph).
OnnxInfo parse_onnx_info(const std::string& bytes, const std::string& where);
// Reads and parses the file. Throws DataError for a missing, unreadable or malformed file.
OnnxInfo read_onnx_info(const fs::path& path);

// "float32[batch,3,640,640]"
std::string describe_value(const ValueInfo& value);

}  // namespace detkit::exporting
