#include "augment/loader.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/Device.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/parallel.h"
#include "core/text.h"
#include "core/threads.h"
#include "data/image_io.h"
#include "data/raster.h"

namespace detkit::augment {

namespace {

// The size an image takes with its longer side scaled to `imgsz` (at least 1 x 1).
std::pair<int64_t, int64_t> training_size(int64_t width, int64_t height, int64_t imgsz) {
  const double r = static_cast<double>(imgsz) / static_cast<double>(std::max(width, height));
  return {std::clamp<int64_t>(std::llround(static_cast<double>(width) * r), 1, imgsz),
          std::clamp<int64_t>(std::llround(static_cast<double>(height) * r), 1, imgsz)};
}

// The size decode() asks the decoder for (it decodes a JPEG at the smallest DCT scale that covers it): the
// training size of the declared size, or imgsz x imgsz when none is declared.
std::pair<int64_t, int64_t> decode_target(const ImageRecord& record, int64_t imgsz) {
  if (record.width > 0 && record.height > 0) return training_size(record.width, record.height, imgsz);
  return {imgsz, imgsz};
}

c10::Device parse_device(const std::string& text) {
  try {
    return c10::Device(text);
  } catch (const std::exception&) {
    throw UsageError({"invalid loader device '" + text + "'", "", "use cpu, cuda or cuda:N"});
  }
}

}  // namespace

namespace {

// A cache plan of `split`: the sum of bytes_of(record, width, height) over its images, with each image's
// declared size, or its header's when none is declared (imgsz x imgsz when the file cannot be probed: the
// loader will skip it, but plan for the worst).
template <typename BytesOf>
CachePlan sum_over_images(const Split& split, int64_t imgsz, BytesOf&& bytes_of) {
  CachePlan plan;
  plan.images = static_cast<int64_t>(split.images.size());
  for (const auto& record : split.images) {
    int64_t w = record.width, h = record.height;
    if (w <= 0 || h <= 0) {
      try {
        const ImageInfo info = probe_image(fs::path(split.image_dir) / record.file_name);
        w = info.width, h = info.height;
      } catch (const DataError&) {
        w = h = imgsz;
      }
    }
    plan.bytes += bytes_of(record, w, h);
  }
  return plan;
}

}  // namespace

CachePlan plan_ram_cache(const Split& split, int64_t imgsz) {
  return sum_over_images(split, imgsz, [&](const ImageRecord&, int64_t w, int64_t h) {
    const auto [tw, th] = training_size(w, h, imgsz);
    return static_cast<uint64_t>(tw) * static_cast<uint64_t>(th) * 3;
  });
}

CachePlan plan_decoded_cache(const Split& split, int64_t imgsz) {
  return sum_over_images(split, imgsz, [&](const ImageRecord& record, int64_t w, int64_t h) {
    int64_t d = 1;
    if (image_format_from_extension(fs::path(record.file_name)) == ImageFormat::jpeg) {
      const auto [tw, th] = decode_target(record, imgsz);
      d = jpeg_scale_denominator(static_cast<int>(w), static_cast<int>(h), static_cast<int>(tw), static_cast<int>(th));
    }
    return static_cast<uint64_t>((w + d - 1) / d) * static_cast<uint64_t>((h + d - 1) / d) * 3;
  });
}

CachePlan plan_cache(const Split& split, int64_t imgsz, const std::string& mode) {
  return mode == "ram" ? plan_ram_cache(split, imgsz) : plan_decoded_cache(split, imgsz);
}

Loader::Loader(const Dataset& dataset, const Split& split, LoaderOptions options)
    : options_(std::move(options)), records_(split.images), image_dir_(split.image_dir) {
  if (options_.imgsz < 8) throw UsageError({"loader image size must be at least 8 pixels"});
  if (options_.batch < 1) throw UsageError({"loader batch size must be at least 1"});
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size)
    throw UsageError({cat("loader rank ", options_.rank, " is outside world size ", options_.world_size)});
  if (options_.workers <= 0) options_.workers = thread_count();
  if (options_.prefetch <= 0) options_.prefetch = 2 * options_.workers;
  const c10::Device device = parse_device(options_.device);
  if (device.is_cuda() && !at::globalContext().hasCUDA())
    throw EnvironmentError({"the loader was asked for device '" + options_.device + "' but LibTorch sees no CUDA device",
                            "", "use device: cpu, or run 'detkit doctor' to see why CUDA is not available"});
  // Category ids become 0-based class indices once, here; boxes of unknown classes and crowd regions are
  // not training targets (`detkit check` reports the former).
  for (auto& record : records_) {
    std::vector<Annotation> kept;
    for (auto a : record.annotations) {
      const int64_t cls = dataset.category_index(a.category_id);
      if (cls < 0 || a.iscrowd) continue;
      a.category_id = cls;
      kept.push_back(a);
    }
    record.annotations = std::move(kept);
  }
  const std::string& mode = options_.cache;
  if (mode != "none" && mode != "ram" && mode != "decoded" && mode != "auto")
    throw UsageError({cat("unknown loader cache '", mode, "'"), "", "use none, ram, decoded or auto"});
  if (mode != "none") {
    cache_plan_ = plan_cache(split, options_.imgsz, mode);
    cache_plan_.available = options_.available_ram ? options_.available_ram : available_ram_bytes();
    const auto bytes = static_cast<double>(cache_plan_.bytes), available = static_cast<double>(cache_plan_.available);
    if (mode == "auto") {
      cache_mode_ = auto_cache_fits(cache_plan_.bytes, cache_plan_.available, options_.world_size) ? "decoded" : "none";
      if (cache_mode_ == "decoded")
        log_info("cache: auto keeps the ", cache_plan_.images, " decoded images in RAM: ", format_bytes(cache_plan_.bytes),
                 " (", format_bytes(cache_plan_.available), " available)");
      else
        log_info("cache: auto decodes every epoch: the ", cache_plan_.images, " decoded images would take ",
                 format_bytes(cache_plan_.bytes), ", more than a quarter of the ", format_bytes(cache_plan_.available),
                 " available", options_.world_size > 1 ? " shared by the ranks" : "");
    } else {
      cache_mode_ = mode;
      log_info("cache: ", mode, " will hold ", cache_plan_.images, " images", mode == "ram" ? cat(" at ", options_.imgsz, " px") : "",
               ": ", format_bytes(cache_plan_.bytes), " (", format_bytes(cache_plan_.available), " available)");
      // 10 % stays free for the model, the batches in flight and everything else on the machine.
      if (cache_plan_.available == 0 || bytes > 0.9 * available)
        throw ConfigError({cat("cache: ", mode, " needs ", format_bytes(cache_plan_.bytes), " for ", cache_plan_.images,
                               " images at imgsz ", options_.imgsz, ", more than 90 % of the ",
                               format_bytes(cache_plan_.available), " of RAM available"),
                           "", "set cache: none (images are then decoded every epoch), lower imgsz, or free memory"});
    }
    if (cache_mode_ == "ram") cache_.resize(records_.size());
    if (cache_mode_ == "decoded") decoded_cache_.resize(records_.size());
  }
  original_size_.resize(records_.size());
}

