// The c10d/Gloo collectives of distributed training (train/process_group.h), with two ranks as two threads
// of this process: averaging in buckets, broadcast, agreement, the TCP rendezvous as torchrun uses it, and
// a rank that stops answering turning into a RunError within the timeout instead of a hang.
#include <ATen/ATen.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/pooling.h>
#include <torch/nn/modules/container/functional.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "test_util.h"
#include "models/sync_batch_norm.h"
#include "train/overlapped_average.h"
#include "train/process_group.h"

using namespace detkit;
using namespace detkit::train;
using detkit::testing::TempDir;
using namespace std::chrono_literals;

namespace {

// Runs `body(group)` on ranks 0 and 1 concurrently over a fresh file store; rethrows a rank's failure.
void two_ranks(const TempDir& dir, const std::function<void(ProcessGroup&)>& body) {
  const std::string store = (dir / "store").string();
  auto rank = [&](int64_t r) {
    auto group = ProcessGroup::connect_file(store, r, 2, 20s);
    body(*group);
  };
  auto other = std::async(std::launch::async, rank, 1);
  rank(0);
  other.get();
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

TEST(ProcessGroup, AveragesTensorsOfEveryShapeAndDtypeAcrossBuckets) {
  if (!distributed_available()) GTEST_SKIP() << "built without Gloo";
  TempDir dir;
  two_ranks(dir, [](ProcessGroup& g) {
    const double r = static_cast<double>(g.rank());
    // Many small tensors and one larger than the bucket, float and double, as gradients come.
    std::vector<at::Tensor> grads;
    for (int k = 0; k < 20; ++k) grads.push_back(at::full({3, k + 1}, r * 10 + k, at::kFloat));
    grads.push_back(at::full({300}, r, at::kFloat));
    grads.push_back(at::full({2, 2}, 4 * r, at::kDouble));
    // A channels-last weight gradient, as the model's are: flattened and written back in its own layout.
    const at::Tensor values = at::arange(2 * 3 * 4 * 5, at::kFloat).view({2, 3, 4, 5});
    grads.push_back((values * (r + 1)).contiguous(at::MemoryFormat::ChannelsLast));
    g.average(grads, /*bucket_bytes=*/256);
    for (int k = 0; k < 20; ++k) EXPECT_TRUE(at::allclose(grads[k], at::full({3, k + 1}, 5.0 + k, at::kFloat))) << k;
    EXPECT_TRUE(at::allclose(grads[20], at::full({300}, 0.5, at::kFloat)));
    EXPECT_TRUE(at::allclose(grads[21], at::full({2, 2}, 2.0, at::kDouble)));
    EXPECT_TRUE(at::allclose(grads[22], values * 1.5));
    EXPECT_TRUE(grads[22].is_contiguous(at::MemoryFormat::ChannelsLast));
  });
}

TEST(ProcessGroup, BroadcastMaxAndSumAgreeOnEveryRank) {
  if (!distributed_available()) GTEST_SKIP() << "built without Gloo";
  TempDir dir;
  two_ranks(dir, [](ProcessGroup& g) {
    at::Tensor weights = at::full({4, 4}, static_cast<double>(g.rank() + 1), at::kFloat);
    at::Tensor strided = at::zeros({4, 4}).t();  // not contiguous: still written in place
    if (g.rank() == 0) strided.fill_(7);
    g.broadcast({weights, strided});
    EXPECT_TRUE(at::equal(weights, at::full({4, 4}, 1.0, at::kFloat)));
    EXPECT_TRUE(at::equal(strided, at::full({4, 4}, 7.0, at::kFloat)));
    // Packed into buckets (here of 64 bytes, so several per dtype), in any memory layout: rank 0's values
    // land element for element.
    const double sign = g.rank() == 0 ? 1.0 : -1.0;
    at::Tensor nhwc = (at::arange(48, at::kFloat).view({2, 2, 3, 4}) * sign).contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor wide = at::arange(40, at::kDouble) * sign;
    at::Tensor small = at::arange(3, at::kFloat) * sign;
    g.broadcast({nhwc, wide, small}, 0, 64);
    EXPECT_TRUE(at::equal(nhwc, at::arange(48, at::kFloat).view({2, 2, 3, 4})));
    EXPECT_TRUE(nhwc.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(at::equal(wide, at::arange(40, at::kDouble)));
    EXPECT_TRUE(at::equal(small, at::arange(3, at::kFloat)));
    EXPECT_EQ(g.max(g.rank() == 1 ? 1 : 0), 1);  // a flag raised on one rank is seen by both
    EXPECT_EQ(g.max(0), 0);
    EXPECT_DOUBLE_EQ(g.sum(g.rank() + 0.5), 2.0);
    g.barrier();
  });
}

TEST(ProcessGroup, TcpRendezvousAsTorchrunSetsItUp) {
  if (!distributed_available()) GTEST_SKIP() << "built without Gloo";
  const int port = free_port();
  auto rank = [port](int64_t r) {
    DistributedEnv env;
    env.rank = r;
    env.world_size = 2;
    env.master_port = port;
    auto group = ProcessGroup::connect(env, 20s);
    return group->sum(static_cast<double>(r + 1));
  };
  auto other = std::async(std::launch::async, rank, 1);
  EXPECT_DOUBLE_EQ(rank(0), 3.0);
  EXPECT_DOUBLE_EQ(other.get(), 3.0);
}

TEST(ProcessGroup, MissingRankIsAnErrorWithinTheTimeoutNotAHang) {
  if (!distributed_available()) GTEST_SKIP() << "built without Gloo";
  DistributedEnv env;
  env.rank = 0;
  env.world_size = 2;
  env.master_port = free_port();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW_WITH(ProcessGroup::connect(env, 2s), RunError, "rank 0 of 2 could not join the job at 127.0.0.1:",
                    "start all 2 ranks within 2 s");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
}

TEST(ProcessGroup, RankThatStopsAnsweringFailsTheOthersCollective) {
  if (!distributed_available()) GTEST_SKIP() << "built without Gloo";
  TempDir dir;
  const std::string store = (dir / "store").string();
  std::promise<void> joined;
  auto quiet = std::async(std::launch::async, [&] {
    auto group = ProcessGroup::connect_file(store, 1, 2, 3s);
    group->barrier();
    joined.set_value();
    std::this_thread::sleep_for(6s);  // alive but never joins the next collective
  });
  auto group = ProcessGroup::connect_file(store, 0, 2, 3s);
  group->barrier();
  joined.get_future().wait();
  const auto start = std::chrono::steady_clock::now();
  std::vector<at::Tensor> grads{at::ones({8})};
  EXPECT_THROW_WITH(group->average(grads), RunError, "averaging gradients failed on rank 0", "another rank stopped");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
  quiet.get();
}

namespace {

struct GroupSum : models::RankSum {
  explicit GroupSum(ProcessGroup& g) : group(g) {}
  void sum_(at::Tensor& t) override { group.sum_(t); }
  ProcessGroup& group;
};

}  // namespace

// SyncBatchNorm: two ranks with 3 and 5 images normalise, backpropagate and update their running
// statistics exactly as one BatchNorm over all 8 images does.
TEST(SyncBatchNorm, TwoRanksEqualOneBatchNormOverTheWholeBatch) {
  if (!distributed_available()) GTEST_SKIP() << "built without Gloo";
  at::manual_seed(3);
  const at::Tensor x = at::randn({8, 6, 5, 4}) * 3 + 1;
  const at::Tensor upstream = at::randn({8, 6, 5, 4});  // d(loss)/d(output)
  const auto options = torch::nn::BatchNorm2dOptions(6).eps(1e-3).momentum(0.03);
  torch::nn::BatchNorm2d reference(options);
  {
    at::NoGradGuard no_grad;
    reference->weight.uniform_(0.5, 1.5);
    reference->bias.uniform_(-0.5, 0.5);
  }
  const at::Tensor x_ref = x.clone().requires_grad_(true);
  const at::Tensor y_ref = reference->forward(x_ref);
  (y_ref * upstream).sum().backward();

  TempDir dir;
  struct RankOut {
    at::Tensor y, x_grad, weight_grad, bias_grad, running_mean, running_var;
  };
  std::vector<RankOut> out(2);
  const int64_t first[] = {0, 3}, count[] = {3, 5};
  two_ranks(dir, [&](ProcessGroup& group) {
    const int64_t r = group.rank();
    torch::nn::BatchNorm2d bn(options);
    {
      at::NoGradGuard no_grad;
      bn->weight.copy_(reference->weight);
      bn->bias.copy_(reference->bias);
    }
    GroupSum sum(group);
    const at::Tensor xr = x.narrow(0, first[r], count[r]).clone().requires_grad_(true);
    const at::Tensor y = models::sync_batch_norm(xr, *bn, sum);
    (y * upstream.narrow(0, first[r], count[r])).sum().backward();
    out[static_cast<std::size_t>(r)] = {y.detach(), xr.grad(), bn->weight.grad(), bn->bias.grad(), bn->running_mean.clone(),
                                        bn->running_var.clone()};
  });
  for (int64_t r = 0; r < 2; ++r) {
    const RankOut& o = out[static_cast<std::size_t>(r)];
    EXPECT_TRUE(at::allclose(o.y, y_ref.detach().narrow(0, first[r], count[r]), 1e-5, 1e-5)) << "rank " << r;
    EXPECT_TRUE(at::allclose(o.x_grad, x_ref.grad().narrow(0, first[r], count[r]), 1e-5, 1e-5)) << "rank " << r;
    EXPECT_TRUE(at::allclose(o.running_mean, reference->running_mean, 1e-6, 1e-6)) << "rank " << r;
    EXPECT_TRUE(at::allclose(o.running_var, reference->running_var, 1e-6, 1e-6)) << "rank " << r;
  }
  // Each rank's parameter gradient covers its own images; their sum (what averaging then scales) is the whole.
  EXPECT_TRUE(at::allclose(out[0].weight_grad + out[1].weight_grad, reference->weight.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(out[0].bias_grad + out[1].bias_grad, reference->bias.grad(), 1e-4, 1e-5));
}

// A global batch of one value per channel cannot be normalised: a UsageError on every rank, not a NaN.
TEST(SyncBatchNorm, OneValuePerChannelIsAnError) {
  if (!distributed_available()) GTEST_SKIP() << "built without Gloo";
  TempDir dir;
  const std::string store = (dir / "store").string();
  auto group = ProcessGroup::connect_file(store, 0, 1, 20s);
  GroupSum sum(*group);
  torch::nn::BatchNorm2d bn(torch::nn::BatchNorm2dOptions(2));
  EXPECT_THROW_WITH(models::sync_batch_norm(at::ones({1, 2, 1, 1}), *bn, sum), UsageError,
                    "batch normalisation needs more than one value per channel", "larger batch or image size");
}

TEST(ProcessGroup, BackendChoiceFollowsTheDeviceAndWhatThisBuildHas) {
  const c10::Device cpu(c10::kCPU), gpu(c10::kCUDA, 0);
  EXPECT_EQ(choose_backend("auto", cpu), CommBackend::gloo);
  EXPECT_EQ(choose_backend("gloo", gpu), CommBackend::gloo);
  EXPECT_EQ(choose_backend("auto", gpu), nccl_available() ? CommBackend::nccl : CommBackend::gloo);
  EXPECT_THROW_WITH(choose_backend("nccl", cpu), ConfigError, "dist_backend=nccl needs training on CUDA devices",
                    "use dist_backend=gloo (or auto) on the CPU");
  if (nccl_available()) {
    EXPECT_EQ(choose_backend("nccl", gpu), CommBackend::nccl);
  } else {
    EXPECT_THROW_WITH(choose_backend("nccl", gpu), EnvironmentError, "this build of detkit has no NCCL backend",
                      "rebuild against a CUDA LibTorch 2.x");
  }
  EXPECT_STREQ(backend_name(CommBackend::nccl), "NCCL");
  EXPECT_STREQ(backend_name(CommBackend::gloo), "Gloo");
}

namespace {

// A small convolutional network, the same weights on every rank (seeded), with a channels-last
// convolution, as the detector's are, and a layer the forward pass never uses.
struct Net {
  torch::nn::Sequential body;
  torch::nn::Linear unused{nullptr};
  Net() {
    // The ranks are threads of one process: one at a time through the global generator, so both draw
    // the same weights.
    static std::mutex one_at_a_time;
    std::lock_guard<std::mutex> lock(one_at_a_time);
    torch::manual_seed(3);
    body = torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)), torch::nn::ReLU(),
                                 torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 16, 3).padding(1)), torch::nn::ReLU(),
                                 torch::nn::AdaptiveAvgPool2d(torch::nn::AdaptiveAvgPool2dOptions(1)),
                                 torch::nn::Functional([](const at::Tensor& x) { return x.flatten(1); }),
                                 torch::nn::Linear(16, 32), torch::nn::ReLU(), torch::nn::Linear(32, 4));
    unused = torch::nn::Linear(4, 4);
    at::NoGradGuard no_grad;
    at::Tensor w = body->parameters()[2];
    w.set_data(w.contiguous(at::MemoryFormat::ChannelsLast));
  }
  std::vector<at::Tensor> params() {
    std::vector<at::Tensor> p = body->parameters();
    for (const auto& q : unused->parameters()) p.push_back(q);
    return p;
  }
  // This rank's loss on `pass`'s inputs, different on every rank.
  at::Tensor loss(int64_t rank, int pass) {
    const at::Tensor x = at::sin(at::arange(2 * 3 * 6 * 6, at::kFloat).view({2, 3, 6, 6}) * (0.1 + 0.05 * rank + 0.01 * pass));
    return body->forward(x).pow(2).sum();
  }
};

