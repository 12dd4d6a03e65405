// The torch-free half of `detkit export` (src/export): the graph builder, float16 rounding, the ONNX
// protobuf writer read back by detkit's own reader, and the TorchScript source. Independent checks of the
// written files (python3-onnx's checker, onnxruntime, OpenCV, torch.jit.load) are in
// tests/reference/test_export_reference.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"
#include "export/graph.h"
#include "export/onnx.h"
#include "export/torchscript.h"
#include "test_util.h"

namespace detkit::exporting {
namespace {

using detkit::testing::TempDir;

// images [B, 3, 8, 8] -> Conv 3x3 -> SiLU -> Resize x2 -> out; metadata and doc, as the exporter writes them.
Graph small_graph(bool dynamic_batch = false) {
  GraphBuilder g("tiny");
  const Dimension batch = dynamic_batch ? Dimension{-1, "batch"} : Dimension{2, ""};
  g.input({"images", ElementType::float32, {batch, {3, ""}, {8, ""}, {8, ""}}, "the input"});
  std::vector<float> weight(4 * 3 * 3 * 3);
  for (std::size_t k = 0; k < weight.size(); ++k) weight[k] = 0.01f * static_cast<float>(k) - 0.5f;
  const std::string w = g.constant("conv.weight", {4, 3, 3, 3}, weight);
  const std::string b = g.constant("conv.bias", {4}, {0.1f, -0.2f, 0.3f, 0.f});
  const std::string conv = g.op("Conv", {"images", w, b},
                                {Attribute::make_ints("kernel_shape", {3, 3}), Attribute::make_ints("strides", {1, 1}),
                                 Attribute::make_ints("pads", {1, 1, 1, 1})});
  const std::string silu = g.op("Mul", {conv, g.op("Sigmoid", {conv})});
  const std::string up = g.op("Resize", {silu, "", g.constant("up.scales", {4}, {1, 1, 2, 2}, true)},
                              {Attribute::make_string("mode", "nearest")});
  g.output(up, {"features", ElementType::float32, {batch, {4, ""}, {16, ""}, {16, ""}}, "upsampled features"});
  return g.take();
}

OnnxWriteOptions write_options(int opset = 17) {
  OnnxWriteOptions o;
  o.opset = opset;
  o.producer_version = "0.test";
  o.metadata = {{"detkit.classes", R"(["cat","dog"])"}, {"detkit.imgsz", "640"}};
  o.doc = "a test graph";
  return o;
}

TEST(ExportGraph, BuilderNamesAreUniqueAndOutputsRenamed) {
  const Graph graph = small_graph();
  ASSERT_EQ(graph.nodes.size(), 4u);
  EXPECT_EQ(graph.nodes.back().op, "Resize");
  EXPECT_EQ(graph.nodes.back().outputs, std::vector<std::string>{"features"});
  std::set<std::string> produced;
  for (const auto& node : graph.nodes)
    for (const auto& out : node.outputs) EXPECT_TRUE(produced.insert(out).second) << out << " produced twice";
  EXPECT_EQ(graph.parameter_count(), 4 * 27 + 4 + 4);
  EXPECT_EQ(graph.op_counts().at("Mul"), 1);
  GraphBuilder g("names");
  EXPECT_NE(g.constant("w", {1}, {1.f}), g.constant("w", {1}, {2.f}));
}

TEST(ExportGraph, ConstantOfTheWrongSizeIsAnInternalError) {
  GraphBuilder g("bad");
  EXPECT_THROW(g.constant("w", {2, 2}, {1.f, 2.f, 3.f}), InternalError);
}

TEST(ExportGraph, HalfRoundingMatchesIeeeBinary16) {
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);                    // largest finite
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);                    // rounds up to infinity
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);       // smallest subnormal
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -26)), 0x0000);       // below half of it: zero
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // a tie rounds to even (down)
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // a tie rounds to even (up)
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(std::nanf("")))));
  // Every finite half survives the round trip exactly.
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    if ((bits & 0x7c00) == 0x7c00) continue;
    EXPECT_EQ(float_to_half(half_to_float(static_cast<uint16_t>(bits))), bits) << std::hex << bits;
  }
}

TEST(ExportGraph, Float16ConversionKeepsMarkedInitializersFloat32) {
  Graph graph = small_graph();
  convert_to_float16(graph);
  EXPECT_EQ(graph.find_initializer("conv.weight")->type, ElementType::float16);
  EXPECT_EQ(graph.find_initializer("up.scales")->type, ElementType::float32);  // Resize scales are float by spec
  EXPECT_EQ(graph.inputs[0].type, ElementType::float16);
  EXPECT_EQ(graph.outputs[0].type, ElementType::float16);
}