Loader::~Loader() { stop_workers(); }

int64_t Loader::batches_per_epoch() const {
  const int64_t n = size(), global = options_.batch * options_.world_size;
  const int64_t full = n / global, rest = n % global;
  // A last batch smaller than the rank count would leave a rank without an image: left out.
  if (options_.drop_last || rest == 0 || (rest < options_.world_size && !options_.every_sample)) return full;
  return full + 1;
}

DecodedImage Loader::decode(int64_t index) {
  const ImageRecord& record = records_[static_cast<std::size_t>(index)];
  const fs::path path = image_dir_ / record.file_name;
  DecodeOptions request;
  // A JPEG much larger than imgsz is decoded at 1/2, 1/4 or 1/8 scale in the DCT (far cheaper), never
  // below the training size.
  const auto [tw, th] = decode_target(record, options_.imgsz);
  request.target_width = static_cast<int>(tw);
  request.target_height = static_cast<int>(th);
  DecodedImage decoded = decode_image(path, request);
  std::lock_guard<std::mutex> lock(cache_mutex_);
  original_size_[static_cast<std::size_t>(index)] = {decoded.info.width, decoded.info.height};
  return decoded;
}

std::shared_ptr<const DecodedImage> Loader::decoded(int64_t index) {
  const auto slot = static_cast<std::size_t>(index);
  if (cache_mode_ == "decoded") {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (decoded_cache_[slot]) return decoded_cache_[slot];
  }
  auto image = std::make_shared<const DecodedImage>(decode(index));
  if (cache_mode_ == "decoded") {
    // Two threads may decode the same image at once; both results are the same, the first is kept.
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (!decoded_cache_[slot]) decoded_cache_[slot] = image;
    return decoded_cache_[slot];
  }
  return image;
}

