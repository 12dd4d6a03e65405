// The trainer on tiny synthetic datasets (64 px, a handful of images): resume exactness, guardrails
// (injected non-finite losses, rollbacks, the final stop), out-of-memory recovery, checkpoints and the run
// directory. Plus the torch-free parts: the schedule and the rising-loss detector.
#include <gtest/gtest.h>
#include <torch/serialize.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/progress.h"
#include "core/text.h"
#include "core/torch_plugin.h"
#include "augment/loader.h"
#include "data/formats_read.h"
#include "infer/predict.h"
#include "data/synth.h"
#include "models/checkpoint.h"
#include "test_util.h"
#include "train/evaluate.h"
#include "train/guardrails.h"
#include "train/schedule.h"
#include "train/trainer.h"

using namespace detkit;
using namespace detkit::train;
using detkit::testing::TempDir;

namespace {

DatasetSource synth_dataset(const TempDir& dir, int64_t train_images = 12) {
  SynthOptions o;
  o.seed = 5;
  o.train_images = train_images;
  o.val_images = 4;
  o.classes = 3;
  o.sizes = {"96x64", "64x96", "80x80"};
  o.max_objects = 4;
  generate_synthetic_dataset(o, dir / "coco");
  return read_dataset(dir / "coco");
}

RunConfig tiny_config(const TempDir& dir, const std::string& name) {
  RunConfig c;
  c.model = "yolo-n";
  c.imgsz = 64;
  c.epochs = 3;
  c.batch = 4;
  c.nominal_batch = 8;
  c.workers = 2;
  c.device = "cpu";
  c.seed = 11;
  c.warmup_epochs = 1;
  c.project = (dir / "runs").string();
  c.name = name;
  c.augment.mosaic = 0.5;
  c.augment.close_mosaic = 1;
  return c;
}

TrainRequest request_for(const RunConfig& config, const DatasetSource& source) {
  TrainRequest r;
  r.config = config;
  r.dataset = &source.dataset;
  return r;
}

// The trained weights of a checkpoint (the raw model's, not the EMA's), as one flat CPU tensor; with
// `buffers`, BatchNorm's running statistics too.
at::Tensor weights_of(const std::string& run_dir, bool buffers = true) {
  torch::serialize::InputArchive archive, weights;
  archive.load_from(run_dir + "/weights/last.pt");
  archive.read("model", weights);
  models::YoloOptions options;
  options.scale = models::yolo_scale("yolo-n");
  options.classes = 3;
  models::YoloDetector model(options);
  model->load(weights);
  std::vector<at::Tensor> flat;
  for (const auto& p : model->parameters()) flat.push_back(p.detach().flatten());
  if (buffers)
    for (const auto& b : model->buffers())
      if (b.is_floating_point()) flat.push_back(b.detach().flatten());
  return at::cat(flat);
}

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(read_file(path)); }

}  // namespace

TEST(LrSchedule, WarmsUpThenDecaysToTheFinalFraction) {
  ScheduleOptions o;
  o.lr0 = 0.01;
  o.lrf = 0.1;
  o.epochs = 10;
  o.warmup_iterations = 20;
  o.warmup_bias_lr = 0.1;
  for (const char* kind : {"cosine", "linear"}) {
    o.kind = kind;
    const LrSchedule s(o);
    EXPECT_DOUBLE_EQ(s.lr(ParamGroup::weights, 0, 0), 0.0) << kind;
    EXPECT_DOUBLE_EQ(s.lr(ParamGroup::biases, 0, 0), 0.1) << kind;  // biases start high and fall
    EXPECT_NEAR(s.lr(ParamGroup::weights, 10, 0), 0.005, 1e-12) << kind;
    EXPECT_NEAR(s.lr(ParamGroup::biases, 10, 0), 0.055, 1e-12) << kind;
    EXPECT_DOUBLE_EQ(s.lr(ParamGroup::weights, 20, 0), 0.01) << kind;
    EXPECT_NEAR(s.lr(ParamGroup::norms, 500, 9), 0.001, 1e-12) << kind;  // the last epoch trains at lr0 * lrf
    EXPECT_NEAR(s.momentum(0), 0.8, 1e-12);
    EXPECT_NEAR(s.momentum(10), (0.8 + 0.937) / 2, 1e-12);
    EXPECT_NEAR(s.momentum(20), 0.937, 1e-12);
    for (int e = 1; e < 10; ++e) EXPECT_LT(s.decay(e), s.decay(e - 1)) << kind << " epoch " << e;
  }
  o.kind = "cosine";
  EXPECT_NEAR(LrSchedule(o).decay(0) - LrSchedule(o).decay(1), 0.1 * 0.9 * 0.5 * (1 - std::cos(M_PI / 9)) * 10, 1e-12);
  EXPECT_EQ(warmup_iterations(3.0, 10, 100), 30);
  EXPECT_EQ(warmup_iterations(3.0, 10, 4), 20);  // at most half the run
}

