#include "audit/audit_run.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/run_config.h"
#include "core/text.h"
#include "core/torch_plugin.h"
#include "data/convert.h"
#include "data/image_io.h"
#include "data/image_write.h"
#include "data/raster.h"
#include "eval/coco_eval.h"

namespace detkit::audit {

namespace {

using json = nlohmann::ordered_json;

// (split index, image index) of every image id of the dataset.
std::map<int64_t, std::pair<std::size_t, std::size_t>> image_locations(const Dataset& dataset) {
  std::map<int64_t, std::pair<std::size_t, std::size_t>> where;
  for (std::size_t s = 0; s < dataset.splits.size(); ++s)
    for (std::size_t i = 0; i < dataset.splits[s].images.size(); ++i) {
      const int64_t id = dataset.splits[s].images[i].id;
      if (!where.emplace(id, std::make_pair(s, i)).second)
        throw DataError({cat("two images share the id ", id), "predictions are matched to images by id",
                         "run 'detkit check --fix' to write a copy with unique images"});
    }
  return where;
}

// Adds the predictions of predictions.json (image ids and category ids of `dataset`) to `map`.
std::size_t add_predictions(const Dataset& dataset, const fs::path& file,
                            const std::map<int64_t, std::pair<std::size_t, std::size_t>>& where,
                            const std::vector<std::pair<std::size_t, std::size_t>>& images, PredictionMap& map) {
  const std::vector<CocoDetection> detections = load_coco_detections(file.string());
  std::set<std::pair<std::size_t, std::size_t>> with_detections;
  for (const CocoDetection& d : detections) {
    const auto at = where.find(d.image_id);
    if (at != where.end()) with_detections.insert(at->second);
  }
  // An image without detections was either predicted empty or skipped by the loader as unreadable; only
  // the first may be audited (the second would make every box on it look spurious).
  for (const auto& key : images) {
    if (!with_detections.count(key)) {
      const Split& split = dataset.splits[key.first];
      const fs::path path = fs::path(split.image_dir) / split.images[key.second].file_name;
      try {
        DecodeOptions quick;
        quick.target_width = quick.target_height = 64;
        decode_image(path, quick);
      } catch (const Error& e) {
        log_warn("not audited: ", path.string(), " cannot be read (", e.message(), ")");
        continue;
      }
    }
    map[key];
  }
  std::size_t n = 0;
  for (const CocoDetection& d : detections) {
    const auto at = where.find(d.image_id);
    const int64_t cls = dataset.category_index(d.category_id);
    if (at == where.end() || cls < 0)
      throw DataError({cat("a prediction names image ", d.image_id, " and category ", d.category_id,
                           ", which the dataset does not have"),
                       "the predictions were made on another dataset", "delete the audit's output directory and rerun",
                       file.string()});
    map[at->second].push_back({{d.x, d.y, d.x + d.w, d.y + d.h}, d.score, cls});
    ++n;
  }
  return n;
}

EvaluateModelRequest prediction_request(const AuditRequest& r) {
  EvaluateModelRequest e;
  e.imgsz = r.imgsz;
  e.batch = r.batch;
  e.device = r.device;
  e.conf = r.conf;
  e.iou = r.iou;
  return e;
}

PredictionMap predict_in_sample(const AuditRequest& r, const std::vector<std::size_t>& splits) {
  const Dataset& dataset = r.source->dataset;
  const auto where = image_locations(dataset);
  PredictionMap map;
  for (std::size_t s : splits) {
    const Split& split = dataset.splits[s];
    EvaluateModelRequest e = prediction_request(r);
    e.model = r.model;
    e.dataset = &dataset;
    e.split = split.name;
    e.out_dir = (fs::path(r.out_dir) / "predictions" / split.name).string();
    log_info("predicting split '", split.name, "' (", split.images.size(), " images) with ", r.model);
    torch_plugin().evaluate_model(e);
    std::vector<std::pair<std::size_t, std::size_t>> keys;
    for (std::size_t i = 0; i < split.images.size(); ++i) keys.emplace_back(s, i);
    add_predictions(dataset, fs::path(e.out_dir) / "predictions.json", where, keys, map);
  }
  return map;
}

// splitmix64: a fold assignment that is the same on every platform for a seed.
uint64_t mix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Image ids per fold: the ids shuffled with the seed, dealt round-robin.
std::vector<std::vector<int64_t>> assign_folds(const std::vector<int64_t>& ids, int64_t folds, int64_t seed) {
  std::vector<int64_t> order = ids;
  uint64_t state = static_cast<uint64_t>(seed);
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[mix(state) % i]);
  std::vector<std::vector<int64_t>> out(static_cast<std::size_t>(folds));
  for (std::size_t i = 0; i < order.size(); ++i) out[i % out.size()].push_back(order[i]);
  for (auto& f : out) std::sort(f.begin(), f.end());
  return out;
}

// folds/folds.json: written on the first run, reused by a rerun, refused when it describes other images.
// folds.json also records every image's file and its boxes' digest and the recipe, so a rerun on other
// images (ids are just positions in YOLO and VOC) or with another recipe is refused, not mixed in.
std::vector<std::vector<int64_t>> load_or_write_folds(const fs::path& file, const std::vector<int64_t>& ids, int64_t folds,
                                                      int64_t seed, const json& identity) {
  const auto fresh = assign_folds(ids, folds, seed);
  if (fs::exists(file)) {
    std::vector<std::vector<int64_t>> saved;
    int64_t saved_seed = 0;
    json saved_identity;
    try {
      const json j = json::parse(read_file(file));
      saved = j.at("folds").get<std::vector<std::vector<int64_t>>>();
      saved_seed = j.at("seed").get<int64_t>();
      saved_identity = j.at("identity");
    } catch (const json::exception& e) {
      throw DataError({"the saved fold assignment cannot be read", e.what(),
                       "delete the audit's output directory (or choose another --out) and rerun", file.string()});
    }
    if (saved != fresh || saved_identity.value("images", json()) != identity.at("images"))
      throw UsageError({"the output directory holds folds of other images, another fold count or another seed",
                        cat("folds.json has ", saved.size(), " folds with seed ", saved_seed, "; this audit asks for ", folds,
                            " folds with seed ", seed, " over ", ids.size(), " images"),
                        "choose another --out, or delete the old one", file.string()});
    if (saved_identity.value("recipe", json()) != identity.at("recipe"))
      throw UsageError({"the output directory holds fold models trained with another recipe",
                        cat("they were trained with ", saved_identity.value("recipe", json()).dump(), "; this audit asks for ",
                            identity.at("recipe").dump()),
                        "rerun with the same --model/--config and key=value, or choose another --out", file.string()});
    return saved;
  }
  json j;
  j["version"] = 1;
  j["seed"] = seed;
  j["identity"] = identity;
  j["folds"] = fresh;
  ensure_directory(file.parent_path());
  write_file_atomic(file, j.dump(1) + "\n");
  return fresh;
}

// Removes a directory the audit itself made (a fold killed before its first checkpoint, a partial
// prediction). Throws RunError when it cannot.
void remove_scratch(const fs::path& dir) {
  std::error_code error;
  fs::remove_all(dir, error);
  if (error)
    throw RunError({cat("cannot remove the audit's unfinished ", dir.filename().string(), ": ", error.message()), "",
                    "check the permissions of the output directory, or choose another --out", dir.string()});
}

// The audited images as one split, each file by its full path, so images of several splits train together.
Split pooled_split(const Dataset& dataset, const std::string& name, const std::vector<int64_t>& ids,
                   const std::map<int64_t, std::pair<std::size_t, std::size_t>>& where) {
  Split out;
  out.name = name;
  out.image_dir = fs::current_path().root_path().string();
  for (int64_t id : ids) {
    const auto [s, i] = where.at(id);
    ImageRecord image = dataset.splits[s].images[i];
    image.file_name = fs::absolute(fs::path(dataset.splits[s].image_dir) / image.file_name).lexically_normal().string();
    out.images.push_back(std::move(image));
  }
  return out;
}

RunConfig fold_recipe(const AuditRequest& r) {
  std::string file = r.config_file;
  if (file.empty() && !r.model.empty()) {
    const fs::path run_config = fs::path(r.model) / "config.yaml";
    if (!fs::is_directory(r.model) || !fs::exists(run_config))
      throw UsageError({cat("--folds trains new models with a recipe, and '", r.model, "' is not a training run directory"),
                        "the recipe is the run's config.yaml", "give --model RUN_DIR (of 'detkit train'), or --config FILE"});
    file = run_config.string();
  }
  return resolve_run_config(file, r.overrides);
}

PredictionMap predict_out_of_fold(const AuditRequest& r, const std::vector<std::size_t>& splits, AuditRunResult& result) {
  const Dataset& dataset = r.source->dataset;
  const auto where = image_locations(dataset);
  std::vector<int64_t> ids;
  for (std::size_t s : splits)
    for (const auto& image : dataset.splits[s].images) ids.push_back(image.id);
  if (static_cast<int64_t>(ids.size()) < 2 * r.folds)
    throw UsageError({cat(ids.size(), " images cannot be split into ", r.folds, " folds"),
                      "each fold model trains on the other folds and needs images to learn from",
                      "use fewer --folds, or audit in-sample with --model and no --folds"});
  // Splits not audited (a val split when auditing train) hold no labels under suspicion: every fold model
  // learns from them too.
  std::vector<int64_t> unaudited;
  for (std::size_t s = 0; s < dataset.splits.size(); ++s)
    if (std::find(splits.begin(), splits.end(), s) == splits.end())
      for (const auto& image : dataset.splits[s].images) unaudited.push_back(image.id);
  const RunConfig recipe = fold_recipe(r);
  const fs::path folds_dir = fs::path(r.out_dir) / "folds";
  json identity;
  identity["recipe"] = {{"model", r.model}, {"config", r.config_file}, {"overrides", r.overrides}};
  json images = json::object();
  for (const auto& [id, at] : where) {
    const ImageRecord& image = dataset.splits[at.first].images[at.second];
    std::string boxes;
    for (const Annotation& a : image.annotations) {
      const auto b = xyxy_corners(a.box);
      boxes += cat(a.category_id, " ", b[0], " ", b[1], " ", b[2], " ", b[3], ";");
    }
    images[std::to_string(id)] = {dataset.splits[at.first].name + "/" + image.file_name,
                                  std::to_string(std::hash<std::string>{}(boxes))};
  }
  identity["images"] = std::move(images);
  const auto folds = load_or_write_folds(folds_dir / "folds.json", ids, r.folds, r.seed, identity);

  PredictionMap map;
  for (std::size_t k = 0; k < folds.size(); ++k) {
    const std::string name = cat("fold-", k + 1);
    const fs::path run = folds_dir / name;
    const fs::path holdout = run / "holdout";
    std::vector<int64_t> train_ids = unaudited;
    for (std::size_t j = 0; j < folds.size(); ++j)
      if (j != k) train_ids.insert(train_ids.end(), folds[j].begin(), folds[j].end());
    Dataset fold;
    fold.categories = dataset.categories;
    fold.splits.push_back(pooled_split(dataset, "train", train_ids, where));
    fold.splits.push_back(pooled_split(dataset, "holdout", folds[k], where));
    result.fold_runs.push_back(run.string());

    if (!fs::exists(holdout / "predictions.json")) {
      throw_if_interrupted("the audit");
      if (!fs::exists(run / "fold-trained")) {
        TrainRequest t;
        t.dataset = &fold;
        t.train_split = "train";
        t.val_split = "";
        t.environment_report = r.environment_report;
        if (fs::exists(run / "weights" / "last.pt") && fs::exists(run / "config.yaml")) {
          log_info("fold ", k + 1, "/", folds.size(), ": resuming the training in ", run.string());
          t.config = resolve_run_config((run / "config.yaml").string(), {});
          t.resume = run.string();
        } else {
          remove_scratch(run);  // the audit's own scratch, killed before its first checkpoint
          t.config = recipe;
          t.config.data = r.data_path;
          t.config.project = folds_dir.string();
          t.config.name = name;
          log_info("fold ", k + 1, "/", folds.size(), ": training on ", train_ids.size(), " images, holding out ",
                   folds[k].size());
        }
        const TrainResult trained = torch_plugin().train(t);
        if (trained.interrupted)
          throw InterruptedError({cat("the audit was interrupted while fold ", k + 1, " trained"), "",
                                  "run the same command again: finished folds are kept and this one resumes"});
        std::error_code ignored;
        if (fs::weakly_canonical(trained.run_dir, ignored) != fs::weakly_canonical(run, ignored))
          throw InternalError({cat("fold ", k + 1, " trained into ", trained.run_dir, " instead of ", run.string())});
        write_file_atomic(run / "fold-trained", cat(trained.epochs_completed, " epochs\n"));
      }
      EvaluateModelRequest e = prediction_request(r);
      e.model = run.string();
      e.dataset = &fold;
      e.split = "holdout";
      e.out_dir = (holdout.string() + ".partial");
      remove_scratch(e.out_dir);
      log_info("fold ", k + 1, "/", folds.size(), ": predicting the ", folds[k].size(), " held-out images");
      torch_plugin().evaluate_model(e);
      // The finished marker of a fold is its predictions.json: moved into place only when complete.
      remove_scratch(holdout);
      std::error_code error;
      fs::rename(e.out_dir, holdout, error);
      if (error)
        throw RunError({cat("cannot move the fold's predictions into place: ", error.message()), "",
                        "check the permissions and free space of the output directory", holdout.string()});
    } else {
      log_info("fold ", k + 1, "/", folds.size(), ": reusing ", (holdout / "predictions.json").string());
    }
    std::vector<std::pair<std::size_t, std::size_t>> keys;
    for (int64_t id : folds[k]) keys.push_back(where.at(id));
    add_predictions(dataset, holdout / "predictions.json", where, keys, map);
  }
  return map;
}

// --- crops --------------------------------------------------------------------------------------------

// `v` as a pixel index in [lo, hi]; NaN and huge values clamp instead of overflowing the cast.
int pixel(double v, int lo, int hi) {
  if (!(v >= lo)) return lo;
  if (v > hi) return hi;
  return static_cast<int>(v);
}

void draw_rectangle(RgbImage& image, double x1, double y1, double x2, double y2, Rgb colour, int thickness) {
  const int ix1 = pixel(x1, 0, image.width - 1), iy1 = pixel(y1, 0, image.height - 1);
  const int ix2 = pixel(x2, 0, image.width - 1), iy2 = pixel(y2, 0, image.height - 1);
  for (int t = 0; t < thickness; ++t) {
    for (int x = ix1; x <= ix2; ++x) {
      image.set(x, std::min(iy1 + t, image.height - 1), colour);
      image.set(x, std::max(iy2 - t, 0), colour);
    }
    for (int y = iy1; y <= iy2; ++y) {
      image.set(std::min(ix1 + t, image.width - 1), y, colour);
      image.set(std::max(ix2 - t, 0), y, colour);
    }
  }
}

// The label (left) and the model's view (right) of a suspect's neighbourhood, side by side.
std::string side_by_side_crop(const RgbImage& image, const std::optional<std::array<double, 4>>& label,
                              const std::optional<std::array<double, 4>>& model) {
  std::array<double, 4> area = label ? *label : *model;
  if (label && model)
    area = {std::min((*label)[0], (*model)[0]), std::min((*label)[1], (*model)[1]), std::max((*label)[2], (*model)[2]),
            std::max((*label)[3], (*model)[3])};
  const double margin = std::min(1e6, std::max({16.0, 0.5 * (area[2] - area[0]), 0.5 * (area[3] - area[1])}));
  const int x0 = pixel(area[0] - margin, 0, image.width - 1);
  const int y0 = pixel(area[1] - margin, 0, image.height - 1);
  const int x1 = pixel(area[2] + margin, x0 + 1, image.width);
  const int y1 = pixel(area[3] + margin, y0 + 1, image.height);
  RgbImage crop(x1 - x0, y1 - y0);
  for (int y = y0; y < y1; ++y)
    std::copy_n(image.at(x0, y), static_cast<std::size_t>(crop.width) * 3, crop.at(0, y - y0));
  const double scale = 192.0 / std::max(crop.width, crop.height);
  const int w = std::max(1, static_cast<int>(crop.width * scale + 0.5)), h = std::max(1, static_cast<int>(crop.height * scale + 0.5));
  const RgbImage panel = resize_bilinear(crop, w, h);
  auto boxed = [&](const std::optional<std::array<double, 4>>& b, Rgb colour) {
    RgbImage p = panel;
    if (b)
      draw_rectangle(p, ((*b)[0] - x0) * scale, ((*b)[1] - y0) * scale, ((*b)[2] - x0) * scale, ((*b)[3] - y0) * scale,
                     colour, 2);
    return p;
  };
  const RgbImage left = boxed(label, {255, 210, 0}), right = boxed(model, {0, 200, 255});
  constexpr int gutter = 6;
  RgbImage out(2 * w + gutter, h);
  for (int y = 0; y < h; ++y) {
    std::copy_n(left.at(0, y), static_cast<std::size_t>(w) * 3, out.at(0, y));
    for (int x = w; x < w + gutter; ++x) out.set(x, y, {128, 128, 128});
    std::copy_n(right.at(0, y), static_cast<std::size_t>(w) * 3, out.at(w + gutter, y));
  }
  return encode_jpeg(out, 88);
}

std::optional<std::array<double, 4>> annotation_box(const Dataset& dataset, const Suspect& s) {
  if (!s.annotation_index) return std::nullopt;
  return xyxy_corners(dataset.splits[s.split_index].images[s.image_index].annotations[*s.annotation_index].box);
}

std::size_t write_crops(const Dataset& dataset, AuditResult& audit, const fs::path& out_dir, int64_t per_kind) {
  if (per_kind <= 0) return 0;
  const fs::path dir = out_dir / "crops";
  ensure_directory(dir);
  std::map<std::pair<std::size_t, std::size_t>, std::vector<Suspect*>> by_image;
  for (Suspect& s : audit.suspects)
    if (s.rank <= per_kind) by_image[{s.split_index, s.image_index}].push_back(&s);
  std::size_t written = 0;
  for (auto& [key, suspects] : by_image) {
    const Split& split = dataset.splits[key.first];
    const fs::path path = fs::path(split.image_dir) / split.images[key.second].file_name;
    DecodedImage decoded;
    try {
      decoded = decode_image(path);
    } catch (const Error& e) {
      log_warn("no crops from ", path.string(), ": ", e.message());
      continue;
    }
    for (Suspect* s : suspects) {
      std::optional<std::array<double, 4>> model;
      if (s->prediction) model = s->prediction->box;
      const std::string name = cat("crops/", s->id, ".jpg");
      write_file_atomic(out_dir / name, side_by_side_crop(decoded.image, annotation_box(dataset, *s), model));
      s->crop = name;
      ++written;
    }
  }
  return written;
}

json box_json(const std::optional<std::array<double, 4>>& b) {
  if (!b) return nullptr;
  json a = json::array();
  for (double v : *b) a.push_back(std::round(v * 100) / 100);
  return a;
}

json rounded(double v) { return std::round(v * 1e4) / 1e4; }

}  // namespace