void Loader::boxes_of(int64_t index, int64_t width, int64_t height, int64_t full_width, int64_t full_height,
                      std::vector<float>& boxes, std::vector<int64_t>& labels) const {
  // Boxes are in pixels of the full displayed image; the decoded one may be smaller (DCT scaling).
  const double sx = static_cast<double>(width) / static_cast<double>(full_width);
  const double sy = static_cast<double>(height) / static_cast<double>(full_height);
  for (const auto& a : records_[static_cast<std::size_t>(index)].annotations) {
    const Box b = a.box.convert(BoxFormat::xyxy);
    if (!b.is_finite()) continue;
    boxes.insert(boxes.end(), {static_cast<float>(b.a * sx), static_cast<float>(b.b * sy), static_cast<float>(b.c * sx),
                               static_cast<float>(b.d * sy)});
    labels.push_back(a.category_id);
  }
}

Sample Loader::load(int64_t index) {
  DETKIT_ASSERT(index >= 0 && index < size(), "sample index out of range");
  if (cache_mode_ == "ram") {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_[index]) return *cache_[index];
  }
  const std::shared_ptr<const DecodedImage> decoded = this->decoded(index);
  // Down to half size (always, after DCT scaling) two-tap bilinear misses no pixel: do it on the 8-bit
  // image in fixed point, several times cheaper than LibTorch's float resize (3 of the 4 ms a tile took).
  const RgbImage* image = &decoded->image;
  RgbImage resized;
  {
    const auto [tw, th] = training_size(image->width, image->height, options_.imgsz);
    if ((tw != image->width || th != image->height) && 2 * tw >= image->width && 2 * th >= image->height) {
      resized = resize_linear(*image, static_cast<int>(tw), static_cast<int>(th));
      image = &resized;
    }
  }
  const int64_t w = image->width, h = image->height;
  std::vector<float> boxes;
  std::vector<int64_t> labels;
  boxes_of(index, w, h, decoded->info.width, decoded->info.height, boxes, labels);
  at::Tensor pixels = at::empty({3, h, w}, at::kByte);
  pixels.copy_(at::from_blob(const_cast<uint8_t*>(image->pixels.data()), {h, w, 3}, at::kByte).permute({2, 0, 1}));
  const auto n = static_cast<int64_t>(labels.size());
  const Sample full = make_sample(pixels, at::from_blob(boxes.data(), {n, 4}, at::kFloat).clone(),
                                  at::from_blob(labels.data(), {n}, at::kLong).clone());
  // Left to resize: images more than twice the training size that DCT scaling could not shrink (PNGs):
  // LibTorch's antialiased kernel, the same op the augmentations use.
  const auto [tw, th] = training_size(w, h, options_.imgsz);
  Sample sample = resize(full, tw, th);
  if (cache_mode_ == "ram") {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    cache_[index] = sample;
  }
  return sample;
}