TEST(LossWatch, NoiseAroundAFallingOrFlatLossIsNotDivergence) {
  std::mt19937 rng(1);
  std::normal_distribution<double> noise(0, 0.3);
  LossWatch watch(50);
  for (int i = 0; i < 2000; ++i) {
    watch.add(3.0 * std::exp(-i / 500.0) + 1.0 + noise(rng));
    ASSERT_FALSE(watch.rising()) << "batch " << i;
  }
}

TEST(LossWatch, ASteadyClimbIsDivergence) {
  std::mt19937 rng(2);
  std::normal_distribution<double> noise(0, 0.1);
  LossWatch watch(50);
  int found = -1;
  for (int i = 0; i < 600 && found < 0; ++i) {
    const double loss = i < 200 ? 1.0 + noise(rng) : 1.0 + (i - 200) * 0.02 + noise(rng);
    watch.add(loss);
    if (watch.rising()) found = i;
  }
  ASSERT_GT(found, 200);
  EXPECT_LT(found, 400);
  EXPECT_NE(watch.describe().find("rising"), std::string::npos);
  watch.reset();
  EXPECT_FALSE(watch.rising());
}

TEST(LossScaler, OverflowHalvesGoodStepsDoubleWithinBounds) {
  LossScaler off;
  EXPECT_DOUBLE_EQ(off.scale(), 1.0);
  EXPECT_FALSE(off.update(false));  // without scaling a non-finite gradient is a real one
  EXPECT_TRUE(off.update(true));

  LossScaler s(true, 8.0, 3);
  EXPECT_DOUBLE_EQ(s.scale(), 8.0);
  EXPECT_TRUE(s.update(false));  // overflow: explained, the scale halves
  EXPECT_DOUBLE_EQ(s.scale(), 4.0);
  EXPECT_TRUE(s.update(true));
  EXPECT_TRUE(s.update(true));
  EXPECT_DOUBLE_EQ(s.scale(), 4.0);
  EXPECT_TRUE(s.update(true));  // the third good step in a row doubles it
  EXPECT_DOUBLE_EQ(s.scale(), 8.0);
  EXPECT_EQ(s.good_steps(), 0);
  EXPECT_TRUE(s.update(true));
  EXPECT_TRUE(s.update(false));  // an overflow also restarts the count
  EXPECT_EQ(s.good_steps(), 0);
  EXPECT_DOUBLE_EQ(s.scale(), 4.0);
  EXPECT_TRUE(s.update(false));
  EXPECT_TRUE(s.update(false));
  EXPECT_DOUBLE_EQ(s.scale(), 1.0);
  EXPECT_FALSE(s.update(false));  // at the floor, a non-finite gradient is not the scale's doing
  EXPECT_DOUBLE_EQ(s.scale(), 1.0);

  LossScaler big(true, 16777216.0, 1);
  EXPECT_TRUE(big.update(true));
  EXPECT_DOUBLE_EQ(big.scale(), 16777216.0);  // capped at 2^24
  big.restore(1024.0, 5);
  EXPECT_DOUBLE_EQ(big.scale(), 1024.0);
  EXPECT_EQ(big.good_steps(), 5);
  off.restore(1024.0, 5);
  EXPECT_DOUBLE_EQ(off.scale(), 1.0);
}

