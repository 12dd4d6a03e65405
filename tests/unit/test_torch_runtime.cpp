#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include "core/threads.h"
#include "core/torch/compat.h"
#include "core/torch/runtime.h"
#include "core/torch_plugin.h"
#include "test_util.h"

using namespace detkit;

TEST(TorchErrors, ShapeErrorsLoseTheBacktraceAndKeepTheMessage) {
  try {
    guard_torch("the forward pass", [] { return at::matmul(at::ones({2, 3}), at::ones({4, 5})); });
    FAIL() << "expected a shape error";
  } catch (const RunError& e) {
    const std::string text = format_error(e);
    EXPECT_NE(text.find("error: the forward pass failed in LibTorch"), std::string::npos) << text;
    EXPECT_NE(text.find("cannot be multiplied"), std::string::npos) << text;
    EXPECT_EQ(text.find("Exception raised from"), std::string::npos) << text;
    EXPECT_EQ(text.find("frame #"), std::string::npos) << text;
  }
}

TEST(TorchErrors, OutOfMemoryBecomesOutOfMemoryError) {
  EXPECT_THROW_WITH(guard_torch("the training step",
                                [] { TORCH_CHECK_WITH(OutOfMemoryError, false, "CUDA out of memory. Tried to allocate 20.00 GiB"); }),
                    OutOfMemoryError, "the training step ran out of memory", "smaller batch");
  EXPECT_THROW_WITH(guard_torch("allocating", [] { return at::empty({int64_t(1) << 46}, at::kFloat); }), OutOfMemoryError,
                    "allocating ran out of memory", "smaller batch");
  EXPECT_THROW_WITH(guard_torch("decoding", [] { throw std::bad_alloc(); }), OutOfMemoryError,
                    "decoding ran out of host memory", "free RAM");
}

TEST(TorchErrors, CudaFailuresBecomeEnvironmentErrorsWithSpecificRemedies) {
  EXPECT_THROW_WITH(guard_torch("the forward pass",
                                [] { TORCH_CHECK(false, "CUDA error: no kernel image is available for execution on the device"); }),
                    EnvironmentError, "no kernel image", "compute capability");
  EXPECT_THROW_WITH(guard_torch("initialising CUDA",
                                [] { TORCH_CHECK(false, "CUDA driver version is insufficient for CUDA runtime version"); }),
                    EnvironmentError, "insufficient", "update the driver");
  EXPECT_THROW_WITH(guard_torch("a convolution", [] { TORCH_CHECK(false, "cuDNN error: CUDNN_STATUS_NOT_INITIALIZED"); }),
                    EnvironmentError, "CUDNN_STATUS_NOT_INITIALIZED", "cuDNN version");
}

TEST(TorchErrors, DetkitErrorsPassThroughUnchanged) {
  EXPECT_THROW_WITH(guard_torch("loading", [] { throw DataError({"bad label", "", "fix the label", "a.txt:3"}); }),
                    DataError, "a.txt:3: bad label", "fix the label");
}

TEST(TorchErrors, BacktraceStripping) {
  EXPECT_EQ(strip_torch_backtrace("shapes differ\nException raised from foo at bar.cpp:12\nframe #0: x"), "shapes differ");
  EXPECT_EQ(strip_torch_backtrace("  plain  "), "plain");
}

TEST(TorchPlugin, LoadsAndUsesEveryCoreByDefault) {
  ::setenv("DETKIT_TORCH_PLUGIN", DETKIT_BINARY_DIR "/lib/libdetkit_torch.so", 1);
  set_thread_count(0);
  ASSERT_FALSE(torch_plugin_load_error().has_value()) << *torch_plugin_load_error();
  const TorchRuntimeInfo info = torch_plugin().runtime_info();
  EXPECT_EQ(info.torch_version, compat::torch_version());
  EXPECT_EQ(info.intra_op_threads, available_cores());
  EXPECT_EQ(info.cuda_compiled, !info.cuda_version.empty());
  EXPECT_EQ(static_cast<int>(info.devices.size()), info.device_count);
  torch_plugin().set_threads(1);
  EXPECT_EQ(torch_plugin().runtime_info().intra_op_threads, 1);
  torch_plugin().set_threads(available_cores());
}

// compat::set_tcp_store_libuv is used on c10d::TCPStoreOptions, whose `useLibUV` exists in LibTorch 2.x
// only: options with the field get the choice, options without it are left alone and say so.
TEST(Compat, TcpStoreLibuvChoiceIsMadeWhereTheOptionsHaveIt) {
  struct WithChoice {
    bool useLibUV = true;
    int port = 29500;
  } with_choice;
  EXPECT_TRUE(detkit::compat::set_tcp_store_libuv(with_choice, false));
  EXPECT_FALSE(with_choice.useLibUV);
  EXPECT_TRUE(detkit::compat::set_tcp_store_libuv(with_choice, true));
  EXPECT_TRUE(with_choice.useLibUV);
  struct WithoutChoice {
    int port = 29500;
  } without_choice;
  EXPECT_FALSE(detkit::compat::set_tcp_store_libuv(without_choice, false));
  EXPECT_EQ(without_choice.port, 29500);
  static_assert(detkit::compat::has_tcp_store_libuv_choice<WithChoice>::value);
  static_assert(!detkit::compat::has_tcp_store_libuv_choice<WithoutChoice>::value);
}