Sample Loader::load_source(int64_t index) {
  DETKIT_ASSERT(index >= 0 && index < size(), "sample index out of range");
  if (cache_mode_ == "ram") return load(index);  // the cache holds training-size samples
  const std::shared_ptr<const DecodedImage> decoded = this->decoded(index);
  const int64_t w = decoded->image.width, h = decoded->image.height;
  std::vector<float> boxes;
  std::vector<int64_t> labels;
  boxes_of(index, w, h, decoded->info.width, decoded->info.height, boxes, labels);
  // The decoded pixels as a [3, H, W] view of the interleaved buffer (no copy); the tensor owns the buffer.
  // The recipe only reads it: with cache: decoded the buffer is the cached image's.
  auto* data = const_cast<uint8_t*>(decoded->image.pixels.data());
  Sample s;
  s.image = at::from_blob(data, {h, w, 3}, [keep = decoded](void*) mutable { keep.reset(); }, at::TensorOptions().dtype(at::kByte))
                .permute({2, 0, 1});
  // Clipped to the image, as make_sample does; boxes left with no area are dropped.
  std::vector<float> kept;
  std::vector<int64_t> kept_labels;
  const float fw = static_cast<float>(w), fh = static_cast<float>(h);
  for (std::size_t k = 0; k < labels.size(); ++k) {
    const float x1 = std::clamp(boxes[4 * k], 0.f, fw), y1 = std::clamp(boxes[4 * k + 1], 0.f, fh);
    const float x2 = std::clamp(boxes[4 * k + 2], 0.f, fw), y2 = std::clamp(boxes[4 * k + 3], 0.f, fh);
    if (!(x2 > x1 && y2 > y1)) continue;
    kept.insert(kept.end(), {x1, y1, x2, y2});
    kept_labels.push_back(labels[k]);
  }
  set_boxes(s, kept, kept_labels);
  return s;
}

Sample Loader::sample(int64_t epoch, int64_t index) {
  std::vector<BadFile> bad_files;
  Sample s = sample(epoch, index, bad_files);
  std::lock_guard<std::mutex> lock(mutex_);
  apply_bad_files(bad_files);
  return s;
}

Sample Loader::sample(int64_t epoch, int64_t index, std::vector<BadFile>& bad_files) {
  if (!options_.augment) return letterbox(load(index), options_.imgsz).sample;
  RecipeOptions recipe;
  recipe.config = options_.recipe;
  recipe.size = options_.imgsz;
  recipe.mosaic = !(options_.epochs > 0 && epoch >= options_.epochs - options_.recipe.close_mosaic);
  Rng rng = Rng::for_sample(options_.seed, epoch, index);
  return apply_recipe(index, size(), [this](int64_t i) { return load_source(i); }, recipe, rng,
                      [&bad_files](int64_t i, const std::exception& e) { record_bad_file(bad_files, i, e); });
}

void Loader::record_bad_file(std::vector<BadFile>& bad_files, int64_t index, const std::exception& error) {
  const auto* detkit_error = dynamic_cast<const Error*>(&error);
  bad_files.push_back({index, detkit_error ? detkit_error->message() : std::string(error.what())});
}

void Loader::apply_bad_files(const std::vector<BadFile>& bad_files) {
  for (const BadFile& bad : bad_files) {
    const std::string file = (image_dir_ / records_[static_cast<std::size_t>(bad.index)].file_name).string();
    ++stats_.skipped;
    if (bad_set_.insert(file).second) {
      stats_.bad_files.push_back(file);
      log_warn("skipping ", file, ": ", bad.message);
    }
  }
}

void Loader::set_run_epochs(int64_t epochs) {
  stop_workers();
  std::lock_guard<std::mutex> lock(mutex_);
  options_.epochs = epochs;
}