TEST(LossWatch, StepListsParseAndBadOnesAreConfigErrors) {
  EXPECT_EQ(parse_step_list("inject_oom", "7, 30,7"), (std::set<int64_t>{7, 30}));
  EXPECT_TRUE(parse_step_list("inject_oom", "").empty());
  EXPECT_THROW_WITH(parse_step_list("inject_oom", "7,x"), ConfigError, "inject_oom", "inject_oom=\"7,30\"");
}

TEST(Trainer, WritesTheRunDirectoryAndACheckpointEvalAndDetectCanUse) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  RunConfig config = tiny_config(dir, "basic");
  config.epochs = 2;
  TrainRequest request = request_for(config, source);
  request.environment_report = "environment: test\n";
  const TrainResult result = train::train(request);
  EXPECT_EQ(result.epochs_completed, 2);
  EXPECT_FALSE(result.interrupted);
  EXPECT_EQ(result.samples_seen, 2 * 12);
  // 3 batches per epoch, accumulation 2: steps after batch 2 and at the epoch's end.
  EXPECT_EQ(result.optimizer_steps, 4);
  const fs::path run = result.run_dir;
  EXPECT_EQ(run, dir / "runs" / "basic");
  for (const char* file : {"config.yaml", "environment.txt", "results.csv", "metrics.json", "weights/last.pt", "weights/best.pt"})
    EXPECT_TRUE(fs::exists(run / file)) << file;
  const std::string csv = read_file(run / "results.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3) << csv;
  EXPECT_EQ(csv.rfind("epoch,box_loss,cls_loss,dfl_loss,lr,map50,map50_95,", 0), 0u) << csv;
  const auto metrics = read_json(run / "metrics.json");
  EXPECT_EQ(metrics["epochs_completed"], 2);
  EXPECT_GE(result.best_map50_95, 0.0);

  // The checkpoint carries what inference needs.
  const models::LoadedModel loaded = models::load_model(run.string(), c10::Device(c10::kCPU));
  EXPECT_EQ(loaded.class_names, (std::vector<std::string>{"circle", "square", "triangle"}));
  EXPECT_EQ(loaded.imgsz, 64);
  EXPECT_FALSE(loaded.model->is_training());

  // A second run with the same name gets a numbered directory; nothing is overwritten.
  const TrainResult again = train::train(request);
  EXPECT_EQ(fs::path(again.run_dir), dir / "runs" / "basic2");

  EvaluateModelRequest eval;
  eval.model = run.string();
  eval.dataset = &source.dataset;
  eval.device = "cpu";
  eval.out_dir = (dir / "eval").string();
  const EvaluateModelResult evaluated = evaluate_model(eval);
  EXPECT_EQ(evaluated.images, 4);
  EXPECT_NEAR(evaluated.stats[0], result.final_map50_95, 1e-9);  // the same EMA weights on the same split
  for (const char* file : {"metrics.json", "curves.json", "predictions.json"}) EXPECT_TRUE(fs::exists(dir / "eval" / file)) << file;
}

TEST(Trainer, ResumingAnInterruptedRunEndsWithTheSameWeights) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  const TrainResult straight = train::train(request_for(tiny_config(dir, "straight"), source));
  ASSERT_EQ(straight.epochs_completed, 3);

  // Ctrl-C during epoch 2 (as soon as epoch 1's results exist): the trainer finishes the accumulation
  // window, saves at that batch and returns.
  const fs::path results = dir / "runs" / "stopped" / "results.csv";
  std::atomic<bool> done{false};
  std::thread interrupter([&] {
    while (!done && !fs::exists(results)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!done) set_interrupt_requested(true);
  });
  const TrainResult stopped = train::train(request_for(tiny_config(dir, "stopped"), source));
  done = true;
  interrupter.join();
  set_interrupt_requested(false);
  ASSERT_TRUE(stopped.interrupted);
  EXPECT_EQ(stopped.epochs_completed, 1);
  const auto meta_batch = [&] {
    torch::serialize::InputArchive archive;
    archive.load_from((dir / "runs" / "stopped" / "weights" / "last.pt").string());
    c10::IValue meta;
    archive.read("meta", meta);
    return nlohmann::json::parse(meta.toStringRef());
  }();
  EXPECT_EQ(meta_batch["epoch"], 1);          // in epoch 2 (0-based 1)...
  EXPECT_GT(meta_batch["batch_in_epoch"], 0);  // ...part way through

  TrainRequest resume = request_for(tiny_config(dir, "stopped"), source);
  resume.resume = (dir / "runs" / "stopped").string();
  const TrainResult resumed = train::train(resume);
  EXPECT_EQ(resumed.epochs_completed, 3);
  EXPECT_EQ(resumed.optimizer_steps, straight.optimizer_steps);
  EXPECT_EQ(resumed.samples_seen, straight.samples_seen);
  const at::Tensor a = weights_of(straight.run_dir), b = weights_of(resumed.run_dir);
  EXPECT_TRUE(at::equal(a, b)) << "max difference " << (a - b).abs().max().item<double>();
  const std::string csv = read_file(fs::path(resumed.run_dir) / "results.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4) << csv;  // header + every epoch, once
}