std::vector<at::Tensor> grads_of(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  for (const auto& p : params) out.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
  return out;
}

void clear_grads(std::vector<at::Tensor>& params) {
  for (auto& p : params) p.mutable_grad() = at::Tensor();
}

}  // namespace

// Gradients averaged bucket by bucket during backward equal those averaged after it (bit for bit with two
// ranks: each sum is one addition), over several passes whose gradients add up, in the parameters' own
// layout; every bucket starts inside backward; a parameter without a gradient gets the mean of zeros.
TEST(OverlappedGradientAverage, AveragesDuringBackwardWhatAveragingAfterItGives) {
  if (!distributed_available()) GTEST_SKIP() << "built without Gloo";
  TempDir dir;
  two_ranks(dir, [](ProcessGroup& g) {
    Net net;
    std::vector<at::Tensor> params = net.params();
    // After backward: two accumulated passes, then one more, averaged by the blocking collective.
    for (int pass = 0; pass < 3; ++pass) net.loss(g.rank(), pass).backward();
    std::vector<at::Tensor> expected = grads_of(params);
    g.average(expected);
    clear_grads(params);

    OverlappedGradientAverage overlap(g, params, /*bucket_bytes=*/1024, /*first_bucket_bytes=*/256);
    EXPECT_GE(overlap.buckets(), 4);
    for (int step = 0; step < 2; ++step) {  // the same twice: the state of one step does not leak into the next
      clear_grads(params);
      net.loss(g.rank(), 0).backward();  // not armed: accumulates only (earlier pieces of a split batch)
      net.loss(g.rank(), 1).backward();
      const at::Tensor loss = net.loss(g.rank(), 2);
      overlap.arm(loss);
      EXPECT_EQ(overlap.unused_parameters(), 2);  // the unused layer's: they hold up no bucket
      loss.backward();
      overlap.finish();
      EXPECT_EQ(overlap.started_in_backward(), overlap.buckets()) << step;
      for (std::size_t i = 0; i < params.size(); ++i) {
        ASSERT_TRUE(params[i].grad().defined()) << i;
        EXPECT_TRUE(at::equal(params[i].grad(), expected[i])) << "parameter " << i << ", step " << step;
      }
      EXPECT_TRUE(params[2].grad().is_contiguous(at::MemoryFormat::ChannelsLast));
      EXPECT_TRUE(at::equal(params.back().grad(), at::zeros_like(params.back())));
    }
  });
}

