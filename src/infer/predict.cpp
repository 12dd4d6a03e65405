#include "infer/predict.h"

#include <torch/nn/module.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/log.h"
#include "core/torch/runtime.h"
#include "core/progress.h"
#include "core/torch/compat.h"

namespace detkit::infer {

at::Tensor to_model_input(const at::Tensor& images, const c10::Device& device) {
  return images.to(device, /*non_blocking=*/true).to(at::kFloat).div_(255.0);
}

PredictStats predict(models::YoloDetector& model, augment::Loader& loader, const c10::Device& device,
                     const PredictOptions& options,
                     const std::function<void(const augment::Batch&, std::vector<ImageDetections>&)>& on_batch) {
  return in_eval_mode(model, [&] { return predict(model_forward(model, options.postprocess.reg_max), loader, device, options, on_batch); });
}

ForwardFn model_forward(models::YoloDetector model, int64_t reg_max) {
  return [model, reg_max](const at::Tensor& input) mutable { return decode_predictions(model->forward(input), reg_max); };
}

PredictStats predict(const ForwardFn& forward, augment::Loader& loader, const c10::Device& device, const PredictOptions& options,
                     const std::function<void(const augment::Batch&, std::vector<ImageDetections>&)>& on_batch) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  PredictStats stats;
  torch::NoGradGuard no_grad;
  const bool autocast = options.autocast && device.is_cuda();
  int64_t split = 1;  // passes per batch; doubles after an out-of-memory and stays doubled
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    throw_if_interrupted("prediction");
    DETKIT_ASSERT(batch->geometry.size() == batch->indices.size(), "predict() needs a loader with augment=false");
    const auto model_start = clock::now();
    if (autocast) {
      compat::set_cuda_autocast_dtype(options.bf16);
      compat::set_autocast(true, true);
    }
    // Out of memory on a batch: release, then the same images in passes of half as many, down to one
    // image at a time (each image's detections do not depend on its batch-mates).
    const at::Tensor input = batch->images;
    std::vector<Detections> found;
    for (;;) {
      found.clear();
      const int64_t n = input.size(0), pass = (n + split - 1) / split;
      bool out_of_memory = false;
      try {
        guard_torch("prediction", [&] {
          for (int64_t begin = 0; begin < n; begin += pass) {
            if (begin == 0 && options.inject_oom.erase(batch->number) > 0)
              throw OutOfMemoryError({"prediction ran out of memory", "simulated by inject_oom", ""});
            const DecodedPredictions decoded = forward(to_model_input(input.narrow(0, begin, std::min(pass, n - begin)), device));
            for (auto& d : postprocess(decoded, options.postprocess)) found.push_back(std::move(d));
          }
        });
      } catch (const OutOfMemoryError&) {
        if (pass <= 1) {
          if (autocast) compat::set_autocast(true, false);
          throw;
        }
        out_of_memory = true;
      } catch (...) {
        if (autocast) compat::set_autocast(true, false);
        throw;
      }
      if (!out_of_memory) break;
      if (device.is_cuda()) compat::cuda_empty_cache();
      split *= 2;
      ++stats.oom_retries;
      log_warn("prediction ran out of memory on a batch of ", n, " images: retrying in passes of ", (n + split - 1) / split);
    }
    if (autocast) compat::set_autocast(true, false);
    stats.model_seconds += std::chrono::duration<double>(clock::now() - model_start).count();

    std::vector<ImageDetections> images(found.size());
    for (std::size_t i = 0; i < found.size(); ++i) {
      const auto& g = batch->geometry[i];
      ImageDetections& out = images[i];
      out.index = batch->indices[i];
      out.width = g.width;
      out.height = g.height;
      const at::Tensor boxes = found[i].boxes.to(at::kCPU, at::kFloat).contiguous();
      const at::Tensor scores = found[i].scores.to(at::kCPU, at::kFloat).contiguous();
      const at::Tensor classes = found[i].classes.to(at::kCPU, at::kLong).contiguous();
      const float* b = boxes.data_ptr<float>();
      const auto w = static_cast<float>(g.width), h = static_cast<float>(g.height);
      for (int64_t k = 0; k < boxes.size(0); ++k) {
        // Undo the letterbox (x' = x * scale + pad), then clip to the image: a box may reach into the padding.
        std::array<float, 4> box{static_cast<float>((b[4 * k] - g.pad_x) / g.scale_x),
                                 static_cast<float>((b[4 * k + 1] - g.pad_y) / g.scale_y),
                                 static_cast<float>((b[4 * k + 2] - g.pad_x) / g.scale_x),
                                 static_cast<float>((b[4 * k + 3] - g.pad_y) / g.scale_y)};
        box[0] = std::clamp(box[0], 0.f, w);
        box[2] = std::clamp(box[2], 0.f, w);
        box[1] = std::clamp(box[1], 0.f, h);
        box[3] = std::clamp(box[3], 0.f, h);
        out.boxes.push_back(box);
        out.scores.push_back(scores.data_ptr<float>()[k]);
        out.classes.push_back(classes.data_ptr<int64_t>()[k]);
      }
    }
    stats.images += static_cast<int64_t>(images.size());
    stats.skipped += batch->skipped;
    on_batch(*batch, images);
  }
  stats.seconds = std::chrono::duration<double>(clock::now() - start).count();
  return stats;
}

}  // namespace detkit::infer