AuditRunResult run_audit(const AuditRequest& request) {
  const auto started = std::chrono::steady_clock::now();
  if (request.source == nullptr) throw InternalError({"run_audit without a dataset"});
  if (request.folds == 1 || request.folds < 0)
    throw UsageError({cat("--folds ", request.folds, " cannot hold images out"),
                      "out-of-fold predictions need at least 2 folds (each model trains on the others)",
                      "use --folds 2 or more, or leave --folds out to audit with --model in-sample"});
  if (request.folds == 0 && request.model.empty())
    throw UsageError({"nothing predicts the images", "an audit compares the labels with a trained model's predictions",
                      "give --model RUN_DIR (in-sample), or --folds K to train K models that each hold a fold out"});
  if (request.out_dir.empty()) throw UsageError({"no output directory", "", "give --out DIR"});
  validate_audit_options(request.options);  // before hours of fold training, not after
  const Dataset& dataset = request.source->dataset;
  const std::vector<std::size_t> splits = audited_splits(dataset, request.splits);
  ensure_directory(request.out_dir);

  AuditRunResult result;
  result.mode = request.folds > 0 ? "out-of-fold" : "in-sample";
  for (std::size_t s : splits) result.splits.push_back(dataset.splits[s].name);
  const PredictionMap predictions =
      request.folds > 0 ? predict_out_of_fold(request, splits, result) : predict_in_sample(request, splits);
  result.audit = audit_dataset(dataset, predictions, result.splits, request.options);
  result.crops = write_crops(dataset, result.audit, request.out_dir, request.crops_per_kind);
  result.json_path = (fs::path(request.out_dir) / "audit.json").string();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  write_file_atomic(result.json_path, audit_json(dataset, result, request.model, request.folds, request.options));
  return result;
}

