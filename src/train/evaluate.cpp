#include "train/evaluate.h"

#include <map>
#include <nlohmann/json.hpp>

#include "augment/draw.h"
#include "core/error.h"
#include "core/log.h"
#include "core/text.h"
#include "core/torch/runtime.h"
#include "eval/detection_metrics.h"
#include "eval/detections_io.h"
#include "data/image_io.h"
#include "data/image_write.h"
#include "data/raster.h"
#include "infer/detect.h"
#include "models/checkpoint.h"

namespace detkit::train {

CocoGroundTruth split_ground_truth(const Dataset& dataset, const Split& split) {
  CocoGroundTruth gt;
  for (const auto& c : dataset.categories) gt.category_ids.push_back(c.id);
  int64_t next_id = 1;
  for (const auto& image : split.images) {
    gt.image_ids.push_back(image.id);
    for (const auto& a : image.annotations) {
      if (dataset.category_index(a.category_id) < 0) continue;
      const Box b = a.box.convert(BoxFormat::xywh);
      if (!b.is_finite()) continue;
      CocoGtBox box;
      // Fresh non-zero ids: COCO's matcher treats id 0 as "unmatched", and dataset ids may be 0.
      box.id = next_id++;
      box.image_id = image.id;
      box.category_id = a.category_id;
      box.x = b.a;
      box.y = b.b;
      box.w = b.c;
      box.h = b.d;
      box.area = b.c * b.d;
      box.iscrowd = a.iscrowd;
      gt.annotations.push_back(box);
    }
  }
  return gt;
}

Validation validate(models::YoloDetector& model, augment::Loader& loader, const c10::Device& device, const Dataset& dataset,
                    const Split& split, const infer::PredictOptions& options, bool score) {
  return infer::in_eval_mode(model, [&] {
    return validate(infer::model_forward(model, options.postprocess.reg_max), loader, device, dataset, split, options, score);
  });
}

Validation validate(const infer::ForwardFn& forward, augment::Loader& loader, const c10::Device& device, const Dataset& dataset,
                    const Split& split, const infer::PredictOptions& options, bool score) {
  Validation v;
  v.predict = infer::predict(forward, loader, device, options, [&](const augment::Batch&, std::vector<infer::ImageDetections>& images) {
    for (const auto& image : images) {
      const int64_t image_id = split.images[static_cast<std::size_t>(image.index)].id;
      for (std::size_t k = 0; k < image.boxes.size(); ++k) {
        const auto& b = image.boxes[k];
        CocoDetection d;
        d.image_id = image_id;
        d.category_id = dataset.categories[static_cast<std::size_t>(image.classes[k])].id;
        d.x = b[0];
        d.y = b[1];
        d.w = b[2] - b[0];
        d.h = b[3] - b[1];
        d.score = image.scores[k];
        v.detections.push_back(d);
      }
    }
  });
  if (score) v.coco = evaluate_coco(split_ground_truth(dataset, split), v.detections, "split '" + split.name + "'", "predictions");
  return v;
}

namespace {

// A grid of the split's first images (4 columns of 320 px cells): ground truth as white outlines,
// predictions with a score of at least `min_score` as labelled boxes in class colours.
void write_samples(const Dataset& dataset, const Split& split, const std::vector<CocoDetection>& detections,
                   const fs::path& out, double min_score = 0.25, std::size_t count = 16) {
  const int cell = 320, columns = 4;
  const std::size_t n = std::min(count, split.images.size());
  if (n == 0) return;
  const int rows = static_cast<int>((n + columns - 1) / columns);
  RgbImage grid(cell * columns, cell * rows);
  std::fill(grid.pixels.begin(), grid.pixels.end(), uint8_t{32});
  for (std::size_t i = 0; i < n; ++i) {
    const ImageRecord& record = split.images[i];
    RgbImage image;
    try {
      image = decode_image(fs::path(split.image_dir) / record.file_name).image;
    } catch (const DataError& e) {
      log_warn("samples: skipping ", record.file_name, ": ", e.message());
      continue;
    }
    const double scale = static_cast<double>(cell) / std::max(image.width, image.height);
    const int w = std::max(1, static_cast<int>(image.width * scale)), h = std::max(1, static_cast<int>(image.height * scale));
    RgbImage tile = resize_bilinear(image, w, h);
    for (const auto& a : record.annotations) {
      const Box b = a.box.convert(BoxFormat::xyxy);
      augment::draw_rect(tile, static_cast<int>(b.a * scale), static_cast<int>(b.b * scale), static_cast<int>(b.c * scale) + 1,
                         static_cast<int>(b.d * scale) + 1, Rgb{255, 255, 255});
    }
    for (const auto& d : detections) {
      if (d.image_id != record.id || d.score < min_score) continue;
      const int64_t cls = dataset.category_index(d.category_id);
      char label[96];
      std::snprintf(label, sizeof label, "%s %.2f", dataset.categories[static_cast<std::size_t>(cls)].name.c_str(), d.score);
      augment::draw_labelled_box(tile, d.x * scale, d.y * scale, (d.x + d.w) * scale, (d.y + d.h) * scale, label,
                                 augment::class_colour(cls));
    }
    const int x0 = static_cast<int>(i % columns) * cell, y0 = static_cast<int>(i / columns) * cell;
    for (int y = 0; y < h; ++y)
      std::copy(tile.at(0, y), tile.at(0, y) + 3 * w, grid.at(x0, y0 + y));
  }
  write_file_atomic(out, encode_jpeg(grid, 85));
}

}  // namespace

EvaluateModelResult evaluate_model(const EvaluateModelRequest& request) {
  DETKIT_ASSERT(request.dataset != nullptr, "evaluate_model needs a dataset");
  const Dataset& dataset = *request.dataset;
  const Split& split = dataset.split(request.split);
  const infer::Backend loaded = infer::load_backend(request.model, request.device, request.imgsz);
  const c10::Device device = loaded.device;

  std::vector<std::string> names;
  for (const auto& c : dataset.categories) names.push_back(c.name);
  if (names != loaded.class_names)
    throw UsageError({cat("the model was trained on classes [", join(loaded.class_names, ", "), "] but the dataset declares [",
                          join(names, ", "), "]"),
                      "class indices would mean different things", "evaluate on a dataset with the model's classes, in the same order"});

  augment::LoaderOptions lo;
  lo.imgsz = request.imgsz > 0 ? request.imgsz : loaded.imgsz;
  lo.batch = request.batch;
  lo.workers = request.workers;
  lo.shuffle = false;
  lo.augment = false;
  lo.device = device.str();
  augment::Loader loader(dataset, split, lo);
  infer::PredictOptions po;
  po.postprocess.conf_threshold = request.conf;
  po.postprocess.iou_threshold = request.iou;
  po.autocast = device.is_cuda();
  log_info("evaluating ", loaded.path, " (", loaded.runtime, ") on ", split.images.size(), " images of split '", split.name, "' at ", lo.imgsz,
           " px on ", device.str());
  po.postprocess.reg_max = loaded.reg_max;
  const Validation v = validate(loaded.forward, loader, device, dataset, split, po);

  EvaluateModelResult result;
  result.stats = v.coco.stats;
  std::map<int64_t, std::string> class_names;
  for (const auto& c : dataset.categories) class_names[c.id] = c.name;
  for (const auto& [id, ap] : v.coco.per_category_ap) result.per_class_ap.emplace_back(class_names[id], ap);
  result.images = v.predict.images;
  result.detections = static_cast<int64_t>(v.detections.size());
  result.images_per_second = v.predict.seconds > 0 ? static_cast<double>(v.predict.images) / v.predict.seconds : 0;
  if (request.out_dir.empty()) return result;

  const fs::path out = request.out_dir;
  ensure_directory(out);
  const CocoGroundTruth gt = split_ground_truth(dataset, split);
  const DetectionMetrics metrics = compute_detection_metrics(gt, v.detections);
  write_detection_metrics_json(out / "curves.json", metrics, class_names);
  write_coco_results(out / "predictions.json", v.detections);
  nlohmann::ordered_json j;
  j["model"] = loaded.path;
  j["split"] = split.name;
  j["imgsz"] = lo.imgsz;
  j["images"] = result.images;
  j["detections"] = result.detections;
  nlohmann::ordered_json stats;
  for (std::size_t i = 0; i < 12; ++i) stats[coco_stat_names()[i]] = v.coco.stats[i];
  j["stats"] = stats;
  nlohmann::ordered_json per_class = nlohmann::ordered_json::array();
  for (const auto& c : metrics.classes) {
    double ap = -1;
    for (const auto& [id, value] : v.coco.per_category_ap)
      if (id == c.category_id) ap = value;
    per_class.push_back({{"category_id", c.category_id}, {"name", class_names[c.category_id]}, {"ground_truth", c.num_gt},
                         {"detections", c.num_detections}, {"AP", ap}, {"AP50", c.ap}, {"precision", c.precision},
                         {"recall", c.recall}, {"f1", c.f1}});
  }
  j["best_confidence"] = metrics.best_confidence;
  j["per_class"] = per_class;
  write_file_atomic(out / "metrics.json", j.dump(2) + "\n");
  write_samples(dataset, split, v.detections, out / "samples.jpg");
  result.files = {(out / "metrics.json").string(), (out / "curves.json").string(), (out / "predictions.json").string(),
                  (out / "samples.jpg").string()};
  return result;
}

}  // namespace detkit::train
