#include "infer/detect.h"

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "augment/draw.h"
#include "augment/loader.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/text.h"
#include "core/torch/runtime.h"
#include "data/dataset.h"
#include "data/image_io.h"
#include "data/image_write.h"
#include "eval/detections_io.h"
#include "infer/onnx_model.h"
#include "infer/predict.h"
#include "models/checkpoint.h"

namespace detkit::infer {

namespace {

// Output names from the sources' file names, made unique ("a.jpg", "a-2.jpg") when two directories hold
// files of the same name.
std::vector<std::string> unique_stems(const std::vector<std::string>& sources) {
  std::vector<std::string> stems;
  std::map<std::string, int> seen;
  for (const auto& source : sources) {
    const std::string stem = fs::path(source).stem().string();
    const int n = ++seen[stem];
    stems.push_back(n == 1 ? stem : cat(stem, "-", n));
  }
  return stems;
}

void draw_detections(const std::string& source, const ImageDetections& found, const std::vector<std::string>& names,
                     const fs::path& out) {
  DecodedImage decoded = decode_image(source);
  RgbImage& image = decoded.image;
  for (std::size_t k = 0; k < found.boxes.size(); ++k) {
    const auto& b = found.boxes[k];
    char label[160];
    std::snprintf(label, sizeof label, "%s %.2f", names[static_cast<std::size_t>(found.classes[k])].c_str(), found.scores[k]);
    augment::draw_labelled_box(image, b[0], b[1], b[2], b[3], label, augment::class_colour(found.classes[k]));
  }
  write_file_atomic(out, encode_jpeg(image, 90));
}

}  // namespace

Backend load_backend(const std::string& model, const std::string& device_text, int64_t imgsz) {
  Backend b;
  if (is_onnx_path(model)) {
    const c10::Device asked = resolve_device(device_text);
    if (asked.is_cuda()) log_warn("ONNX files run on the CPU through OpenCV's DNN module; ignoring --device ", device_text);
    OnnxDetector file = load_onnx_detector(model);
    if (imgsz > 0 && imgsz != file.imgsz)
      throw UsageError({cat("the ONNX file was exported for ", file.imgsz, "x", file.imgsz, " input; --imgsz ", imgsz, " cannot change that"),
                        "an exported file's input size is fixed", cat("drop --imgsz, or export again with --imgsz ", imgsz), model});
    b.device = c10::Device(c10::kCPU);
    b.forward = file.forward;
    b.class_names = file.class_names;
    b.imgsz = file.imgsz;
    b.path = file.path;
    b.runtime = file.runtime;
    const auto reg = file.info.metadata.find("detkit.reg_max");
    if (reg != file.info.metadata.end()) b.reg_max = std::stoll(reg->second);
    log_info("running ", model, " (ONNX) with ", file.runtime);
    return b;
  }
  b.device = resolve_device(device_text);
  models::LoadedModel loaded = models::load_model(model, b.device);
  loaded.model->eval();
  b.reg_max = loaded.model->options().reg_max;
  b.forward = model_forward(loaded.model, b.reg_max);
  b.class_names = loaded.class_names;
  b.imgsz = loaded.imgsz;
  b.path = loaded.path;
  b.runtime = "LibTorch";
  return b;
}

DetectResult detect(const DetectRequest& request) {
  if (request.sources.empty()) throw UsageError({"no images to detect on", "", "pass image files or a directory with --source"});
  if (!(request.conf >= 0 && request.conf <= 1) || !(request.iou >= 0 && request.iou <= 1))
    throw UsageError({"--conf and --iou must lie in [0, 1]", "", "use for example --conf 0.25 --iou 0.7"});
  const Backend loaded = load_backend(request.model, request.device, request.imgsz);
  const c10::Device device = loaded.device;

  // The sources as a one-split dataset: the validation loader then decodes, letterboxes and batches them
  // with its threads, and records how to map boxes back.
  Dataset dataset;
  for (std::size_t c = 0; c < loaded.class_names.size(); ++c)
    dataset.categories.push_back({static_cast<int64_t>(c) + 1, loaded.class_names[c]});
  Split split;
  split.name = "detect";
  for (std::size_t i = 0; i < request.sources.size(); ++i) {
    ImageRecord record;
    record.id = static_cast<int64_t>(i) + 1;
    record.file_name = request.sources[i];
    split.images.push_back(record);
  }
  dataset.splits.push_back(split);

  augment::LoaderOptions lo;
  lo.imgsz = request.imgsz > 0 ? request.imgsz : loaded.imgsz;
  lo.batch = request.batch;
  lo.shuffle = false;
  lo.augment = false;
  lo.device = device.str();
  augment::Loader loader(dataset, dataset.splits.front(), lo);
  PredictOptions po;
  po.postprocess.conf_threshold = request.conf;
  po.postprocess.iou_threshold = request.iou;
  po.postprocess.max_det = request.max_det;
  po.autocast = device.is_cuda();
  po.postprocess.reg_max = loaded.reg_max;

  const fs::path out = request.out_dir;
  ensure_directory(out);
  const std::vector<std::string> stems = unique_stems(request.sources);
  std::vector<CocoDetection> detections;
  std::vector<YoloImageInfo> yolo_images;
  DetectResult result;
  Progress progress("detect", request.sources.size(), "img");
  const PredictStats stats = predict(loaded.forward, loader, device, po, [&](const augment::Batch&, std::vector<ImageDetections>& images) {
    for (const auto& found : images) {
      const auto index = static_cast<std::size_t>(found.index);
      yolo_images.push_back({static_cast<int64_t>(index) + 1, stems[index] + ".jpg", static_cast<double>(found.width),
                             static_cast<double>(found.height)});
      for (std::size_t k = 0; k < found.boxes.size(); ++k) {
        const auto& b = found.boxes[k];
        detections.push_back({static_cast<int64_t>(index) + 1, found.classes[k] + 1, b[0], b[1], b[2] - b[0], b[3] - b[1],
                              found.scores[k]});
      }
      result.detections += static_cast<int64_t>(found.boxes.size());
      if (request.save_images) {
        try {
          draw_detections(request.sources[index], found, loaded.class_names, out / (stems[index] + ".jpg"));
        } catch (const DataError& e) {
          log_warn("could not draw ", request.sources[index], ": ", e.message());
        }
      }
    }
    progress.advance(images.size());
  });
  progress.finish();
  result.images = stats.images;
  result.failed = stats.skipped;
  result.images_per_second = stats.seconds > 0 ? static_cast<double>(stats.images) / stats.seconds : 0;

  write_coco_results(out / "predictions.json", detections);
  std::map<int64_t, int64_t> class_index;
  for (std::size_t c = 0; c < loaded.class_names.size(); ++c) class_index[static_cast<int64_t>(c) + 1] = static_cast<int64_t>(c);
  write_yolo_detections(out / "labels", detections, yolo_images, class_index);
  nlohmann::ordered_json index;
  index["model"] = loaded.path;
  index["classes"] = loaded.class_names;
  nlohmann::ordered_json images = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < request.sources.size(); ++i) images.push_back({{"id", i + 1}, {"file", request.sources[i]}});
  index["images"] = images;
  write_file_atomic(out / "images.json", index.dump(2) + "\n");
  result.files = {(out / "predictions.json").string(), (out / "images.json").string(), (out / "labels").string()};
  if (request.save_images) result.files.push_back(out.string() + "/*.jpg");
  return result;
}

}  // namespace detkit::infer
