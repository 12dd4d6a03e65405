// The boundary between torch-free detkit and LibTorch.
//
// Everything that needs LibTorch is built into one plugin, libdetkit_torch.so, that the `detkit`
// executable loads with dlopen the first time a command needs it. So `detkit --help`, `synth`, `config`
// (and later `doctor`, `check`) run on machines where LibTorch, CUDA or cuDNN libraries are missing or
// broken, and a failure to load becomes an EnvironmentError with the loader's reason and a fix, not a
// dynamic-linker crash before main().
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/distributed.h"
#include "core/run_config.h"

namespace detkit {

struct Dataset;  // data/dataset.h: core does not depend on data, so requests only point at one

// What the loaded LibTorch reports about itself and the machine.
struct TorchRuntimeInfo {
  std::string torch_version;        // "1.13.0"
  bool cuda_compiled = false;       // LibTorch was built with CUDA
  std::string cuda_version;         // CUDA runtime LibTorch was built with ("" when none)
  std::string cudnn_version;        // cuDNN LibTorch was built with ("" when none)
  std::string cuda_arch_flags;      // NVCC architecture flags LibTorch was built with ("" when none)
  int device_count = 0;             // CUDA devices visible now
  std::vector<std::string> devices;  // "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" per device
  int intra_op_threads = 0;         // threads LibTorch uses inside one op
  int inter_op_threads = 0;         // threads LibTorch uses across ops
};

// One `detkit doctor --smoke` run on one device: allocate, a small convolution forward and backward in
// fp32 and under autocast, and the largest difference between the two outputs. A failing stage is
// reported in the result (not thrown), so the doctor can tell which stage broke.
struct TorchSmokeResult {
  std::string device;          // "cuda:0", "cpu"
  std::string device_name;     // as compat::cuda_device_description, "CPU" for the CPU
  std::string failed_stage;    // "" when all passed: device, allocate, forward fp32, backward fp32, autocast forward, ...
  std::string error;           // the failing stage's message, without LibTorch's backtrace
  std::string autocast_dtype;  // float16 on CUDA, bfloat16 on the CPU
  double max_abs_diff = 0;     // max |fp32 output - autocast output|; infinity when not finite
  double tolerance = 0;        // allowed difference for this dtype and output scale
  double seconds = 0;
};

// `detkit augment --preview`: a grid of training samples as the loader delivers them (decoded, augmented
// by `augment`, letterboxed to imgsz), boxes and class names drawn, written as a PNG.
// What `detkit model info` reports about a detector.
struct ModelInfo {
  int64_t parameters = 0;                     // all parameters
  int64_t trainable = 0;                      // those the optimizer updates
  double gflops = 0;                          // 2 x multiply-accumulates of the convolutions
  std::vector<int64_t> strides;               // one per output level
  std::vector<std::vector<int64_t>> grids;    // [H, W] of each level at the given imgsz
};

// `detkit model speed`: the training step alone (train/plan.h measure_training_speed).
struct TrainingSpeedRequest {
  std::string model = "yolo-n";
  int64_t classes = 80;
  bool stride4 = false;
  int64_t imgsz = 640;
  int64_t batch = 16;
  int64_t steps = 20;   // timed steps
  int64_t warmup = 5;   // untimed steps first (allocator, cuDNN algorithm choice)
  bool amp = false;     // autocast: bf16 where the GPU has it, else fp16; bf16 on the CPU
  bool channels_last = false;  // NHWC weights and images
  bool cudnn_benchmark = false;  // cuDNN times its algorithms per shape (GPU; training's default is on)
  std::string device = "auto";
};

struct TrainingSpeedResult {
  std::string device;         // "cuda:0", "cpu"
  std::string precision;      // fp32, bf16, fp16
  int64_t batch = 0, steps = 0;
  double step_seconds = 0;    // mean over the timed steps
  double images_per_second = 0;
  uint64_t peak_memory = 0;   // bytes allocated at the peak of the timed steps (device, or host on the CPU)
  // ATen operators one step dispatches (train/op_counter.h: the host's work; on a GPU each is at least one
  // kernel launch): forward, loss and backward; then clipping, the optimizer, the EMA and zeroing.
  int64_t step_operators = 0, update_operators = 0;
};

struct AugmentPreviewRequest {
  const Dataset* dataset = nullptr;  // read by the caller; must stay alive during the call
  std::string split = "train";       // which split's images
  AugmentConfig augment;             // the recipe
  bool augmented = true;             // false: letterbox only, as validation sees the images
  int64_t imgsz = 416;               // tile size
  int64_t images = 16;               // samples in the grid
  int64_t columns = 4;               // tiles per row
  int64_t seed = 0;                  // as the run's seed: the same seed shows the same samples
  int64_t epoch = 0;                 // which epoch's samples (mosaic is off in the last close_mosaic ones)
  int64_t epochs = 0;                // run length, for close_mosaic (0: mosaic never switched off)
  std::string out;                   // PNG path
};

struct AugmentPreviewResult {
  int width = 0, height = 0;               // of the PNG
  int64_t samples = 0;                     // tiles drawn
  int64_t boxes = 0;                       // boxes drawn
  int64_t skipped = 0;                     // samples left out because their image could not be read
  std::vector<std::string> bad_files;      // every unreadable image met (mosaic partners too), each once
};

// `detkit train`: one training run (core of src/train/trainer.h).
struct TrainRequest {
  RunConfig config;                  // resolved; config.data names the dataset already read into `dataset`
  const Dataset* dataset = nullptr;  // read by the caller; must stay alive during the call
  std::string train_split = "train";
  std::string val_split = "val";     // "" trains without evaluation (best = last)
  std::string resume;                // a run directory to continue from its last checkpoint ("": a new run)
  std::string environment_report;    // short doctor report, logged and saved as RUN/environment.txt
  std::string data_report;           // dataset check report, saved as RUN/data-check.txt
  std::string data_report_json;      // the same as JSON (check_report_json), saved as RUN/data-check.json
  DistributedEnv distributed;        // this process's place in a distributed job (world_size 1: none)
};

struct TrainResult {
  std::string run_dir;
  int64_t epochs_completed = 0;      // epochs finished, including those of a run resumed from
  int64_t optimizer_steps = 0;
  int64_t samples_seen = 0;          // training samples fed forward (skipped steps included)
  int64_t best_epoch = -1;           // 0-based epoch of the best evaluation (-1: none)
  double best_map50_95 = -1, best_map50 = -1;
  double final_map50_95 = -1, final_map50 = -1;  // of the last evaluation
  int64_t skipped_steps = 0;         // non-finite loss or gradient, step skipped
  int64_t rollbacks = 0;
  int64_t oom_events = 0;
  int64_t micro_batch = 0;           // images per forward pass at the end (smaller than batch after OOM)
  bool stopped_early = false;        // patience ran out
  bool interrupted = false;          // Ctrl-C: the last completed epoch is saved; --resume continues
  double seconds = 0;
};

// `detkit eval --model`: a trained model on a split of a dataset.
struct EvaluateModelRequest {
  std::string model;                 // a checkpoint file or a run directory (its weights/best.pt)
  const Dataset* dataset = nullptr;  // read by the caller
  std::string split = "val";
  int64_t imgsz = 0;                 // 0: the size the model was trained at
  int64_t batch = 16;
  int64_t workers = 0;
  std::string device = "auto";
  double conf = 0.001;               // confidence threshold
  double iou = 0.7;                  // NMS IoU threshold
  std::string out_dir;               // metrics.json, curves, confusion matrix, predictions ("": nothing written)
};

struct EvaluateModelResult {
  std::array<double, 12> stats{};                      // COCO summary (AP, AP50, ..., ARl)
  std::vector<std::pair<std::string, double>> per_class_ap;  // class name, AP50-95 (-1: no ground truth)
  int64_t images = 0, detections = 0;
  double images_per_second = 0;
  std::vector<std::string> files;                     // what was written into out_dir
};

// `detkit detect`: a trained model on images.
struct DetectRequest {
  std::string model;                 // a checkpoint file or a run directory
  std::vector<std::string> sources;  // image files
  std::string out_dir;               // predictions.json (COCO results), labels/*.txt (YOLO), annotated images
  int64_t imgsz = 0;                 // 0: the size the model was trained at
  int64_t batch = 8;
  std::string device = "auto";
  double conf = 0.25;
  double iou = 0.7;
  int64_t max_det = 300;
  bool save_images = true;           // annotated copies of the images
};

struct DetectResult {
  int64_t images = 0, detections = 0, failed = 0;  // failed: unreadable images (reported, skipped)
  double images_per_second = 0;
  std::vector<std::string> files;
};

// `detkit lr-find` (src/train/lr_find.h, docs/lr-find.md): a learning-rate range test of the training
// recipe in `config`, on a fresh detector that is thrown away afterwards.
struct LrFindRequest {
  RunConfig config;                  // resolved; the test's knobs are config.lr_find
  const Dataset* dataset = nullptr;  // read by the caller; must stay alive during the call
  std::string split = "train";       // the images to train on
  std::string out_dir;               // lr_find.json, lr_find.csv and lr_find.png ("": nothing written)
};
struct LrFindResult {
  std::vector<double> lr, loss, smoothed;  // per step taken
  double suggested_lr = 0;           // what lr0: auto takes
  double min_loss_lr = 0;            // rate of the lowest smoothed loss
  double steepest_lr = 0;            // rate of the steepest fall (0: not found)
  bool diverged = false;             // the test stopped because the loss diverged
  double diverged_lr = 0;
  bool interrupted = false;          // Ctrl-C: the steps taken so far are analysed and written
  int64_t batch = 0, accumulate = 1; // micro-batch, and the accumulation the loss is scaled by
  int64_t images = 0;                // training images fed forward
  std::vector<std::string> notes;    // where the curve does not support the suggestion
  std::vector<std::string> files;    // written into out_dir
  double seconds = 0;
};
// `detkit plan` (src/train/plan.h, docs/plan.md): the device memory a training run needs.
struct PlanRequest {
  std::string model = "yolo-n";
  int64_t classes = 80;
  bool stride4 = false;              // the model has the stride-4 level
  int64_t imgsz = 640;
  int64_t batch = 16;                // the batch to judge
  int64_t nominal_batch = 64;        // effective batch (gradient accumulation reaches it)
  bool amp = false;                  // judge the mixed-precision figures (both are always reported)
  std::string optimizer = "sgd";     // sgd (momentum: 1 copy of the weights) or adamw (2 copies)
  bool ema = true;                   // the trainer's EMA copy of the weights
  std::string device = "auto";       // where to measure: cpu, cuda, cuda:N, auto (CUDA when visible)
  uint64_t memory_bytes = 0;         // the memory to plan for (--gpu-mem); 0: the measured device's
                                     // (CUDA total, or available RAM on the CPU)
  bool memory_is_gpu = false;        // memory_bytes is a GPU's: plan a CUDA run while measuring on the CPU
  double memory_fraction = 0.9;      // share of the memory the plan may fill
  int64_t boxes_per_image = 8;       // synthetic ground truth per image
  int64_t profile_imgsz = 320;       // CPU: larger sizes are measured at this size and scaled by area
  std::vector<int64_t> profile_batches;  // empty: {1, 2} on the CPU, {4, 8} on CUDA
  int64_t workers = 0;               // loader threads, for its host-side prefetch queue (0: one per core)
  bool both_precisions = true;       // also measure the precision not asked for
};

// Bytes, one precision. activations(B) = activations_fixed + B * activations_per_image.
struct MemoryBreakdown {
  bool measured = false;             // false: this precision was not measured (all 0)
  std::string precision;             // "float32", "bfloat16 (CPU autocast)", "float16 (CUDA autocast)", ...
  uint64_t weights = 0;              // parameters and buffers
  uint64_t gradients = 0;
  uint64_t optimizer = 0;            // SGD momentum (1 copy) or AdamW moments (2 copies)
  uint64_t ema = 0;                  // EMA copy of parameters and buffers
  uint64_t gradient_backup = 0;      // the trainer's copy of accumulated gradients (when accumulating)
  double activations_fixed = 0;      // batch-independent part of a step (autocast weight copies, ...)
  double activations_per_image = 0;
  uint64_t activations = 0;          // at the request's batch
  double workspace_fraction = 0;     // allocator overhead as a share of the activations
  uint64_t workspace_fixed = 0;      // GPU plans: the CUDA context (and memory other processes hold)
  uint64_t workspace = 0;            // CUDA context, cuDNN/cuBLAS, allocator rounding and cache at the batch
  uint64_t host_per_image = 0;       // CPU runs: the loader's prefetch queue and input, per image of a batch
  uint64_t host_fixed = 0;           // CPU runs: the trainer's in-RAM rollback checkpoint
  uint64_t host = 0;                 // CPU runs: host_fixed + batch * host_per_image (0 for GPU plans)
  uint64_t total = 0;                // predicted peak at the request's batch
  int64_t max_batch = 0;             // largest batch (1, 2, 4, then multiples of 8) under the budget; 0: none
};

struct MemoryPlan {
  PlanRequest request;
  std::string device;                // where it was measured: "cpu", "cuda:0"
  std::string device_name;
  bool gpu_target = false;           // planned for a GPU (CUDA measured, or --gpu-mem)
  int64_t measured_imgsz = 0;        // the size profiled
  double area_scale = 1;             // (imgsz / measured_imgsz)^2 applied to the per-image part
  std::vector<int64_t> measured_batches;
  std::vector<uint64_t> measured_peaks;  // step peaks at measured_batches, float32 then the amp ones
  int64_t parameters = 0;
  MemoryBreakdown fp32, amp;
  uint64_t cuda_context = 0;         // CUDA: device memory used outside the caching allocator (context,
                                     // kernels, cuDNN/cuBLAS handles; includes other processes); else estimate
  uint64_t memory = 0;               // memory planned for
  uint64_t budget = 0;               // memory_fraction x memory
  bool fits = false;                 // the requested precision's total at the requested batch <= budget
  int64_t suggested_batch = 0;       // 0: nothing fits
  int64_t suggested_nominal_batch = 0;
  int64_t suggested_accumulate = 0;
  bool suggest_amp = false;          // the suggestion needs amp (fp32 did not fit at any batch)
  int64_t max_imgsz_batch1 = 0;      // when nothing fits: the largest imgsz (multiple of 32) that fits batch 1
  std::string suggested_flags;       // "batch=24 nominal_batch=64" (+ " amp=true")
  std::vector<std::string> notes;
  double seconds = 0;
};

// `detkit import` (src/models/weights_import.h): weights from a PyTorch, Ultralytics or detkit file,
// written as a detkit checkpoint.
struct ImportRequest {
  std::string file;                       // the weights file to read
  std::string out;                        // the detkit checkpoint to write
  std::vector<std::string> class_names;   // empty: the file's names, else class0, class1, ...
  int64_t imgsz = 0;                      // 0: the file's training size, else 640
};

// One row of the import table: what became of one tensor.
struct ImportRow {
  std::string target;                     // detkit's name ("" for a file tensor nothing took)
  std::string source;                     // the file's name ("" for a tensor the file lacks)
  std::string status;                     // loaded, reshaped, new (kept the model's initialisation), unused
  std::vector<int64_t> source_shape, target_shape;
};

struct ImportResult {
  std::string file;
  std::string container;                  // zip, legacy, detkit
  std::string entry;                      // where in the file the weights were ("ema", "model", "")
  std::string source_layout;              // "Ultralytics YOLOv8 (ultralytics.nn.tasks.DetectionModel)", ...
  std::string model;                      // the detkit scale built
  int64_t classes = 0;
  std::vector<std::string> class_names;
  int64_t imgsz = 0;
  std::vector<ImportRow> rows;
  std::vector<std::string> notes;
  std::string out;                        // the checkpoint written ("" when only loaded)
  int64_t count(const std::string& status) const {
    int64_t n = 0;
    for (const auto& r : rows) n += r.status == status;
    return n;
  }
};

// `detkit export` (src/export/exporter.h, docs/export.md): a trained detector written as ONNX or
// TorchScript, then run from the written file and compared with LibTorch's own outputs.
struct ExportRequest {
  std::string model;                 // a checkpoint file or a run directory (its weights/best.pt)
  std::string format = "onnx";       // onnx or torchscript
  std::string out;                   // the file to write ("": the checkpoint read, with .onnx or .torchscript)
  int64_t imgsz = 0;                 // square input size (0: the size the model was trained at)
  int64_t batch = 1;                 // fixed batch size; 0: dynamic (any batch)
  bool half = false;                 // float16 weights, input and outputs (ONNX: for GPU runtimes)
  bool nms = false;                  // ONNX: NonMaxSuppression in the graph, output "detections"
  double conf = 0.25;                // --nms: score threshold baked into the graph
  double iou = 0.7;                  // --nms: IoU threshold baked into the graph
  int64_t max_det = 300;             // --nms: most boxes kept per image and class
  int opset = 17;                    // ONNX opset, 13..17
  bool raw_outputs = false;          // also output every level's raw head (box and class logits)
  bool verify = true;                // run the written file (OpenCV DNN or TorchScript) and compare
};

struct ExportResult {
  std::string out;
  std::string format;
  int64_t bytes = 0;
  int64_t imgsz = 0;
  int opset = 0;                                       // 0 for TorchScript
  std::vector<std::string> class_names;
  std::vector<std::pair<std::string, std::string>> inputs, outputs;  // name, "float32[batch,3,640,640]"
  std::vector<std::pair<std::string, int64_t>> operators;            // op type, count
  int64_t parameters = 0;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::string verified_with;                           // "OpenCV 4.6.0 DNN", "torch::jit::load", "" (not run)
  std::string not_verified_because;                    // why the file was not run, when it was not
  double max_abs_diff = -1;                            // largest |file - LibTorch| over the compared outputs
  double max_rel_diff = -1;                            // the same, relative to max(1, |LibTorch|)
  double seconds = 0;
};

// The plugin's interface. Methods translate LibTorch errors into detkit::Error subclasses.
class TorchPlugin {
 public:
  virtual ~TorchPlugin() = default;
  virtual TorchRuntimeInfo runtime_info() = 0;
  // Sets LibTorch's intra-op thread count (and inter-op, which can only be set once per process).
  virtual void set_threads(int threads) = 0;
  // Runs the smoke test on `device` ("cuda:N" or "cpu"). Never throws for a failing stage.
  virtual TorchSmokeResult smoke_test(const std::string& device) = 0;
  // Writes the preview grid. Throws UsageError (unknown split, no request.dataset), DataError (no image
  // of the split could be read), RunError (the PNG cannot be written).
  virtual AugmentPreviewResult augment_preview(const AugmentPreviewRequest& request) = 0;