// A rank whose pass stops before backward (out of memory, say) still joins every bucket's all-reduce in
// finish(), so neither rank hangs and both see the same sums; a pass that is not armed starts nothing.
TEST(OverlappedGradientAverage, ARankWithoutBackwardStillPairsEveryCollective) {
  if (!distributed_available()) GTEST_SKIP() << "built without Gloo";
  TempDir dir;
  two_ranks(dir, [](ProcessGroup& g) {
    Net net;
    std::vector<at::Tensor> params = net.params();
    net.loss(0, 0).backward();
    std::vector<at::Tensor> rank0 = grads_of(params);
    clear_grads(params);
    OverlappedGradientAverage overlap(g, params, 1024, 256);
    if (g.rank() == 0) {
      const at::Tensor loss = net.loss(0, 0);
      overlap.arm(loss);
      loss.backward();
    }
    overlap.finish();
    EXPECT_EQ(overlap.started_in_backward(), g.rank() == 0 ? overlap.buckets() : 0);
    for (std::size_t i = 0; i < params.size(); ++i)
      EXPECT_TRUE(at::allclose(params[i].grad(), rank0[i] * 0.5, 0, 0)) << i;
    // Not armed: backward only accumulates, and finish() averages after it.
    clear_grads(params);
    net.loss(0, 0).backward();
    overlap.finish();
    EXPECT_EQ(overlap.started_in_backward(), 0);
    for (std::size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(at::equal(params[i].grad(), rank0[i])) << i;
  });
}