void Loader::start_epoch(int64_t epoch, int64_t first_batch) {
  stop_workers();
  ahead_.reset();  // a copy of the last epoch's next batch, never used
  ahead_number_ = -1;
  std::lock_guard<std::mutex> lock(mutex_);
  epoch_ = epoch;
  order_.resize(records_.size());
  for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<int64_t>(i);
  if (options_.shuffle) {
    // Fisher-Yates from the epoch's own stream (index -1 is never a sample's).
    Rng rng = Rng::for_sample(options_.seed, epoch, -1);
    for (std::size_t i = order_.size(); i > 1; --i)
      std::swap(order_[i - 1], order_[static_cast<std::size_t>(rng.below(static_cast<int64_t>(i)))]);
  }
  batch_count_ = batches_per_epoch();
  if (options_.world_size > 1) {  // this rank's slice of every global batch, in order
    std::vector<int64_t> shard;
    const int64_t n = static_cast<int64_t>(order_.size()), b = options_.batch, global = b * options_.world_size;
    const int64_t w = options_.world_size, r = options_.rank;
    for (int64_t k = 0; k < batch_count_; ++k) {
      const int64_t start = k * global, m = std::min(global, n - start);
      for (int64_t p = start + r * m / w; p < start + (r + 1) * m / w; ++p) shard.push_back(order_[static_cast<std::size_t>(p)]);
    }
    order_ = std::move(shard);
  }
  DETKIT_ASSERT(first_batch >= 0 && first_batch <= batch_count_, "first batch past the end of the epoch");
  next_claim_ = consumed_ = first_batch;
  stop_ = false;
  failure_ = nullptr;
  ready_.clear();
  if (!options_.on_demand)
    for (int64_t i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { worker_main(); });
}

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Loader::worker_main() {
  for (;;) {
    int64_t number;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [this] { return stop_ || next_claim_ >= batch_count_ || next_claim_ < consumed_ + options_.prefetch; });
      if (stop_ || next_claim_ >= batch_count_) return;
      number = next_claim_++;
    }
    try {
      Built built = build_batch(number, false);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(number, std::move(built));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!failure_) failure_ = std::current_exception();
      stop_ = true;
    }
    changed_.notify_all();
  }
}

Loader::Built Loader::build_batch(int64_t number, bool spread) {
  Built built;
  Batch& batch = built.batch;
  batch.epoch = epoch_;
  batch.number = number;
  const int64_t shard_size = static_cast<int64_t>(order_.size());
  const int64_t begin = std::min(number * options_.batch, shard_size), end = std::min(begin + options_.batch, shard_size);
  // Each position is made into its own slot, so the batch is the same whichever thread made what.
  struct Slot {
    std::optional<Sample> sample;
    std::optional<Batch::Geometry> geometry;
    std::vector<BadFile> bad_files;
  };
  std::vector<Slot> slots(static_cast<std::size_t>(end - begin));
  const auto make = [&](int64_t p) {
    Slot& slot = slots[static_cast<std::size_t>(p - begin)];
    const int64_t index = order_[static_cast<std::size_t>(p)];
    try {
      if (options_.augment) {
        slot.sample = sample(epoch_, index, slot.bad_files);
      } else {
        const Sample loaded = load(index);
        Letterboxed boxed = letterbox(loaded, options_.imgsz);
        Batch::Geometry g;
        {
          std::lock_guard<std::mutex> lock(cache_mutex_);
          const auto& size = original_size_[static_cast<std::size_t>(index)];
          g.width = size[0];
          g.height = size[1];
        }
        g.scale_x = boxed.scale * static_cast<double>(loaded.width()) / static_cast<double>(std::max<int64_t>(g.width, 1));
        g.scale_y = boxed.scale * static_cast<double>(loaded.height()) / static_cast<double>(std::max<int64_t>(g.height, 1));
        g.pad_x = static_cast<double>(boxed.pad_x);
        g.pad_y = static_cast<double>(boxed.pad_y);
        slot.geometry = g;
        slot.sample = std::move(boxed.sample);
      }
    } catch (const DataError& e) {
      record_bad_file(slot.bad_files, index, e);
    }
  };
  if (spread) {
    run_in_parallel(slots.size(), [&](std::size_t i) { make(begin + static_cast<int64_t>(i)); });
  } else {
    for (int64_t p = begin; p < end; ++p) make(p);
  }
  std::vector<Sample> samples;
  for (int64_t p = begin; p < end; ++p) {
    Slot& slot = slots[static_cast<std::size_t>(p - begin)];
    built.bad_files.insert(built.bad_files.end(), slot.bad_files.begin(), slot.bad_files.end());
    if (!slot.sample) {
      ++batch.skipped;
      continue;
    }
    samples.push_back(std::move(*slot.sample));
    if (slot.geometry) batch.geometry.push_back(*slot.geometry);
    batch.indices.push_back(order_[static_cast<std::size_t>(p)]);
  }
  const int64_t s = options_.imgsz;
  const bool pinned = parse_device(options_.device).is_cuda();
  batch.images = at::empty({static_cast<int64_t>(samples.size()), 3, s, s},
                           at::TensorOptions().dtype(at::kByte).pinned_memory(pinned));
  std::vector<at::Tensor> targets;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    batch.images[static_cast<int64_t>(i)].copy_(samples[i].image);
    const auto& b = samples[i].boxes;
    if (b.size(0) == 0) continue;
    targets.push_back(at::cat({at::full({b.size(0), 1}, static_cast<double>(i), b.options()),
                               samples[i].labels.to(at::kFloat).unsqueeze(1), b},
                              1));
  }
  batch.targets = targets.empty() ? at::zeros({0, 6}, at::kFloat) : at::cat(targets, 0);
  if (pinned) batch.targets = batch.targets.pin_memory();
  return built;
}

