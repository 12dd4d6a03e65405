#include "train/lr_find.h"

#include <torch/utils.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "augment/draw.h"
#include "augment/loader.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/text.h"
#include "core/torch/compat.h"
#include "core/torch/runtime.h"
#include "data/dataset.h"
#include "data/image_write.h"
#include "infer/predict.h"
#include "train/guardrails.h"
#include "train/lr_curve.h"
#include "train/plan.h"
#include "train/setup.h"
#include "train/optimizer_step.h"

namespace detkit::train {

namespace {

// "1E-4" for a decade: the preview font has no lower case.
std::string decade_label(int exponent) { return exponent == 0 ? "1" : cat("1E", exponent); }

// The curve as a PNG: raw loss in grey, smoothed loss in blue, the minimum (dashed grey) and the
// suggestion (red) marked, decades on a log axis.
RgbImage render_curve(const LrCurve& c, const std::string& title) {
  using augment::draw_line;
  using augment::draw_text;
  const int width = 900, height = 540, left = 80, right = 24, top = 52, bottom = 64;
  RgbImage image(width, height);
  std::fill(image.pixels.begin(), image.pixels.end(), uint8_t{255});
  const Rgb axis{60, 60, 60}, grid{225, 225, 225}, raw{170, 170, 170}, smooth{31, 119, 180}, red{214, 39, 40};
  const int x0 = left, x1 = width - right, y0 = top, y1 = height - bottom;

  std::vector<std::size_t> finite;
  for (std::size_t i = 0; i < c.lr.size(); ++i)
    if (std::isfinite(c.loss[i]) && std::isfinite(c.smoothed[i]) && c.lr[i] > 0) finite.push_back(i);
  draw_text(image, x0, 18, title, axis, 2);
  if (finite.empty()) {
    draw_text(image, x0, (y0 + y1) / 2, "NO FINITE LOSS TO DRAW", red, 2);
    return image;
  }
  const double lx0 = std::log10(c.lr[finite.front()]), lx1 = std::max(std::log10(c.lr[finite.back()]), lx0 + 1e-9);
  // y: from the lowest loss to the first smoothed loss (the diverging tail is cut at the top).
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (std::size_t i : finite) lo = std::min({lo, c.loss[i], c.smoothed[i]});
  for (std::size_t i : finite) hi = std::max(hi, c.smoothed[i]);
  hi = std::min(hi, std::max(c.smoothed[finite.front()], c.min_loss) * 1.25);
  if (!(hi > lo)) hi = lo + 1;
  const double pad = (hi - lo) * 0.05;
  lo -= pad, hi += pad;
  auto px = [&](double lr) { return x0 + (std::log10(lr) - lx0) / (lx1 - lx0) * (x1 - x0); };
  auto py = [&](double loss) { return y1 - (std::min(std::max(loss, lo), hi) - lo) / (hi - lo) * (y1 - y0); };

  for (int e = static_cast<int>(std::ceil(lx0 - 1e-9)); e <= static_cast<int>(std::floor(lx1 + 1e-9)); ++e) {
    const double x = px(std::pow(10.0, e));
    draw_line(image, x, y0, x, y1, grid);
    const std::string label = decade_label(e);
    draw_text(image, static_cast<int>(x) - augment::text_width(label) / 2, y1 + 8, label, axis);
  }
  for (int k = 0; k <= 4; ++k) {
    const double v = lo + (hi - lo) * k / 4.0;
    const double y = py(v);
    draw_line(image, x0, y, x1, y, grid);
    const std::string label = format_significant(v);
    draw_text(image, x0 - 8 - augment::text_width(label), static_cast<int>(y) - 3, label, axis);
  }
  draw_line(image, x0, y0, x0, y1, axis);
  draw_line(image, x0, y1, x1, y1, axis);
  draw_text(image, (x0 + x1) / 2 - augment::text_width("LEARNING RATE") / 2, height - 28, "LEARNING RATE", axis);
  draw_text(image, 8, y0 - 16, "LOSS PER IMAGE", axis);

  for (std::size_t k = 1; k < finite.size(); ++k) {
    const std::size_t a = finite[k - 1], b = finite[k];
    draw_line(image, px(c.lr[a]), py(c.loss[a]), px(c.lr[b]), py(c.loss[b]), raw);
  }
  for (std::size_t k = 1; k < finite.size(); ++k) {
    const std::size_t a = finite[k - 1], b = finite[k];
    draw_line(image, px(c.lr[a]), py(c.smoothed[a]), px(c.lr[b]), py(c.smoothed[b]), smooth, 3);
  }
  if (c.min_index >= 0) {
    const double x = px(c.min_lr);
    for (double y = y0; y < y1; y += 12) draw_line(image, x, y, x, std::min(y + 6, static_cast<double>(y1)), raw, 2);
  }
  if (c.suggested_lr > 0) {
    const double x = px(c.suggested_lr);
    draw_line(image, x, y0, x, y1, red, 2);
    const std::string label = cat("SUGGESTED ", format_significant(c.suggested_lr));
    const int tx = std::min(static_cast<int>(x) + 6, x1 - augment::text_width(label, 2));
    draw_text(image, tx, y0 + 6, label, red, 2);
  }
  return image;
}

}  // namespace

LrFindResult find_learning_rate(const LrFindRequest& request) {
  DETKIT_ASSERT(request.dataset != nullptr, "find_learning_rate() needs a dataset");
  const auto start = std::chrono::steady_clock::now();
  const Dataset& dataset = *request.dataset;
  RunConfig config = request.config;
  const Split* split = &training_split(dataset, request.split);
  const auto classes = static_cast<int64_t>(dataset.categories.size());
  const c10::Device device = resolve_device(config.device);
  if (device.is_cuda() && config.gpu_memory_fraction > 0)
    compat::cuda_set_memory_fraction(config.gpu_memory_fraction, device.index());
  config.batch = auto_batch(config, *split, classes, device, false);
  config.auto_batch = false;
  const int64_t accumulate = accumulation(config);
  const LrFindConfig& lf = config.lr_find;

  torch::manual_seed(static_cast<uint64_t>(config.seed));
  models::YoloDetector model = make_detector(config, classes, device);
  prepare_starting_point(model, config, /*load_weights=*/true);  // the rate that suits the run's own start
  model->train();
  OptimizerSetup setup = make_optimizer(model, config, accumulate);
  const models::DetectionLoss loss(loss_options(config));
  const Precision precision = choose_precision(config, device);
  LossScaler scaler(precision.loss_scaling);
  augment::LoaderOptions lo = train_loader_options(config, device);
  lo.epochs = 0;  // the recipe of the main phase of training (mosaic on)
  augment::Loader loader(dataset, *split, lo);

  log_info("learning-rate range test: ", config.model, " on ", device.str(), ", ", config.optimizer, ", batch ", config.batch,
           " (loss x ", accumulate, " for nominal ", config.nominal_batch, "), ", lf.steps, " steps from ",
           format_significant(lf.start), " to ", format_significant(lf.end), " at ", config.imgsz, " px");
  LrCurveBuilder builder({lf.smoothing, lf.diverge, lf.divisor});
  LrFindResult result;
  result.batch = config.batch;
  result.accumulate = accumulate;
  const double max_norm = config.grad_clip > 0 ? config.grad_clip : std::numeric_limits<double>::infinity();
  install_interrupt_handler();
  Progress progress("lr-find", static_cast<uint64_t>(lf.steps), "step");
  int64_t step = 0;
  for (int64_t epoch = 0; step < lf.steps && !result.interrupted && !builder.curve().diverged; ++epoch) {
    loader.start_epoch(epoch, 0);
    bool any = false;
    while (step < lf.steps) {
      auto batch = loader.next();
      if (!batch) break;
      any = true;
      const double t = lf.steps > 1 ? static_cast<double>(step) / static_cast<double>(lf.steps - 1) : 0.0;
      const double lr = lf.start * std::pow(lf.end / lf.start, t);
      for (std::size_t g = 0; g < setup.optimizer->param_groups().size(); ++g)
        set_group_hyperparameters(*setup.optimizer, config, g, lr, config.momentum);
      const TrainingInput input = training_input(*batch, config, device, step);
      const at::Tensor& images = input.images;
      const at::Tensor& targets = input.targets;
      const auto n = static_cast<double>(images.size(0));
      const models::LossTerms terms = forward_loss(model, loss, images, targets, precision.autocast);
      const double per_image = terms.total.item<double>() / n;
      result.images += images.size(0);
      if (std::isfinite(per_image)) {
        (terms.total * (static_cast<double>(accumulate) * scaler.scale())).backward();
        if (precision.autocast) compat::clear_autocast_cache();
        const double norm =
            unscale_clip_step(*setup.optimizer, setup.params, scaler.enabled() ? scaler.scale() : 1.0, max_norm);
        scaler.update(std::isfinite(norm));  // an fp16 overflow halves the scale; divergence shows in the loss
        zero_gradients(*setup.optimizer);
      }
      ++step;
      const bool stop = builder.add(lr, per_image);
      progress.advance(1, cat("lr ", format_significant(lr), " | loss ", format_significant(per_image), " | smoothed ",
                              format_significant(builder.curve().smoothed.back())));
      if (stop) break;
      if (interrupt_requested()) {
        set_interrupt_requested(false);
        result.interrupted = true;
        break;
      }
    }
    if (!any)
      throw DataError({cat("no image of split '", split->name, "' could be read"), "every sample was skipped as unreadable",
                       cat("check the images with 'detkit check ", config.data, "'")});
  }
  const LrCurve curve = builder.finish(lf.end);
  progress.finish(curve.diverged ? cat("diverged at ", format_significant(curve.diverged_lr))
                                 : result.interrupted ? std::string("interrupted") : std::string());

  result.lr = curve.lr;
  result.loss = curve.loss;
  result.smoothed = curve.smoothed;
  result.suggested_lr = curve.suggested_lr;
  result.min_loss_lr = curve.min_lr;
  result.steepest_lr = curve.steepest_lr;
  result.diverged = curve.diverged;
  result.diverged_lr = curve.diverged_lr;
  result.notes = curve.notes;
  if (result.interrupted) result.notes.push_back("interrupted: the curve ends where Ctrl-C stopped it");
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (!request.out_dir.empty()) {
    const fs::path out(request.out_dir);
    ensure_directory(out);
    write_resolved_config(out, config);
    nlohmann::ordered_json j;
    j["format"] = "detkit-lr-find-1";
    j["model"] = config.model;
    j["optimizer"] = config.optimizer;
    j["imgsz"] = config.imgsz;
    j["batch"] = config.batch;
    j["accumulate"] = accumulate;
    j["nominal_batch"] = config.nominal_batch;
    j["momentum"] = config.momentum;
    j["weight_decay"] = config.weight_decay;
    j["device"] = device.str();
    j["start"] = lf.start;
    j["end"] = lf.end;
    j["steps_planned"] = lf.steps;
    j["steps_run"] = static_cast<int64_t>(curve.lr.size());
    j["images"] = result.images;
    j["seconds"] = result.seconds;
    j["suggested_lr"] = curve.suggested_lr;
    j["min_loss_lr"] = curve.min_lr;
    j["min_loss"] = curve.min_loss;
    j["steepest_lr"] = curve.steepest_lr;
    j["diverged"] = curve.diverged;
    j["diverged_lr"] = curve.diverged_lr;
    j["interrupted"] = result.interrupted;
    j["notes"] = result.notes;
    // Non-finite losses are written as null (JSON has no NaN).
    auto finite_or_null = [](const std::vector<double>& v) {
      nlohmann::json a = nlohmann::json::array();
      for (double x : v) a.push_back(std::isfinite(x) ? nlohmann::json(x) : nlohmann::json());
      return a;
    };
    j["points"] = {{"lr", curve.lr}, {"loss", finite_or_null(curve.loss)}, {"smoothed", finite_or_null(curve.smoothed)}};
    write_file_atomic(out / "lr_find.json", j.dump(2) + "\n");
    std::ostringstream csv;
    csv << "step,lr,loss,smoothed\n";
    for (std::size_t i = 0; i < curve.lr.size(); ++i) {
      char row[128];
      std::snprintf(row, sizeof row, "%zu,%.6g,%.6g,%.6g\n", i + 1, curve.lr[i], curve.loss[i], curve.smoothed[i]);
      csv << row;
    }
    write_file_atomic(out / "lr_find.csv", csv.str());
    write_file_atomic(out / "lr_find.png",
                      encode_png(render_curve(curve, cat("LEARNING-RATE RANGE TEST: ", config.model, " ", config.optimizer))));
    result.files = {(out / "lr_find.json").string(), (out / "lr_find.csv").string(), (out / "lr_find.png").string(),
                    (out / "config.yaml").string()};
  }
  log_info("learning-rate range test: suggested lr0 ", format_significant(result.suggested_lr), " (lowest smoothed loss at ",
           format_significant(result.min_loss_lr), result.diverged ? cat(", diverged at ", format_significant(result.diverged_lr)) : "",
           "; ", result.images, " images, ", format_duration(result.seconds), ")");
  for (const auto& note : result.notes) log_warn("lr-find: ", note);
  return result;
}

}  // namespace detkit::train