  // Parameters, GFLOPs at imgsz x imgsz (batch 1) and output grids of a detector (`detkit model info`).
  // Throws UsageError for an unknown model, a bad imgsz or class count.
  virtual ModelInfo model_info(const std::string& model, int64_t classes, int64_t imgsz, bool stride4) = 0;
  // Throws UsageError (bad imgsz or device), OutOfMemoryError.
  virtual TrainingSpeedResult training_speed(const TrainingSpeedRequest& request) = 0;

  // Trains (src/train/trainer.h). Throws ConfigError/UsageError for a bad request, DataError for data
  // that cannot train, RunError when the guardrails give up, OutOfMemoryError when retries run out.
  virtual TrainResult train(const TrainRequest& request) = 0;
  // Evaluates a checkpoint (src/train/evaluate.h). Throws UsageError/DataError.
  virtual EvaluateModelResult evaluate_model(const EvaluateModelRequest& request) = 0;
  // Runs a checkpoint on images. Unreadable images are logged and counted, not thrown.
  virtual DetectResult detect(const DetectRequest& request) = 0;
  // Estimates the peak memory of training (src/train/plan.h) by measuring real steps. Throws UsageError
  // for a bad request, EnvironmentError for an unusable device, OutOfMemoryError when profiling fails.
  virtual MemoryPlan plan_memory(const PlanRequest& request) = 0;
  // Runs the learning-rate range test (src/train/lr_find.h). Throws UsageError/DataError for a bad request,
  // OutOfMemoryError when a step does not fit.
  virtual LrFindResult find_lr(const LrFindRequest& request) = 0;
  // Reads a weights file and writes it as a detkit checkpoint (src/models/weights_import.h). Throws
  // CheckpointError for a file that cannot be read or mapped.
  virtual ImportResult import_weights(const ImportRequest& request) = 0;
  // Writes the model as ONNX or TorchScript (src/export/exporter.h). Throws UsageError for an unsupported
  // combination (an opset outside 13..17, NMS in TorchScript, a size that is not a multiple of 32),
  // CheckpointError for a model that cannot be read, RunError when the written file disagrees with LibTorch.
  virtual ExportResult export_model(const ExportRequest& request) = 0;
};

// Bumped whenever TorchPlugin changes, so a stale plugin is refused instead of crashing.
constexpr int kTorchPluginApiVersion = 9;

// Where the plugin is looked for: DETKIT_TORCH_PLUGIN when set, else ../lib/libdetkit_torch.so beside the
// executable.
std::string torch_plugin_path();

// Loads the plugin on first use and applies thread_count(). Throws EnvironmentError (with the dynamic
// loader's message, e.g. which .so is missing, and a remedy) when it cannot be loaded.
TorchPlugin& torch_plugin();

// The load error, or nullopt when the plugin loads. Never throws: for reports that must always run.
std::optional<std::string> torch_plugin_load_error();

}  // namespace detkit

// The single symbol the plugin exports. Returns nullptr when `api_version` does not match its own.
extern "C" detkit::TorchPlugin* detkit_torch_plugin_create(int api_version);