std::string audit_json(const Dataset& dataset, const AuditRunResult& run, const std::string& model, int64_t folds,
                       const AuditOptions& options) {
  json j;
  j["version"] = 1;
  j["model"] = model;
  j["mode"] = run.mode;
  j["folds"] = folds;
  j["splits"] = run.splits;
  j["images"] = run.audit.images;
  j["annotations"] = run.audit.annotations;
  j["predictions"] = run.audit.predictions;
  j["options"] = {{"min_score", options.min_score},     {"match_iou", options.match_iou},
                  {"placement_iou", options.placement_iou}, {"support_iou", options.support_iou},
                  {"missing_iou", options.missing_iou}, {"min_overlap", options.min_overlap},
                  {"spurious_support", options.spurious_support}, {"labeling_policy", options.labeling_policy}};
  json counts;
  for (const auto& [kind, n] : run.audit.counts) counts[suspect_kind_name(kind)] = n;
  j["counts"] = counts;
  json policy = json::array();
  for (const auto& [key, g] : run.audit.policy.groups)
    policy.push_back({{"class", category_name(dataset, key.first)}, {"at_edge", key.second}, {"predicted", g.predicted},
                      {"boxed", g.boxed}, {"rate", rounded(run.audit.policy.rate(key.first, key.second))}});
  j["labeling_policy"] = std::move(policy);
  json list = json::array();
  for (const Suspect& s : run.audit.suspects) {
    const Split& split = dataset.splits[s.split_index];
    const ImageRecord& image = split.images[s.image_index];
    const Annotation* ann = s.annotation_index ? &image.annotations[*s.annotation_index] : nullptr;
    json e;
    e["id"] = s.id;
    e["kind"] = suspect_kind_name(s.kind);
    e["rank"] = s.rank;
    e["score"] = rounded(s.score);
    e["split"] = split.name;
    e["image_id"] = image.id;
    e["file"] = image.file_name;
    e["image_path"] = (fs::path(split.image_dir) / image.file_name).string();
    e["annotation_id"] = ann ? json(ann->id) : json(nullptr);
    e["annotation_file"] = image.annotation_file;
    e["line"] = ann ? ann->source_line : 0;
    e["box"] = box_json(annotation_box(dataset, s));
    e["class"] = ann ? json(category_name(dataset, dataset.category_index(ann->category_id))) : json(nullptr);
    e["model_box"] = s.prediction ? box_json(s.prediction->box) : json(nullptr);
    e["model_class"] = s.prediction ? json(category_name(dataset, s.prediction->class_index)) : json(nullptr);
    e["model_score"] = s.prediction ? rounded(s.prediction->score) : json(nullptr);
    e["label_score"] = rounded(s.label_score);
    e["iou"] = s.iou ? rounded(*s.iou) : json(nullptr);
    e["evidence"] = s.evidence;
    e["fix"] = s.fix;
    e["crop"] = s.crop.empty() ? json(nullptr) : json(s.crop);
    list.push_back(std::move(e));
  }
  j["suspects"] = std::move(list);
  return j.dump(1) + "\n";
}