TEST(Trainer, FineTuningFromWeightsStartsThereAndFreezeKeepsTheBackbone) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  const TrainResult base = train::train(request_for(tiny_config(dir, "base"), source));
  RunConfig config = tiny_config(dir, "tuned");
  config.epochs = 2;
  config.weights = base.run_dir + "/weights/last.pt";
  config.freeze = "backbone";
  const TrainResult tuned = train::train(request_for(config, source));
  EXPECT_EQ(tuned.epochs_completed, 2);
  const std::string table = read_file(fs::path(tuned.run_dir) / "weights-import.txt");
  EXPECT_EQ(table.find("\nnew "), std::string::npos) << table;  // same classes: every tensor loaded
  EXPECT_NE(table.find("loaded backbone.0.conv.weight <- backbone.0.conv.weight"), std::string::npos);
  // The starting point was the base run's EMA weights; the backbone's parameters never moved from them.
  models::LoadedModel start = models::load_model(base.run_dir + "/weights/last.pt", c10::Device(c10::kCPU));
  torch::serialize::InputArchive archive, weights;
  archive.load_from(tuned.run_dir + "/weights/last.pt");
  archive.read("model", weights);
  models::YoloOptions options;
  options.scale = models::yolo_scale("yolo-n");
  options.classes = 3;
  models::YoloDetector after(options);
  after->load(weights);
  const auto before_params = start.model->named_parameters(true);
  int64_t backbone = 0, moved_elsewhere = 0;
  for (const auto& p : after->named_parameters(true)) {
    const bool same = at::equal(p.value(), before_params[p.key()]);
    if (p.key().rfind("backbone.", 0) == 0) {
      EXPECT_TRUE(same) << p.key();
      ++backbone;
    } else if (!same) {
      ++moved_elsewhere;
    }
  }
  EXPECT_GT(backbone, 0);
  EXPECT_GT(moved_elsewhere, 0);  // the neck and heads trained
}

TEST(Trainer, AnInjectedOutOfMemoryHalvesTheMicroBatchAndKeepsTheRunsShape) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  const TrainResult plain = train::train(request_for(tiny_config(dir, "plain"), source));
  RunConfig config = tiny_config(dir, "oom");
  config.inject_oom = "7";  // epoch 3 (3 batches per epoch), its second batch
  const TrainResult recovered = train::train(request_for(config, source));
  EXPECT_EQ(recovered.oom_events, 1);
  EXPECT_EQ(recovered.micro_batch, 2);
  EXPECT_EQ(recovered.optimizer_steps, plain.optimizer_steps);
  EXPECT_EQ(recovered.samples_seen, plain.samples_seen);
  EXPECT_EQ(recovered.epochs_completed, 3);
  const at::Tensor a = weights_of(plain.run_dir, false), b = weights_of(recovered.run_dir, false);
  // Smaller passes change BatchNorm's batch statistics and the loss normalisation of the redone steps,
  // slightly: the trained weights stay close (3e-5 relative here), not equal. BatchNorm's running variance,
  // estimated from 2 images instead of 4 in those steps, moves more (4 %), so it is not compared.
  const double relative = ((a - b).norm() / a.norm()).item<double>();
  EXPECT_LT(relative, 1e-3) << relative;
  EXPECT_GT(relative, 0.0);
  const auto events = read_json(fs::path(recovered.run_dir) / "events.json");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["kind"], "out_of_memory");
  EXPECT_NE(events[0]["message"].get<std::string>().find("retrying the step with 2 images per pass"), std::string::npos);
  const std::string csv = read_file(fs::path(recovered.run_dir) / "results.csv");
  // oom_events, rollbacks, micro_batch and gradient_wait_share (one process: 0) of epoch 3
  EXPECT_NE(csv.find(",1,0,2,0\n"), std::string::npos) << csv;
}

