// Memory planning on a CUDA device: the plan's predicted peak allocation (weights, gradients, optimizer
// state, EMA, activations) against the caching allocator's measured peak of real training steps at batch
// 16 and 32, in float32 and under autocast; and `batch: auto` choosing a batch that trains without
// running out of memory in a capped share of the GPU.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cmath>
#include <iostream>

#include "core/fs.h"
#include "core/text.h"
#include "core/torch/compat.h"
#include "core/torch_plugin.h"
#include "data/formats_read.h"
#include "data/synth.h"
#include "test_util.h"
#include "train/plan.h"
#include "train/trainer.h"

using namespace detkit;
using detkit::testing::TempDir;

namespace {

bool have_cuda() { return torch::cuda::is_available() && torch::cuda::device_count() > 0; }

double gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

// The device-side prediction without the context and allocator overhead: what the caching allocator's
// peak_allocated statistic measures.
uint64_t predicted_allocated(const MemoryBreakdown& b) {
  return b.weights + b.gradients + b.optimizer + b.ema + b.gradient_backup + b.activations;
}

void check(const std::string& model, int64_t imgsz, int64_t batch, bool amp) {
  PlanRequest r;
  r.model = model;
  r.classes = 80;
  r.imgsz = imgsz;
  r.batch = batch;
  r.nominal_batch = batch;  // no accumulation
  r.amp = amp;
  r.device = "cuda:0";
  r.both_precisions = false;
  const MemoryPlan plan = train::plan_memory(r);
  const MemoryBreakdown& b = amp ? plan.amp : plan.fp32;
  ASSERT_TRUE(b.measured);
  compat::cuda_empty_cache();

  train::ProfileSpec spec;
  spec.model = model;
  spec.classes = 80;
  spec.imgsz = imgsz;
  spec.boxes_per_image = r.boxes_per_image;
  spec.amp = amp;
  spec.device = c10::Device(c10::kCUDA, 0);
  const uint64_t measured = train::measure_training_peak(spec, batch);
  compat::cuda_empty_cache();
  const double predicted = static_cast<double>(predicted_allocated(b));
  const double error = std::abs(predicted - static_cast<double>(measured)) / static_cast<double>(measured);
  std::cout << model << " " << imgsz << " px batch " << batch << " " << b.precision << ": predicted " << gib(predicted)
            << " GiB, measured peak allocated " << gib(static_cast<double>(measured)) << " GiB (error " << 100 * error
            << "%); context " << gib(static_cast<double>(plan.cuda_context)) << " GiB, allocator overhead "
            << 100 * b.workspace_fraction << "% of activations; plan took " << plan.seconds << " s\n";
  EXPECT_LT(error, 0.10);
}

}  // namespace

#define REQUIRE_CUDA() \
  if (!have_cuda()) GTEST_SKIP() << "no CUDA device visible"

TEST(GpuPlan, PredictsTrainingStepPeakWithin10PercentFloat32) {
  REQUIRE_CUDA();
  check("yolo-s", 640, 16, false);
  check("yolo-s", 640, 32, false);
}

TEST(GpuPlan, PredictsTrainingStepPeakWithin10PercentAutocast) {
  REQUIRE_CUDA();
  check("yolo-s", 640, 16, true);
  check("yolo-s", 640, 32, true);
}

// batch: auto in a small share of the GPU (memory_fraction 0.05 and the same cap on the process's share):
// the run chooses a batch, trains without an out-of-memory event, and its peak stays under the budget.
TEST(GpuPlan, AutoBatchTrainsWithoutOutOfMemoryInACappedShare) {
  REQUIRE_CUDA();
  TempDir dir;
  SynthOptions o;
  o.seed = 7;
  o.train_images = 64;
  o.val_images = 8;
  o.classes = 3;
  o.sizes = {"320x320", "320x240"};
  generate_synthetic_dataset(o, dir / "coco");
  const DatasetSource source = read_dataset(dir / "coco");
  RunConfig c;
  c.model = "yolo-n";
  c.imgsz = 320;
  c.epochs = 1;
  c.batch = 4;
  c.nominal_batch = 64;
  c.auto_batch = true;
  c.memory_fraction = 0.05;
  c.gpu_memory_fraction = 0.05;
  c.device = "cuda:0";
  c.amp = true;
  c.project = (dir / "runs").string();
  c.name = "auto";
  TrainRequest request;
  request.config = c;
  request.dataset = &source.dataset;
  request.val_split = "";  // validation runs at twice the batch: not what is measured here
  const TrainResult result = train::train(request);
  EXPECT_EQ(result.oom_events, 0);
  EXPECT_GT(result.micro_batch, 4);  // something larger than the configured batch was chosen
  const uint64_t budget = static_cast<uint64_t>(0.05 * static_cast<double>(compat::cuda_memory(0).total));
  const std::string csv = read_file(dir / "runs" / "auto" / "results.csv");
  std::cout << "batch auto run: micro-batch " << result.micro_batch << ", budget " << gib(static_cast<double>(budget))
            << " GiB\n" << csv;
  const auto lines = split(trim(csv), '\n');
  ASSERT_GE(lines.size(), 2u);
  const auto header = split(lines[0], ','), row = split(lines[1], ',');
  for (std::size_t i = 0; i < header.size() && i < row.size(); ++i)
    if (header[i] == "peak_memory_bytes") {
      EXPECT_LE(std::stod(row[i]), static_cast<double>(budget));
    }
}