std::string format_audit(const Dataset& dataset, const AuditRunResult& run, std::size_t top) {
  const AuditResult& a = run.audit;
  std::string out = cat("audited ", a.images, " images (", join(run.splits, ", "), "), ", a.annotations, " boxes, ",
                        a.predictions, " predictions; ", run.mode, "\n");
  const SuspectKind order[] = {SuspectKind::wrong_class, SuspectKind::missing, SuspectKind::badly_placed, SuspectKind::spurious};
  std::vector<std::string> counts;
  for (SuspectKind k : order) counts.push_back(cat(a.counts.at(k), " ", suspect_kind_name(k)));
  out += cat("suspects: ", join(counts, ", "), "\n");
  for (SuspectKind k : order) {
    if (a.counts.at(k) == 0) continue;
    out += cat("\n", suspect_kind_name(k), " (", a.counts.at(k), ", top ", std::min(top, a.counts.at(k)), ")\n");
    for (const Suspect& s : a.suspects) {
      if (s.kind != k || s.rank > static_cast<int64_t>(top)) continue;
      const Split& split = dataset.splits[s.split_index];
      const ImageRecord& image = split.images[s.image_index];
      std::string where = image.file_name;
      if (s.annotation_index) {
        const Annotation& ann = image.annotations[*s.annotation_index];
        if (!image.annotation_file.empty() && ann.source_line > 0)
          where = cat(image.annotation_file, ":", ann.source_line);
        else if (!image.annotation_file.empty())
          where = cat(image.annotation_file, " (", image.file_name, ")");
      }
      char score[16];
      std::snprintf(score, sizeof score, "%.2f", s.score);
      out += cat("  ", s.id, "  ", score, "  ", where, "\n      ", s.evidence, "\n      fix: ", s.fix, "\n");
    }
  }
  return out;
}