std::optional<Batch> Loader::next() {
  int64_t carried_skips = 0;  // from batches left out because every sample failed
  for (;;) {
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(mutex_);
    DETKIT_ASSERT(epoch_ >= 0, "Loader::next() called before start_epoch()");
    if (consumed_ >= batch_count_) return std::nullopt;
    const int64_t number = consumed_;
    Built built;
    if (options_.on_demand) {
      lock.unlock();
      built = build_batch(number, true);
      lock.lock();
    } else {
      changed_.wait(lock, [this] { return failure_ || ready_.count(consumed_) > 0; });
      if (failure_) {
        const auto failure = failure_;
        lock.unlock();
        stop_workers();
        std::rethrow_exception(failure);
      }
      built = std::move(ready_.at(number));
      ready_.erase(number);
    }
    apply_bad_files(built.bad_files);
    Batch batch = std::move(built.batch);
    ++consumed_;
    batch.wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++stats_.batches;
    stats_.wait_seconds += batch.wait_seconds;
    stats_.samples += static_cast<int64_t>(batch.indices.size());
    lock.unlock();
    changed_.notify_all();
    if (batch.indices.empty() && options_.world_size == 1) {  // every sample failed: logged; counted in the next batch returned
      carried_skips += batch.skipped;
      continue;
    }
    batch.skipped += carried_skips;
    const c10::Device device = parse_device(options_.device);
    if (device.is_cuda()) {
      // The targets stay on the host: the loss pads them there and copies the result without waiting.
      if (ahead_ && ahead_number_ == number) {
        batch.images = compat::cuda_wait_for_copy(*ahead_);
        std::lock_guard<std::mutex> count(mutex_);
        ++stats_.copies_ahead;
      } else {
        // Pinned source + non_blocking: queued on the current stream, the host goes on.
        batch.images = batch.images.to(device, /*non_blocking=*/true);
      }
      ahead_.reset();
      // The next batch, when built already, starts its copy now on a side stream, so it runs while this
      // batch trains instead of between the two steps (its pinned images are shared, not moved: its
      // ready_ entry stays until next() takes it). A failure here (out of device memory) only means no
      // copy ahead: the batch is copied when taken, inside the trainer's out-of-memory recovery.
      at::Tensor following;
      {
        std::lock_guard<std::mutex> next_lock(mutex_);
        const auto it = ready_.find(number + 1);
        if (it != ready_.end() && !it->second.batch.indices.empty()) following = it->second.batch.images;
      }
      if (following.defined()) {
        try {
          ahead_ = compat::cuda_copy_on_side_stream(following, device);
          ahead_number_ = number + 1;
        } catch (const std::exception& e) {
          log_debug("loader: no copy ahead for batch ", number + 1, ": ", e.what());
          ahead_.reset();
        }
      }
    }
    return batch;
  }
}

LoaderStats Loader::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace detkit::augment
