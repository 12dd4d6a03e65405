#include "models/checkpoint.h"

#include <torch/optim/optimizer.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <sstream>

#include "core/error.h"
#include "core/text.h"
#include "core/torch/runtime.h"
#include "models/yolo.h"

namespace detkit::models {

std::string serialize_checkpoint(YoloDetector& model, YoloDetector* ema, torch::optim::Optimizer* optimizer,
                                 const nlohmann::json& meta) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  model->save(model_archive);
  archive.write("model", model_archive);
  if (ema) {
    torch::serialize::OutputArchive ema_archive;
    (*ema)->save(ema_archive);
    archive.write("ema", ema_archive);
  }
  if (optimizer) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  archive.write("meta", c10::IValue(meta.dump()));
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void write_checkpoint(const fs::path& path, const std::string& bytes) { write_file_atomic(path, bytes); }

namespace {

[[noreturn]] void damaged(const std::string& source, const std::string& why) {
  throw CheckpointError({cat(source, " is not a readable detkit checkpoint"), why,
                   "point to a weights/last.pt or weights/best.pt written by 'detkit train' (a run killed while "
                   "writing keeps the previous complete file)"});
}

}  // namespace

nlohmann::json restore_checkpoint(const std::string& bytes, const std::string& source, YoloDetector& model,
                                  YoloDetector* ema, torch::optim::Optimizer* optimizer, const c10::Device& device) {
  torch::serialize::InputArchive archive;
  try {
    std::istringstream in(bytes);
    archive.load_from(in, device);
  } catch (const std::exception& e) {
    damaged(source, strip_torch_backtrace(e.what()));
  }
  c10::IValue meta_value;
  if (!archive.try_read("meta", meta_value) || !meta_value.isString()) damaged(source, "it has no 'meta' record");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(meta_value.toStringRef());
  } catch (const std::exception& e) {
    damaged(source, cat("its meta record is not JSON: ", e.what()));
  }
  if (meta.value("format", 0) != kCheckpointFormat)
    damaged(source, cat("checkpoint format ", meta.value("format", 0), ", this detkit reads format ", kCheckpointFormat));
  try {
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    model->load(model_archive);
    if (ema) {
      torch::serialize::InputArchive ema_archive;
      if (archive.try_read("ema", ema_archive)) (*ema)->load(ema_archive);
      else (*ema)->load(model_archive);
    }
    if (optimizer) {
      torch::serialize::InputArchive optimizer_archive;
      if (!archive.try_read("optimizer", optimizer_archive)) damaged(source, "it has no optimizer state to resume from");
      optimizer->load(optimizer_archive);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    damaged(source, cat("its tensors do not fit a ", meta.value("model", std::string("?")), " with ",
                        meta.value("classes", 0), " classes: ", strip_torch_backtrace(e.what())));
  }
  return meta;
}

LoadedModel load_model(const std::string& where, const c10::Device& device) {
  fs::path path = where;
  if (fs::is_directory(path)) {
    for (const char* name : {"weights/best.pt", "weights/last.pt", "best.pt", "last.pt"})
      if (fs::exists(path / name)) {
        path = path / name;
        break;
      }
    if (fs::is_directory(path))
      throw CheckpointError({cat("no checkpoint in ", where), "a run directory holds weights/best.pt and weights/last.pt",
                       "point --model to a run directory of 'detkit train' or to a .pt file it wrote"});
  }
  if (!fs::exists(path))
    throw CheckpointError({cat("model file ", path.string(), " does not exist"), "",
                     "point --model to a run directory of 'detkit train' or to its weights/best.pt"});
  const std::string bytes = read_file(path);
  // The architecture is in the meta record: read it first, then build the model and load into it.
  torch::serialize::InputArchive archive;
  try {
    std::istringstream in(bytes);
    archive.load_from(in, c10::Device(c10::kCPU));
  } catch (const std::exception& e) {
    damaged(path.string(), strip_torch_backtrace(e.what()));
  }
  c10::IValue meta_value;
  if (!archive.try_read("meta", meta_value) || !meta_value.isString()) damaged(path.string(), "it has no 'meta' record");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(meta_value.toStringRef());
  } catch (const std::exception& e) {
    damaged(path.string(), cat("its meta record is not JSON: ", e.what()));
  }
  LoadedModel loaded;
  loaded.path = path.string();
  try {
    loaded.class_names = meta.at("class_names").get<std::vector<std::string>>();
    loaded.imgsz = meta.at("imgsz").get<int64_t>();
    YoloOptions options;
    options.scale = yolo_scale(meta.at("model").get<std::string>());
    options.classes = static_cast<int64_t>(loaded.class_names.size());
    options.stride4 = meta.value("stride4", false);
    loaded.model = YoloDetector(options);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    damaged(path.string(), cat("its meta record lacks the model description: ", e.what()));
  }
  // The EMA weights evaluate better than the raw ones at every point of a run: prefer them.
  try {
    torch::serialize::InputArchive weights;
    if (!archive.try_read("ema", weights)) archive.read("model", weights);
    loaded.model->load(weights);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    damaged(path.string(), cat("its tensors do not fit a ", meta.value("model", std::string("?")), " with ",
                               loaded.class_names.size(), " classes: ", strip_torch_backtrace(e.what())));
  }
  loaded.model->to(device);
  loaded.model->eval();
  loaded.meta = std::move(meta);
  return loaded;
}

fs::path resume_checkpoint(const fs::path& run_dir) {
  const fs::path path = run_dir / "weights" / "last.pt";
  if (!fs::exists(path))
    throw UsageError({cat("cannot resume: ", path.string(), " does not exist"),
                      "a run writes weights/last.pt at the end of each epoch; this one finished none",
                      "start the run again without --resume"});
  return path;
}

}  // namespace detkit::models