AuditFixResult write_audit_fix(const DatasetSource& source, const AuditResult& audit, const FixSelection& selection,
                               const std::string& out_dir) {
  for (const auto& id : selection.ids) {
    const bool known = std::any_of(audit.suspects.begin(), audit.suspects.end(), [&](const Suspect& s) { return s.id == id; });
    if (!known)
      throw UsageError({cat("--accept names ", id, ", which is not a suspect of this audit"),
                        "ids come from the audit's audit.json (they follow the ranking, so a changed audit renumbers them)",
                        "rerun the audit with the same options and take the ids from its output"});
  }
  Dataset fixed = source.dataset;
  AuditFixResult result;
  json changes = json::array();
  std::map<std::pair<std::size_t, std::size_t>, std::vector<std::size_t>> removed;
  int64_t next_id = 0;
  for (const auto& split : fixed.splits)
    for (const auto& image : split.images)
      for (const auto& ann : image.annotations) next_id = std::max(next_id, ann.id);
  for (const Suspect& s : audit.suspects) {
    if (!selection.ids.empty()) {
      if (!selection.ids.count(s.id)) continue;  // named suspects are applied whatever their score
    } else if (s.score < selection.min_score) {
      continue;
    }
    if (!selection.kinds.empty() && !selection.kinds.count(s.kind)) continue;
    ImageRecord& image = fixed.splits[s.split_index].images[s.image_index];
    json c;
    c["id"] = s.id;
    c["kind"] = suspect_kind_name(s.kind);
    c["score"] = rounded(s.score);
    c["split"] = fixed.splits[s.split_index].name;
    c["file"] = image.file_name;
    const Annotation* before = s.annotation_index ? &image.annotations[*s.annotation_index] : nullptr;
    c["annotation_id"] = before ? json(before->id) : json(nullptr);
    c["before"] = before ? json{{"class", category_name(fixed, fixed.category_index(before->category_id))},
                                {"box", box_json(annotation_box(fixed, s))}}
                         : json(nullptr);
    switch (s.kind) {
      case SuspectKind::wrong_class:
        image.annotations[*s.annotation_index].category_id = fixed.categories[static_cast<std::size_t>(s.prediction->class_index)].id;
        ++result.classes_changed;
        break;
      case SuspectKind::badly_placed: {
        const auto& b = s.prediction->box;
        image.annotations[*s.annotation_index].box = Box{b[0], b[1], b[2], b[3], BoxFormat::xyxy};
        ++result.boxes_moved;
        break;
      }
      case SuspectKind::spurious:
        removed[{s.split_index, s.image_index}].push_back(*s.annotation_index);
        ++result.boxes_removed;
        break;
      case SuspectKind::missing: {
        Annotation added;
        added.id = ++next_id;
        added.category_id = fixed.categories[static_cast<std::size_t>(s.prediction->class_index)].id;
        const auto& b = s.prediction->box;
        added.box = Box{b[0], b[1], b[2], b[3], BoxFormat::xyxy};
        image.annotations.push_back(added);
        ++result.boxes_added;
        break;
      }
    }
    c["after"] = s.kind == SuspectKind::spurious
                     ? json(nullptr)
                     : json{{"class", category_name(fixed, s.prediction->class_index)}, {"box", box_json(s.prediction->box)}};
    if (s.kind == SuspectKind::wrong_class) c["after"]["box"] = c["before"]["box"];
    changes.push_back(std::move(c));
    ++result.applied;
  }
  // Removed last and from the back, so the annotation indices of the other suspects stay valid above.
  for (auto& [key, indices] : removed) {
    auto& anns = fixed.splits[key.first].images[key.second].annotations;
    std::sort(indices.rbegin(), indices.rend());
    for (std::size_t i : indices) anns.erase(anns.begin() + static_cast<std::ptrdiff_t>(i));
  }
  json doc;
  doc["version"] = 1;
  doc["source"] = source.root.string();
  doc["applied"] = result.applied;
  doc["changes"] = std::move(changes);
  result.notes = write_dataset(fixed, source.format, out_dir, {}, {{"audit-changes.json", doc.dump(1) + "\n"}}).notes;
  result.changes_file = (fs::path(out_dir) / "audit-changes.json").string();
  return result;
}

}  // namespace detkit::audit