TEST(ExportOnnx, WrittenFileReadsBackWithItsInterfaceAndMetadata) {
  TempDir dir;
  const fs::path file = dir / "tiny.onnx";
  write_onnx(file, small_graph(true), write_options(15));
  const OnnxInfo info = read_onnx_info(file);
  EXPECT_EQ(info.opset, 15);
  EXPECT_EQ(info.ir_version, 8);
  EXPECT_EQ(info.producer_name, "detkit");
  EXPECT_EQ(info.producer_version, "0.test");
  EXPECT_EQ(info.metadata.at("detkit.imgsz"), "640");
  EXPECT_EQ(info.metadata.at("detkit.classes"), R"(["cat","dog"])");
  ASSERT_EQ(info.inputs.size(), 1u);  // initializers are not listed as inputs
  EXPECT_EQ(describe_value(info.inputs[0]), "float32[batch,3,8,8]");
  ASSERT_EQ(info.outputs.size(), 1u);
  EXPECT_EQ(describe_value(info.outputs[0]), "float32[batch,4,16,16]");
  EXPECT_EQ(info.initializers, 3);
  EXPECT_EQ(info.nodes, 4);
  EXPECT_EQ(info.op_counts.at("Conv"), 1);
  EXPECT_EQ(info.op_counts.at("Resize"), 1);
}

TEST(ExportOnnx, IrVersionFollowsTheOpset) {
  EXPECT_EQ(ir_version_for_opset(13), 7);
  EXPECT_EQ(ir_version_for_opset(14), 7);
  EXPECT_EQ(ir_version_for_opset(15), 8);
  EXPECT_EQ(ir_version_for_opset(17), 8);
}

TEST(ExportOnnx, Float16WeightsAreWrittenAsHalfBits) {
  Graph graph = small_graph();
  const std::string fp32 = serialize_onnx(graph, write_options());
  convert_to_float16(graph);
  const std::string fp16 = serialize_onnx(graph, write_options());
  // The conv weight's 108 values shrink from 4 to 2 bytes each; the bias from 16 to 8 bytes.
  EXPECT_EQ(fp32.size() - fp16.size(), 108u * 2 + 4u * 2);
  const uint16_t first = float_to_half(-0.5f);
  EXPECT_NE(fp16.find(std::string(reinterpret_cast<const char*>(&first), 2)), std::string::npos);
  EXPECT_EQ(parse_onnx_info(fp16, "fp16").inputs[0].type, ElementType::float16);
}

TEST(ExportOnnx, OpsetOutsideTheSupportedRangeIsRefused) {
  EXPECT_THROW_WITH(serialize_onnx(small_graph(), write_options(18)), UsageError, "ONNX opset 18 is not supported", "use --opset 17");
  EXPECT_THROW_WITH(serialize_onnx(small_graph(), write_options(11)), UsageError, "opset 11", "use --opset 13");
}

TEST(ExportOnnx, DamagedFilesAreDataErrorsNamingTheFile) {
  TempDir dir;
  const std::string bytes = serialize_onnx(small_graph(), write_options());
  // Truncation at many points: never a crash, always a DataError naming the file (or a valid prefix
  // that lacks the graph).
  for (std::size_t keep : {std::size_t{1}, std::size_t{7}, bytes.size() / 3, bytes.size() / 2, bytes.size() - 1}) {
    const fs::path file = dir / cat("cut", keep, ".onnx");
    write_file_atomic(file, bytes.substr(0, keep));
    EXPECT_THROW_WITH(read_onnx_info(file), DataError, file.string(), "");
  }
  const fs::path text = dir / "notes.onnx";
  write_file_atomic(text, "this is not a protobuf file\n");
  EXPECT_THROW_WITH(read_onnx_info(text), DataError, "notes.onnx", "");
  EXPECT_THROW_WITH(read_onnx_info(dir / "missing.onnx"), DataError, "missing.onnx", "");
}

TEST(ExportTorchScript, SourceDefinesForwardOverTheWeights) {
  const TorchScriptSource source = torchscript_source(small_graph(true));
  EXPECT_NE(source.code.find("def forward(self, images: Tensor)"), std::string::npos) << source.code;
  EXPECT_NE(source.code.find("torch.conv2d("), std::string::npos) << source.code;
  EXPECT_NE(source.code.find("torch.sigmoid("), std::string::npos) << source.code;
  ASSERT_EQ(source.attributes.size(), 2u);  // weight and bias; the Resize scales are inlined
  const std::set<std::pair<std::string, std::string>> attributes(source.attributes.begin(), source.attributes.end());
  EXPECT_EQ(attributes, (std::set<std::pair<std::string, std::string>>{{"conv.weight", "conv_weight"}, {"conv.bias", "conv_bias"}}));
}

TEST(ExportTorchScript, UnsupportedOperatorIsNamed) {
  GraphBuilder g("nms");
  g.input({"boxes", ElementType::float32, {{1, ""}, {4, ""}, {4, ""}}, ""});
  g.input({"scores", ElementType::float32, {{1, ""}, {1, ""}, {4, ""}}, ""});
  g.output(g.op("NonMaxSuppression", {"boxes", "scores"}), {"selected", ElementType::int64, {{-1, "k"}, {3, ""}}, ""});
  EXPECT_THROW_WITH(torchscript_source(g.take()), UsageError, "NonMaxSuppression", "");
}

}  // namespace
}  // namespace detkit::exporting
