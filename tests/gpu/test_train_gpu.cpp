// The trainer on a CUDA device: mixed precision trains and reports memory, and a real device
// out-of-memory (forced by capping this process's share of the GPU) is recovered by halving the
// micro-batch, with the run finishing all its epochs. And the training step never makes the host wait
// for the device except where it reads its numbers back. Gradients are averaged on the GPU during backward
// (NCCL when the build has it).
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "augment/loader.h"
#include "core/text.h"
#include "core/torch/compat.h"
#include "core/torch_plugin.h"
#include "data/formats_read.h"
#include "data/synth.h"
#include "infer/predict.h"
#include "models/loss.h"
#include "models/yolo.h"
#include "test_util.h"
#include "train/optimizer_step.h"
#include "train/overlapped_average.h"
#include "train/process_group.h"
#include "train/setup.h"
#include "train/trainer.h"

using namespace detkit;
using detkit::testing::TempDir;

namespace {

bool have_cuda() { return torch::cuda::is_available() && torch::cuda::device_count() > 0; }

DatasetSource synth_dataset(const TempDir& dir) {
  SynthOptions o;
  o.seed = 7;
  o.train_images = 64;
  o.val_images = 16;
  o.classes = 3;
  o.sizes = {"320x320", "320x240"};
  generate_synthetic_dataset(o, dir / "coco");
  return read_dataset(dir / "coco");
}

RunConfig gpu_config(const TempDir& dir, const std::string& name) {
  RunConfig c;
  c.model = "yolo-n";
  c.imgsz = 320;
  c.epochs = 2;
  c.batch = 16;
  c.nominal_batch = 16;
  c.device = "cuda:0";
  c.amp = true;
  c.project = (dir / "runs").string();
  c.name = name;
  return c;
}

}  // namespace

#define REQUIRE_CUDA() \
  if (!have_cuda()) GTEST_SKIP() << "no CUDA device visible"

TEST(GpuTrain, MixedPrecisionTrainsAndReportsPeakMemory) {
  REQUIRE_CUDA();
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  TrainRequest r;
  r.config = gpu_config(dir, "amp");
  r.dataset = &source.dataset;
  const TrainResult result = train::train(r);
  EXPECT_EQ(result.epochs_completed, 2);
  EXPECT_EQ(result.skipped_steps, 0);
  EXPECT_EQ(result.oom_events, 0);
  const std::string csv = read_file(fs::path(result.run_dir) / "results.csv");
  std::cout << csv;
  EXPECT_GE(result.final_map50_95, 0.0);
}

TEST(GpuTrain, ARealOutOfMemoryIsRecoveredByHalvingTheMicroBatch) {
  REQUIRE_CUDA();
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  // Measure what a batch of 8 needs, then cap the process at three times that: a batch of 64 cannot fit,
  // 16 can.
  RunConfig probe = gpu_config(dir, "probe");
  probe.batch = probe.nominal_batch = 8;
  probe.epochs = 1;
  TrainRequest r;
  r.config = probe;
  r.dataset = &source.dataset;
  const TrainResult measured = train::train(r);
  const std::vector<std::string> rows = split(trim(read_file(fs::path(measured.run_dir) / "results.csv")), '\n');
  ASSERT_EQ(rows.size(), 2u);
  ASSERT_EQ(split(rows[0], ',')[10], "peak_memory_bytes");
  const double peak8 = std::stod(split(rows[1], ',')[10]);
  const auto memory = compat::cuda_memory(0);
  ASSERT_GT(peak8, 0);
  const double fraction = std::min(1.0, 3.0 * peak8 / static_cast<double>(memory.total));
  std::cout << "peak at batch 8: " << peak8 / (1 << 20) << " MiB; capping at " << fraction * 100 << " % of "
            << memory.total / (1 << 30) << " GiB\n";

  RunConfig capped = gpu_config(dir, "capped");
  capped.batch = capped.nominal_batch = 64;
  capped.gpu_memory_fraction = fraction;
  r.config = capped;
  const TrainResult result = train::train(r);
  compat::cuda_set_memory_fraction(1.0, 0);
  EXPECT_EQ(result.epochs_completed, 2);
  EXPECT_GE(result.oom_events, 1);
  EXPECT_LE(result.micro_batch, 32);
  std::cout << "out-of-memory events: " << result.oom_events << ", micro-batch now " << result.micro_batch << "\n"
            << read_file(fs::path(result.run_dir) / "events.json");
}