TEST(Trainer, MultiScaleTrainingIsDeterministicAndChangesTheRun) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  RunConfig config = tiny_config(dir, "plain");
  config.epochs = 2;
  const TrainResult plain = train::train(request_for(config, source));
  config.augment.multi_scale = 0.5;  // batches of 32, 64 or 96 px around imgsz 64
  config.name = "ms1";
  const TrainResult first = train::train(request_for(config, source));
  config.name = "ms2";
  const TrainResult second = train::train(request_for(config, source));
  EXPECT_EQ(first.epochs_completed, 2);
  EXPECT_EQ(first.samples_seen, plain.samples_seen);
  const at::Tensor a = weights_of(first.run_dir), b = weights_of(second.run_dir), p = weights_of(plain.run_dir);
  EXPECT_TRUE(at::equal(a, b)) << "max difference " << (a - b).abs().max().item<double>();
  EXPECT_FALSE(at::equal(a, p));
  EXPECT_TRUE(at::isfinite(a).all().item<bool>());
}

TEST(Trainer, RepeatedOutOfMemoryStopsWithTheRemedy) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  RunConfig config = tiny_config(dir, "oom");
  config.oom_retries = 0;
  config.inject_oom = "1";
  EXPECT_THROW_WITH(train::train(request_for(config, source)), OutOfMemoryError, "even with a micro-batch of 4", "amp=true");
}

TEST(Trainer, ANonFiniteLossSkipsTheBatchAndRepeatsRollBack) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  RunConfig once = tiny_config(dir, "once");
  once.inject_nonfinite = "4";
  const TrainResult skipped = train::train(request_for(once, source));
  EXPECT_EQ(skipped.skipped_steps, 1);
  EXPECT_EQ(skipped.rollbacks, 0);
  EXPECT_EQ(skipped.epochs_completed, 3);

  RunConfig repeated = tiny_config(dir, "repeated");
  repeated.inject_nonfinite = "4,5";  // epoch 2's second and third batches
  repeated.skip_limit = 2;
  const TrainResult rolled = train::train(request_for(repeated, source));
  EXPECT_EQ(rolled.rollbacks, 1);
  EXPECT_EQ(rolled.skipped_steps, 2);
  EXPECT_EQ(rolled.epochs_completed, 3);
  const auto events = read_json(fs::path(rolled.run_dir) / "events.json");
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2]["kind"], "rollback");
  EXPECT_NE(events[2]["message"].get<std::string>().find("rolled back to the end of epoch 1"), std::string::npos);
  EXPECT_NE(events[2]["message"].get<std::string>().find("0.5 x the schedule"), std::string::npos);
  // After the rollback epoch 2 was trained again from its start: the same steps as a clean run.
  const TrainResult plain = train::train(request_for(tiny_config(dir, "plain"), source));
  EXPECT_EQ(rolled.optimizer_steps, plain.optimizer_steps);

  RunConfig hopeless = tiny_config(dir, "hopeless");
  hopeless.inject_nonfinite = "1,2";
  hopeless.skip_limit = 2;
  hopeless.max_rollbacks = 0;
  EXPECT_THROW_WITH(train::train(request_for(hopeless, source)), RunError, "2 batches in a row had a non-finite loss",
                    "lower lr0");
}

TEST(Trainer, BadRequestsAreUsageErrors) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  TrainRequest r = request_for(tiny_config(dir, "bad"), source);
  r.train_split = "training";
  EXPECT_THROW_WITH(train::train(r), UsageError, "no training images in split 'training'", "--train-split");
  r = request_for(tiny_config(dir, "bad"), source);
  r.resume = (dir / "nothing").string();
  EXPECT_THROW_WITH(train::train(r), UsageError, "cannot resume", "without --resume");
  const fs::path junk = dir / "junk.pt";
  write_file_atomic(junk, "not a checkpoint");
  EXPECT_THROW_WITH(models::load_model(junk.string(), c10::Device(c10::kCPU)), CheckpointError,
                    "is not a readable detkit checkpoint", "weights/last.pt");
}

