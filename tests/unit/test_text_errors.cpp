#include <gtest/gtest.h>

#include "core/boxes.h"
#include "core/error.h"
#include "core/text.h"
#include "test_util.h"

using namespace detkit;

TEST(Text, NearestSuggestsTyposAndUniquePrefixes) {
  const std::vector<std::string> keys{"epochs", "lr0", "lrf", "batch", "nominal_batch", "weight_decay"};
  EXPECT_EQ(nearest("epoch", keys).value_or(""), "epochs");
  EXPECT_EQ(nearest("wieght_decay", keys).value_or(""), "weight_decay");
  EXPECT_EQ(nearest("btach", keys).value_or(""), "batch");
  EXPECT_EQ(nearest("nominal", keys).value_or(""), "nominal_batch");
  EXPECT_FALSE(nearest("completely_unrelated", keys).has_value());
}

TEST(Text, StrictNumberParsing) {
  EXPECT_EQ(parse_int("42").value_or(-1), 42);
  EXPECT_FALSE(parse_int("42x"));
  EXPECT_FALSE(parse_int("4.2"));
  EXPECT_FALSE(parse_int(""));
  EXPECT_DOUBLE_EQ(parse_double("1e-3").value_or(0), 1e-3);
  EXPECT_FALSE(parse_double("nan"));
  EXPECT_FALSE(parse_double("0.1.2"));
  EXPECT_EQ(parse_bool("Yes"), std::optional<bool>(true));
  EXPECT_EQ(parse_bool("off"), std::optional<bool>(false));
  EXPECT_FALSE(parse_bool("maybe"));
}

TEST(Text, ByteSizesAndDurations) {
  EXPECT_EQ(parse_bytes("24GiB").value_or(0), 24ull << 30);
  EXPECT_EQ(parse_bytes("512 MiB").value_or(0), 512ull << 20);
  EXPECT_EQ(parse_bytes("1.5GB").value_or(0), 1500000000ull);
  EXPECT_EQ(parse_bytes("4096").value_or(0), 4096ull);
  EXPECT_FALSE(parse_bytes("12 parsecs"));
  EXPECT_EQ(format_bytes(1536ull << 20), "1.5 GiB");
  EXPECT_EQ(format_bytes(100), "100 B");
  EXPECT_EQ(format_duration(12.34), "12.3s");
  EXPECT_EQ(format_duration(187), "3m07s");
  EXPECT_EQ(format_duration(3720), "1h02m");
}

TEST(Errors, FormatHasErrorWhyAndFixLines) {
  const DataError e({"box is outside the image", "x2 = 700 but the image is 640 wide", "clip the box or fix the label",
                     "labels/0001.txt:3"});
  EXPECT_EQ(format_error(e),
            "error: labels/0001.txt:3: box is outside the image\n"
            "  why: x2 = 700 but the image is 640 wide\n"
            "fix: clip the box or fix the label\n");
  EXPECT_EQ(e.exit_code(), ExitCode::data);
  EXPECT_STREQ(e.kind(), "data error");
}

TEST(Errors, EachKindMapsToItsDocumentedExitCode) {
  EXPECT_EQ(UsageError({"x"}).exit_code(), ExitCode::usage);
  EXPECT_EQ(ConfigError({"x"}).exit_code(), ExitCode::usage);
  EXPECT_EQ(EnvironmentError({"x"}).exit_code(), ExitCode::environment);
  EXPECT_EQ(OutOfMemoryError({"x"}).exit_code(), ExitCode::out_of_memory);
  EXPECT_EQ(CheckpointError({"x"}).exit_code(), ExitCode::checkpoint);
  EXPECT_EQ(RunError({"x"}).exit_code(), ExitCode::failed);
  EXPECT_EQ(InterruptedError({"x"}).exit_code(), ExitCode::interrupted);
  EXPECT_EQ(InternalError({"x"}).exit_code(), ExitCode::internal);
  EXPECT_EQ(static_cast<int>(ExitCode::out_of_memory), 5);
}

TEST(Errors, AssertFailureIsAnInternalErrorNamingTheSource) {
  EXPECT_THROW_WITH(DETKIT_ASSERT(1 + 1 == 3, "arithmetic"), InternalError, "test_text_errors.cpp", "report");
  EXPECT_NO_THROW(DETKIT_ASSERT(true, ""));
}

TEST(Boxes, ConversionsRoundTrip) {
  const Box b = make_xywh(10, 20, 30, 40);
  const Box xyxy = b.convert(BoxFormat::xyxy);
  EXPECT_DOUBLE_EQ(xyxy.c, 40);
  EXPECT_DOUBLE_EQ(xyxy.d, 60);
  const Box c = b.convert(BoxFormat::cxcywh);
  EXPECT_DOUBLE_EQ(c.a, 25);
  EXPECT_DOUBLE_EQ(c.b, 40);
  const Box back = c.convert(BoxFormat::xywh);
  EXPECT_DOUBLE_EQ(back.a, 10);
  EXPECT_DOUBLE_EQ(back.d, 40);
  EXPECT_DOUBLE_EQ(b.area(), 1200);
  EXPECT_DOUBLE_EQ(make_xyxy(5, 5, 3, 9).area(), 0.0);  // inverted corners have no area
}

TEST(Boxes, IouAndClip) {
  EXPECT_DOUBLE_EQ(iou(make_xyxy(0, 0, 10, 10), make_xyxy(0, 0, 10, 10)), 1.0);
  EXPECT_DOUBLE_EQ(iou(make_xyxy(0, 0, 10, 10), make_xyxy(5, 0, 15, 10)), 50.0 / 150.0);
  EXPECT_DOUBLE_EQ(iou(make_xyxy(0, 0, 10, 10), make_xywh(20, 20, 5, 5)), 0.0);
  EXPECT_DOUBLE_EQ(iou(make_xyxy(0, 0, 0, 0), make_xyxy(0, 0, 0, 0)), 0.0);
  const Box clipped = clip(make_xyxy(-5, 3, 700, 500), 640, 480);
  EXPECT_DOUBLE_EQ(clipped.a, 0);
  EXPECT_DOUBLE_EQ(clipped.c, 640);
  EXPECT_DOUBLE_EQ(clipped.d, 480);
}
