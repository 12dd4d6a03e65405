// Checkpoints: everything a run needs to continue exactly, in one file written atomically, and the
// model-only view that `eval --model` and `detect` load.
//
// A checkpoint is a LibTorch archive holding
//   model/      the trained weights and buffers
//   ema/        the exponential moving average of them (when the run keeps one)
//   optimizer/  the optimizer's state (momentum buffers, Adam moments) and parameter groups
//   meta        a JSON string: format version, model name, class names, imgsz, counters (epochs completed,
//               optimizer steps, samples seen, EMA updates), guardrail state (learning-rate scale,
//               rollbacks, micro-batch split, loss scale), best fitness, per-epoch history, the resolved
//               config as YAML.
// The data order and augmentation of every epoch are functions of (seed, epoch, sample), so no RNG stream
// has to be stored for the data; weights are initialised only at the start, from the seed.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/fs.h"
#include "models/yolo.h"

namespace torch::optim {
class Optimizer;
}

namespace detkit::models {

constexpr int kCheckpointFormat = 1;

// The serialised form of a checkpoint (what is written to disk), so a rollback can restore the last
// good state from memory without reading the file back.
std::string serialize_checkpoint(YoloDetector& model, YoloDetector* ema, torch::optim::Optimizer* optimizer,
                                 const nlohmann::json& meta);
// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync of the directory).
void write_checkpoint(const fs::path& path, const std::string& bytes);

// Restores model, EMA and optimizer state from serialised bytes (or a file), onto `device`. Returns the
// meta JSON. Throws CheckpointError naming `source` when it is not a detkit checkpoint or is damaged.
nlohmann::json restore_checkpoint(const std::string& bytes, const std::string& source, YoloDetector& model,
                                  YoloDetector* ema, torch::optim::Optimizer* optimizer, const c10::Device& device);

// A trained model for inference.
struct LoadedModel {
  YoloDetector model{nullptr};  // the EMA weights when the checkpoint has them, in eval mode
  nlohmann::json meta;
  std::vector<std::string> class_names;
  int64_t imgsz = 0;
  std::string path;  // the checkpoint file read
};

// `where` is a checkpoint file or a run directory (its weights/best.pt, else weights/last.pt). Throws
// CheckpointError (missing, not a checkpoint, damaged) naming the file, with the fix.
LoadedModel load_model(const std::string& where, const c10::Device& device);

// The checkpoint a run directory would be continued from (RUN/weights/last.pt). Throws UsageError when
// there is none.
fs::path resume_checkpoint(const fs::path& run_dir);

}  // namespace detkit::models