TEST(Trainer, ATimeLimitShortensTheRunAndItsSchedule) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  RunConfig config = tiny_config(dir, "timed");
  config.epochs = 1000;
  config.time_limit = 0.2;  // 12 s: several epochs of this tiny run even on a loaded machine (1-3 s each)
  const TrainResult result = train::train(request_for(config, source));
  ASSERT_GE(result.epochs_completed, 2);
  EXPECT_LT(result.epochs_completed, 1000);
  EXPECT_LT(result.seconds, 40.0);
  // The schedule was refitted to the shorter run: the last epoch trained near the final learning rate
  // (at it when the pace held; an epoch or two before the planned end when epochs slowed down).
  const std::vector<std::string> rows = split(trim(read_file(fs::path(result.run_dir) / "results.csv")), '\n');
  const double last_lr = std::stod(split(rows.back(), ',')[4]);
  EXPECT_LT(last_lr, 0.15 * config.lr0) << rows.back();
}

TEST(Trainer, EarlyStoppingEndsTheRunAfterPatienceEvaluationsWithoutImprovement) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  RunConfig config = tiny_config(dir, "patience");
  config.epochs = 6;
  config.patience = 2;
  // Nothing learns (all learning rates 0), so the validation mAP can never beat the first evaluation's.
  config.lr0 = 0;
  config.warmup_bias_lr = 0;
  const TrainResult result = train::train(request_for(config, source));
  EXPECT_TRUE(result.stopped_early);
  EXPECT_EQ(result.epochs_completed, 3);  // the first evaluation sets the best; two more without improvement
  EXPECT_EQ(result.best_epoch, 0);
}

TEST(Predict, AnOutOfMemoryBatchIsRedoneInSmallerPassesWithTheSameDetections) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  models::YoloOptions options;
  options.scale = models::yolo_scale("yolo-n");
  options.classes = 3;
  torch::manual_seed(3);
  models::YoloDetector model(options);
  augment::LoaderOptions lo;
  lo.imgsz = 64;
  lo.batch = 4;
  lo.shuffle = false;
  lo.augment = false;
  augment::Loader loader(source.dataset, *source.dataset.find_split("train"), lo);
  const auto run = [&](std::set<int64_t> inject, int64_t* retries) {
    infer::PredictOptions po;
    po.postprocess.conf_threshold = 1e-4;  // an untrained head scores about 3e-4 (its class prior)
    po.postprocess.max_det = 20;
    po.inject_oom = std::move(inject);
    std::vector<infer::ImageDetections> all;
    const infer::PredictStats stats = infer::predict(model, loader, c10::Device(c10::kCPU), po,
                                                     [&](const augment::Batch&, std::vector<infer::ImageDetections>& images) {
                                                       all.insert(all.end(), images.begin(), images.end());
                                                     });
    *retries = stats.oom_retries;
    return all;
  };
  int64_t plain_retries = -1, retried = -1;
  const auto plain = run({}, &plain_retries);
  const auto redone = run({1}, &retried);
  EXPECT_EQ(plain_retries, 0);
  EXPECT_EQ(retried, 1);
  ASSERT_EQ(plain.size(), redone.size());
  std::size_t boxes = 0;
  for (std::size_t i = 0; i < plain.size(); ++i) {
    ASSERT_EQ(plain[i].index, redone[i].index);
    ASSERT_EQ(plain[i].boxes.size(), redone[i].boxes.size()) << "image " << plain[i].index;
    for (std::size_t k = 0; k < plain[i].boxes.size(); ++k)
      for (int c = 0; c < 4; ++c) EXPECT_NEAR(plain[i].boxes[k][c], redone[i].boxes[k][c], 1e-3);
    boxes += plain[i].boxes.size();
  }
  EXPECT_GT(boxes, 0u);
}
