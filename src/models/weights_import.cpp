#include "models/weights_import.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "core/text.h"
#include "models/checkpoint.h"
#include "models/pt_file.h"

namespace detkit::models {

namespace {

// Ultralytics YOLOv8 layer numbers of detkit's neck modules (neck.0 .. neck.5); 10, 11, 13, 14, 17 and 20
// (upsampling and concatenation) have no weights, 22 is the head.
constexpr int kNeckLayers[] = {12, 15, 16, 18, 19, 21};
constexpr int kHeadLayer = 22;
constexpr int kBackboneLayers = 10;

struct SourceTensor {
  std::string name;    // as in the file
  std::string target;  // detkit's name ("" when none maps)
  at::Tensor value;    // CPU, the file's dtype
};

struct Source {
  ImportResult info;  // file, container, entry, source_layout, class_names, imgsz
  std::string detkit_model;  // the scale a detkit checkpoint names ("" for other files)
  bool detkit_stride4 = false;
  std::vector<SourceTensor> tensors;
};

bool all_digits(const std::string& s) {
  return !s.empty() && s.size() < 6 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "model.N.rest" of an Ultralytics DetectionModel to detkit's name; nullopt for layers detkit lacks.
std::optional<std::string> from_ultralytics(const std::string& name) {
  const std::vector<std::string> parts = split(name, '.');
  if (parts.size() < 3 || parts[0] != "model" || !all_digits(parts[1])) return std::nullopt;
  const int layer = std::stoi(parts[1]);
  const auto rest = [&](std::size_t from) {
    std::string out;
    for (std::size_t i = from; i < parts.size(); ++i) out += (out.empty() ? "" : ".") + parts[i];
    return out;
  };
  if (layer < kBackboneLayers) return cat("backbone.", layer, ".", rest(2));
  for (int k = 0; k < 6; ++k)
    if (kNeckLayers[k] == layer) return cat("neck.", k, ".", rest(2));
  if (layer != kHeadLayer) return std::nullopt;
  if (rest(2) == "dfl.conv.weight") return std::string("bins");
  if (parts.size() >= 6 && (parts[2] == "cv2" || parts[2] == "cv3") && all_digits(parts[3]) && all_digits(parts[4])) {
    const std::string branch = parts[2] == "cv2" ? "box_heads" : "cls_heads";
    // The last layer of each branch is a plain nn.Conv2d there, a ConvUnit (".conv.") here.
    return cat(branch, ".", parts[3], ".", parts[4], parts[4] == "2" ? ".conv." : ".", rest(5));
  }
  return std::nullopt;
}

at::ScalarType scalar_type(ptfile::DType dtype) {
  using D = ptfile::DType;
  switch (dtype) {
    case D::Float32: return at::kFloat;
    case D::Float64: return at::kDouble;
    case D::Float16: return at::kHalf;
    case D::BFloat16: return at::kBFloat16;
    case D::Int64: return at::kLong;
    case D::Int32: return at::kInt;
    case D::Int16: return at::kShort;
    case D::Int8: return at::kChar;
    case D::UInt8: return at::kByte;
    case D::Bool: return at::kBool;
    case D::Complex64: return at::kComplexFloat;
    case D::Complex128: return at::kComplexDouble;
  }
  return at::kByte;
}

at::Tensor to_tensor(const ptfile::TensorRef& ref) {
  const std::string bytes = ref.contiguous_bytes();
  at::Tensor out = at::empty(ref.shape, at::TensorOptions().dtype(scalar_type(ref.dtype)));
  DETKIT_ASSERT(static_cast<std::size_t>(out.nbytes()) == bytes.size(), "tensor byte count");
  if (!bytes.empty()) std::memcpy(out.data_ptr(), bytes.data(), bytes.size());
  return out;
}

std::vector<int64_t> shape_of(const at::Tensor& t) { return t.sizes().vec(); }

Source read_detkit(const std::string& file) {
  LoadedModel loaded = load_model(file, c10::Device(c10::kCPU));
  Source src;
  src.info.file = loaded.path;
  src.info.container = "detkit";
  src.info.source_layout = "detkit checkpoint";
  src.info.entry = "ema";
  src.info.class_names = loaded.class_names;
  src.info.imgsz = loaded.imgsz;
  src.detkit_model = loaded.model->options().scale.name;
  src.detkit_stride4 = loaded.model->options().stride4;
  for (const auto& p : loaded.model->named_parameters(true)) src.tensors.push_back({p.key(), p.key(), p.value().detach().clone()});
  for (const auto& b : loaded.model->named_buffers(true)) src.tensors.push_back({b.key(), b.key(), b.value().detach().clone()});
  return src;
}

Source read_torch_file(const std::string& file, const ptfile::Checkpoint& ck) {
  const ptfile::FoundWeights found = ptfile::find_weights(ck);
  Source src;
  src.info.file = file;
  src.info.container = ck.container;
  src.info.entry = found.entry;
  src.info.class_names = found.class_names;
  src.info.imgsz = found.imgsz;
  src.info.notes = found.notes;
  std::size_t ultralytics_names = 0;
  for (const auto& t : found.tensors) ultralytics_names += from_ultralytics(t.name).has_value();
  const bool ultralytics = ultralytics_names * 2 > found.tensors.size();
  src.info.source_layout = ultralytics ? cat("Ultralytics YOLOv8", found.module_class.empty() ? "" : " (" + found.module_class + ")")
                                       : cat(found.layout, found.module_class.empty() ? "" : " (" + found.module_class + ")");
  for (const auto& t : found.tensors) {
    std::string target = t.name;
    if (ultralytics) target = from_ultralytics(t.name).value_or("");
    src.tensors.push_back({t.name, target, to_tensor(t)});
  }
  return src;
}

// A detkit checkpoint or run directory, else a torch.save file. For a file neither reader takes, the
// torch.save reader's error is reported: it names what is wrong with the file.
Source read_source(const std::string& file) {
  if (fs::is_directory(file)) return read_detkit(file);
  std::optional<ptfile::Checkpoint> ck;
  std::optional<CheckpointError> torch_error;
  try {
    ck = ptfile::read_checkpoint(file);
  } catch (const CheckpointError& e) {
    torch_error = e;
  }
  if (torch_error) {
    try {
      return read_detkit(file);
    } catch (const CheckpointError&) {
      throw *torch_error;
    }
  }
  if (ck->is_libtorch_archive()) return read_detkit(file);
  return read_torch_file(file, *ck);
}

const SourceTensor* find_target(const Source& src, const std::string& target) {
  for (const auto& t : src.tensors)
    if (t.target == target) return &t;
  return nullptr;
}

WeightsArchitecture architecture_of(const Source& src) {
  WeightsArchitecture arch;
  arch.class_names = src.info.class_names;
  arch.imgsz = src.info.imgsz;
  const auto fail = [&](const std::string& what, const std::string& why) -> WeightsArchitecture {
    throw CheckpointError({cat(src.info.file, ": ", what), why,
                           "detkit builds yolo-n, yolo-s and yolo-m (the YOLOv8 n/s/m layout); import a checkpoint of one of "
                           "those, or train from scratch"});
  };
  if (!src.detkit_model.empty()) {
    arch.model = src.detkit_model;
    arch.stride4 = src.detkit_stride4;
    arch.classes = static_cast<int64_t>(arch.class_names.size());
    return arch;
  }
  const SourceTensor* stem = find_target(src, "backbone.0.conv.weight");
  const SourceTensor* cls = find_target(src, "cls_heads.0.2.conv.weight");
  const SourceTensor* box = find_target(src, "box_heads.0.2.conv.weight");
  if (!stem || !cls || !box || stem->value.dim() != 4 || cls->value.dim() != 4 || box->value.dim() != 4)
    return fail("its tensors are not a YOLOv8-layout detector",
                cat("expected tensors named like detkit's (backbone.0.conv.weight, cls_heads.0.2.conv.weight) or "
                    "Ultralytics' (model.0.conv.weight, model.22.cv3.0.2.weight); the first names in the file are: ",
                    [&] {
                      std::string names;
                      for (std::size_t i = 0; i < src.tensors.size() && i < 4; ++i) names += (i ? ", " : "") + src.tensors[i].name;
                      return names;
                    }()));
  const int64_t width = stem->value.size(0);
  const bool deep = find_target(src, "backbone.2.m.1.cv1.conv.weight") != nullptr;
  if (width == 16 && !deep) arch.model = "yolo-n";
  else if (width == 32 && !deep) arch.model = "yolo-s";
  else if (width == 48 && deep) arch.model = "yolo-m";
  else if (width == 64 || width == 80)
    return fail(cat("it is a YOLOv8", width == 64 ? "l" : "x", " (first layer width ", width, "), a scale detkit does not build"), "");
  else
    return fail(cat("its first layer has ", width, " channels and ", deep ? "two" : "one",
                    " bottleneck(s) in layer 2: not a YOLOv8 n, s or m"), "");
  if (box->value.size(0) != 64)
    return fail(cat("its box branch predicts ", box->value.size(0), " values per cell; detkit's predict 4 sides x 16 bins"), "");
  arch.classes = cls->value.size(0);
  for (const auto& t : src.tensors)
    if (t.target.rfind("neck_p2.", 0) == 0) arch.stride4 = true;
  return arch;
}

ImportResult apply(YoloDetector& model, Source& src) {
  ImportResult result = src.info;
  std::set<const SourceTensor*> taken;
  int64_t total = 0, matched = 0;
  torch::NoGradGuard no_grad;
  const auto take = [&](const std::string& name, at::Tensor target) {
    ++total;
    ImportRow row;
    row.target = name;
    row.target_shape = shape_of(target);
    const SourceTensor* from = nullptr;
    for (const auto& t : src.tensors)
      if (t.target == name && !taken.count(&t)) {
        from = &t;
        break;
      }
    if (!from) {
      row.status = "new";
      result.rows.push_back(std::move(row));
      return;
    }
    taken.insert(from);
    row.source = from->name;
    row.source_shape = shape_of(from->value);
    if (from->value.numel() != target.numel()) {
      row.status = "new";  // e.g. the class branch of a file with another class count
    } else {
      row.status = from->value.sizes() == target.sizes() ? "loaded" : "reshaped";
      target.copy_(from->value.reshape(target.sizes()).to(target.scalar_type()));
      ++matched;
    }
    result.rows.push_back(std::move(row));
  };
  for (const auto& p : model->named_parameters(true)) take(p.key(), p.value());
  for (const auto& b : model->named_buffers(true)) take(b.key(), b.value());
  for (const auto& t : src.tensors)
    if (!taken.count(&t)) result.rows.push_back({"", t.name, "unused", shape_of(t.value), {}});
  if (matched * 2 < total) {
    std::string missing;
    int shown = 0;
    for (const auto& r : result.rows)
      if (r.status == "new" && shown++ < 4) missing += (missing.empty() ? "" : ", ") + r.target;
    throw CheckpointError({cat(src.info.file, ": only ", matched, " of the model's ", total, " tensors were found in it"),
                           cat("its layout is not one detkit maps (", src.info.source_layout, "); missing, e.g.: ", missing),
                           "use a state_dict of a detkit model or of an Ultralytics YOLOv8 n/s/m detection model"});
  }
  if (const auto bins = model->named_parameters(true).find("bins"))
    if (!at::equal(*bins, at::arange(bins->numel(), bins->options()))) {
      result.notes.push_back("the file's distance bins were not 0..15: reset (they are fixed, not trained)");
      bins->copy_(at::arange(bins->numel(), bins->options()));
    }
  const int64_t fresh = result.count("new");
  if (fresh > 0)
    result.notes.push_back(cat(fresh, " tensor(s) kept their initialisation (not in the file, or of another size there)"));
  return result;
}

}  // namespace

void check_weights_scale(const WeightsArchitecture& arch, const std::string& file, const std::string& expect_model) {
  if (!expect_model.empty() && arch.model != expect_model)
    throw ConfigError({cat("the weights in ", file, " are a ", arch.model, ", the run builds a ", expect_model),
                       "weights load only into the scale they were trained at", cat("set model=", arch.model)});
}

WeightsArchitecture read_architecture(const std::string& file) { return architecture_of(read_source(file)); }

ImportResult load_weights_into(YoloDetector& model, const std::string& file, const std::string& expect_model) {
  Source src = read_source(file);
  const WeightsArchitecture arch = architecture_of(src);
  check_weights_scale(arch, file, expect_model);
  ImportResult result = apply(model, src);
  result.model = arch.model;
  result.classes = arch.classes;
  if (arch.classes != model->options().classes)
    result.notes.push_back(cat("the file has ", arch.classes, " classes, the model ", model->options().classes,
                               ": the class branch's output layer starts fresh"));
  return result;
}

ImportResult import_weights(const ImportRequest& request) {
  Source src = read_source(request.file);
  const WeightsArchitecture arch = architecture_of(src);
  std::vector<std::string> names = request.class_names;
  if (names.empty()) names = arch.class_names;
  if (!request.class_names.empty() && static_cast<int64_t>(names.size()) != arch.classes)
    throw UsageError({cat("--names gives ", names.size(), " class names, the weights in ", request.file, " have ", arch.classes, " classes"),
                      "", cat("give exactly ", arch.classes, " comma-separated names")});
  if (static_cast<int64_t>(names.size()) != arch.classes) {
    if (!names.empty())
      log_warn(request.file, " names ", names.size(), " classes but its class layer has ", arch.classes, ": using class0..");
    names.clear();
    for (int64_t i = 0; i < arch.classes; ++i) names.push_back(cat("class", i));
  }
  YoloOptions options;
  options.scale = yolo_scale(arch.model);
  options.classes = arch.classes;
  options.stride4 = arch.stride4;
  YoloDetector model(options);
  model->eval();
  ImportResult result = apply(model, src);
  result.model = arch.model;
  result.classes = arch.classes;
  result.class_names = names;
  result.imgsz = request.imgsz > 0 ? request.imgsz : (arch.imgsz > 0 ? arch.imgsz : 640);
  if (result.imgsz % 32 != 0)
    throw UsageError({cat("image size ", result.imgsz, " is not a multiple of 32"), "", "give --imgsz as a multiple of 32"});
  nlohmann::json meta;
  meta["format"] = kCheckpointFormat;
  meta["model"] = arch.model;
  meta["class_names"] = names;
  meta["classes"] = names.size();
  meta["stride4"] = arch.stride4;
  meta["imgsz"] = result.imgsz;
  meta["has_ema"] = false;
  meta["imported_from"] = {{"file", request.file}, {"container", result.container}, {"entry", result.entry},
                           {"layout", result.source_layout}};
  write_checkpoint(request.out, serialize_checkpoint(model, nullptr, nullptr, meta));
  result.out = request.out;
  return result;
}

int64_t apply_freeze(YoloDetector& model, const std::string& freeze) {
  if (freeze.empty() || freeze == "none" || freeze == "0") return 0;
  int64_t layers = 0;
  if (freeze == "backbone") layers = kBackboneLayers;
  else if (all_digits(freeze) && std::stoi(freeze) <= kHeadLayer + 1) layers = std::stoi(freeze);
  else
    throw ConfigError({cat("freeze: '", freeze, "' is not a layer count or 'backbone'"), "",
                       "use freeze=backbone, freeze=N (the first N layers in YOLOv8 numbering, 0-23) or leave it empty"});
  // Each module's layer number in YOLOv8's numbering, so freeze=N means what it means in Ultralytics.
  const auto layer_of = [](const std::string& name) -> int {
    const std::vector<std::string> parts = split(name, '.');
    if (parts.size() >= 2 && parts[0] == "backbone" && all_digits(parts[1])) return std::stoi(parts[1]);
    if (parts.size() >= 2 && parts[0] == "neck" && all_digits(parts[1]) && std::stoi(parts[1]) < 6) return kNeckLayers[std::stoi(parts[1])];
    if (parts[0] == "neck_p2") return kNeckLayers[1];  // the stride-4 path sits beside the P3 output
    return kHeadLayer;
  };
  int64_t frozen = 0;
  for (auto& p : model->named_parameters(true))
    if (p.value().requires_grad() && layer_of(p.key()) < layers) {
      p.value().set_requires_grad(false);
      ++frozen;
    }
  return frozen;
}

}  // namespace detkit::models
