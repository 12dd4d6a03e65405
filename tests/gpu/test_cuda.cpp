// Checks that only a CUDA device can answer: the plugin sees the GPU, kernels run forward and backward
// in fp32 and half precision, and a real device out-of-memory becomes OutOfMemoryError.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <iostream>
#include <torch/cuda.h>

#include "core/torch/runtime.h"
#include "core/torch_plugin.h"
#include "test_util.h"

using namespace detkit;

namespace {
bool have_cuda() { return torch::cuda::is_available() && torch::cuda::device_count() > 0; }
}  // namespace

#define REQUIRE_CUDA() \
  if (!have_cuda()) GTEST_SKIP() << "no CUDA device visible"

TEST(Gpu, PluginReportsTheDevice) {
  REQUIRE_CUDA();
  ::setenv("DETKIT_TORCH_PLUGIN", DETKIT_BINARY_DIR "/lib/libdetkit_torch.so", 1);
  const TorchRuntimeInfo info = torch_plugin().runtime_info();
  EXPECT_TRUE(info.cuda_compiled);
  EXPECT_GE(info.device_count, 1);
  ASSERT_FALSE(info.devices.empty());
  EXPECT_NE(info.devices[0].find("sm_"), std::string::npos) << info.devices[0];
  std::cout << "device: " << info.devices[0] << ", CUDA " << info.cuda_version << ", cuDNN " << info.cudnn_version << "\n";
}

TEST(Gpu, ConvolutionForwardBackwardMatchesTheCpu) {
  REQUIRE_CUDA();
  at::manual_seed(0);
  const at::Tensor x = at::randn({4, 3, 64, 64});
  const at::Tensor w = at::randn({8, 3, 3, 3});
  at::Tensor xg = x.cuda().requires_grad_(true), wg = w.cuda().requires_grad_(true);
  at::Tensor xc = x.clone().requires_grad_(true), wc = w.clone().requires_grad_(true);
  at::conv2d(xg, wg, {}, 1, 1).square().sum().backward();
  at::conv2d(xc, wc, {}, 1, 1).square().sum().backward();
  EXPECT_TRUE(at::allclose(wg.grad().cpu(), wc.grad(), 1e-2, 1e-2));
  const at::Tensor half = at::conv2d(x.cuda().to(at::kHalf), w.cuda().to(at::kHalf), {}, 1, 1).to(at::kFloat).cpu();
  EXPECT_TRUE(at::allclose(half, at::conv2d(x, w, {}, 1, 1), 5e-2, 5e-2));
}

TEST(Gpu, DeviceOutOfMemoryIsTranslated) {
  REQUIRE_CUDA();
  EXPECT_THROW_WITH(guard_torch("allocating on the GPU",
                                [] { return at::empty({int64_t(1) << 42}, at::TensorOptions().device(at::kCUDA).dtype(at::kFloat)); }),
                    OutOfMemoryError, "allocating on the GPU ran out of memory", "smaller batch");
  // The device is usable afterwards.
  EXPECT_EQ(at::ones({16}, at::TensorOptions().device(at::kCUDA)).sum().item<float>(), 16.0f);
}