// The step as the trainer runs it (forward under bf16 autocast, loss with targets on the host, backward,
// foreach optimizer step, zeroing) with LibTorch's sync debug mode set to throw: any operation that
// waits for the device (a read-back, a blocking copy, a synchronisation) fails the test. The trainer's two
// deliberate reads per step (loss values, gradient norm) are left out.
TEST(GpuTrain, TheTrainingStepNeverWaitsForTheDeviceBetweenItsReads) {
  REQUIRE_CUDA();
  const c10::Device device("cuda:0");
  models::YoloOptions options;
  options.scale = models::yolo_scale("yolo-n");
  options.classes = 3;
  for (const std::string optimizer : {"adamw", "sgd"}) {
    models::YoloDetector model(options);
    model->to(device);
    models::use_channels_last(model);
    model->train();
    std::vector<at::Tensor> params = model->parameters();
    std::unique_ptr<torch::optim::Optimizer> opt;
    if (optimizer == "adamw")
      opt = std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(1e-3).weight_decay(0.05));
    else
      opt = std::make_unique<torch::optim::SGD>(
          params, torch::optim::SGDOptions(1e-2).momentum(0.9).nesterov(true).weight_decay(5e-4));
    const models::DetectionLoss loss;
    const at::Tensor raw = at::randint(0, 256, {8, 3, 320, 320}, at::TensorOptions().dtype(at::kByte).device(device));
    const at::Tensor targets = at::tensor({0.f, 1.f, 10.f, 20.f, 90.f, 120.f, 3.f, 2.f, 100.f, 100.f, 180.f, 260.f,
                                           7.f, 0.f, 5.f, 5.f, 300.f, 310.f})
                                   .view({3, 6});
    const bool bf16 = compat::cuda_supports_bf16(0);
    if (bf16) compat::set_cuda_autocast_dtype(true);
    const auto step = [&] {
      const at::Tensor images = infer::to_model_input(raw, device).contiguous(at::MemoryFormat::ChannelsLast);
      const models::LossTerms terms = train::forward_loss(model, loss, images, targets, bf16);
      terms.total.backward();
      if (bf16) compat::clear_autocast_cache();
      train::foreach_step(*opt);
      train::zero_gradients(*opt);
    };
    step();  // first: optimizer state, cuDNN plans, allocator pools
    compat::cuda_error_on_sync(true);
    try {
      step();
      step();
    } catch (const std::exception& e) {
      compat::cuda_error_on_sync(false);
      FAIL() << optimizer << ": the step waited for the device: " << e.what();
    }
    compat::cuda_error_on_sync(false);
    EXPECT_TRUE(std::isfinite(params.front().sum().item<double>())) << optimizer;
  }
}

// Batches on the GPU are the CPU's bit for bit, whether their images were copied ahead on the side stream
// (the next batch was built when the one before was handed out) or on the current stream.
TEST(GpuTrain, TheLoaderCopiesAheadOnASideStreamAndDeliversTheCpusBatches) {
  REQUIRE_CUDA();
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  const Split* split = nullptr;
  for (const auto& s : source.dataset.splits)
    if (s.name == "train") split = &s;
  ASSERT_NE(split, nullptr);
  augment::LoaderOptions o;
  o.imgsz = 320;
  o.batch = 8;
  o.workers = 4;
  o.seed = 3;
  augment::LoaderOptions on_gpu = o;
  on_gpu.device = "cuda:0";
  augment::Loader cpu(source.dataset, *split, o), gpu(source.dataset, *split, on_gpu);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    cpu.start_epoch(epoch);
    gpu.start_epoch(epoch);
    int64_t batches = 0;
    while (auto a = cpu.next()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a "step": the next batch gets built
      auto b = gpu.next();
      ASSERT_TRUE(b.has_value());
      ASSERT_TRUE(b->images.is_cuda());
      // Work on the current stream after the wait sees the copied pixels.
      EXPECT_TRUE(at::equal(b->images.to(at::kFloat).mul(2).cpu(), a->images.to(at::kFloat).mul(2))) << "batch " << batches;
      EXPECT_TRUE(at::equal(b->targets, a->targets));
      ++batches;
    }
    EXPECT_FALSE(gpu.next().has_value());
    EXPECT_EQ(batches, cpu.batches_per_epoch());
  }
  EXPECT_GT(gpu.stats().copies_ahead, 0) << "no batch was copied ahead";
  EXPECT_LT(gpu.stats().copies_ahead, gpu.stats().batches) << "the first batch of an epoch cannot be";
}

// The gradient buckets start their all-reduce from the hooks on the GPU's backward thread (NCCL when this
// build has it, else Gloo through the host), every one of them during backward, and the averages of a
// one-rank group are the gradients themselves, in their channels-last layout.
TEST(GpuTrain, GradientsAreAveragedOnTheGpuDuringBackward) {
  REQUIRE_CUDA();
  if (!train::distributed_available()) GTEST_SKIP() << "built without Gloo";
  const c10::Device device("cuda:0");
  TempDir dir;
  const train::CommBackend backend = train::nccl_available() ? train::CommBackend::nccl : train::CommBackend::gloo;
  auto group = train::ProcessGroup::connect_file((dir / "store").string(), 0, 1, std::chrono::seconds(60), backend, device);
  models::YoloOptions options;
  options.scale = models::yolo_scale("yolo-n");
  options.classes = 3;
  models::YoloDetector model(options);
  model->to(device);
  models::use_channels_last(model);
  model->train();
  std::vector<at::Tensor> params;  // the trained ones (not the fixed DFL projection)
  for (const auto& p : model->parameters())
    if (p.requires_grad()) params.push_back(p);
  const models::DetectionLoss loss;
  const at::Tensor images = at::rand({4, 3, 320, 320}, device).contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor targets = at::tensor({0.f, 1.f, 10.f, 20.f, 90.f, 120.f, 3.f, 2.f, 100.f, 100.f, 180.f, 260.f}).view({2, 6});
  train::forward_loss(model, loss, images, targets, false).total.backward();
  std::vector<at::Tensor> expected;
  for (auto& p : params) {
    expected.push_back(p.grad().clone());
    p.mutable_grad() = at::Tensor();
  }
  train::OverlappedGradientAverage overlap(*group, params, int64_t{1} << 20, int64_t{256} << 10);
  const at::Tensor total = train::forward_loss(model, loss, images, targets, false).total;
  overlap.arm(total);
  total.backward();
  overlap.finish();
  EXPECT_EQ(overlap.unused_parameters(), 0);
  EXPECT_EQ(overlap.started_in_backward(), overlap.buckets());
  EXPECT_GE(overlap.buckets(), 8);
  std::cout << train::backend_name(backend) << ": " << overlap.buckets() << " buckets, all started during backward\n";
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(at::allclose(params[i].grad(), expected[i], 1e-4, 1e-6)) << i;
    EXPECT_EQ(params[i].grad().is_contiguous(at::MemoryFormat::ChannelsLast),
              expected[i].is_contiguous(at::MemoryFormat::ChannelsLast)) << i;
  }
}
