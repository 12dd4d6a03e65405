// The training data loader (torch side): worker threads decode and augment batches ahead of training into
// a bounded queue; the trainer takes them in order with next().
//
// Guarantees
//   - Deterministic: sample `index` of `epoch` is augmented with Rng::for_sample(seed, epoch, index) and the
//     epoch's order is a shuffle seeded by (seed, epoch); batches are delivered in order. So the same seed
//     gives the same batches whatever the number of workers or how fast each runs.
//   - Bounded: at most `prefetch` batches are decoded ahead of the one the trainer is waiting for.
//   - A sample whose image cannot be read (missing, corrupt, truncated: a DataError) is logged once with
//     its file name, left out of its batch and counted (Batch::skipped, LoaderStats); a mosaic or mixup
//     partner that cannot be read leaves its tile grey. Any other failure in a worker stops the workers and
//     is rethrown by next(), on the caller's thread. next() never waits forever: every worker outcome
//     (a batch, a failure) wakes it.
//   - cache: ram keeps each decoded image at training size (longer side imgsz). Its memory is computed
//     when the loader is built, from the declared image sizes (headers are read where none is declared),
//     logged, and refused with a ConfigError when it is more than 90 % of the available RAM.
//   - cache: decoded keeps each image as it was decoded (before any resampling), so every image is
//     decoded once per run and the batches are exactly those of cache: none; planned and refused like
//     ram. cache: auto is decoded when that plan is at most 25 % of the available RAM divided by the
//     number of ranks, else none: the choice never changes a batch. The recipe reads cached pixels
//     through a view and never writes them (tested: cached and uncached epochs are identical).
//   - CUDA: batches are collated into pinned host memory. When next() hands out batch k and batch k + 1 is
//     already built, k + 1's images start their copy to the device on a side stream, so it runs while k
//     trains; next() then makes the current stream wait for it (the host does not wait). Otherwise the
//     copy is queued on the current stream (non_blocking). The targets stay on the host (pinned), where the
//     loss pads them without waiting for the GPU. On the CPU batches are returned as collated.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "augment/augment.h"
#include "core/fs.h"
#include "core/run_config.h"
#include "core/torch/compat.h"
#include "data/dataset.h"
#include "data/image_io.h"

namespace detkit::augment {

struct LoaderOptions {
  int64_t imgsz = 640;           // images are delivered imgsz x imgsz
  int64_t batch = 16;            // images per batch
  int64_t workers = 0;           // decoding threads (0: thread_count())
  int64_t prefetch = 0;          // batches prepared ahead (0: two per worker)
  uint64_t seed = 0;             // shuffling and augmentation
  bool shuffle = true;           // a new order each epoch (else dataset order)
  bool augment = true;           // the training recipe; false: letterbox only (validation)
  bool drop_last = false;        // leave out a last, smaller batch
  int64_t epochs = 0;            // run length, for close_mosaic (0: mosaic never switched off)
  AugmentConfig recipe;          // the augmentation knobs
  std::string cache = "none";    // none, ram (training size), decoded (as decoded), auto (decoded when it fits)
  uint64_t available_ram = 0;    // bytes the cache may compare against (0: available_ram_bytes(), core/memory.h)
  std::string device = "cpu";    // where next() delivers batches: "cpu", "cuda", "cuda:N"
  bool on_demand = false;        // no worker threads: next() builds each batch when asked, its samples
                                 // spread over thread_count() threads (for training on the CPU, below)
  int64_t rank = 0;              // distributed training: this process's shard of every epoch (below)
  int64_t world_size = 1;        // processes sharing the epoch; 1: the whole epoch
  bool every_sample = false;     // distributed evaluation: keep a last global batch smaller than the rank
                                 // count (ranks without an image get an empty batch)
};

// Distributed sharding (world_size > 1). Every rank computes the same epoch order (seeded by (seed,
// epoch)); global batch k is that order's positions [k * W * batch, (k + 1) * W * batch), and rank r's
// batch k is the r-th of W near-equal slices of it: [k * W * batch + r * batch, + batch) for a full one;
// a last, smaller global batch of m samples is cut at r * m / W, so every rank gets at least one. So W
// ranks with batch b see exactly the samples one process with batch W * b would, each sample once per
// epoch, and augment each the same way (the stream is per (seed, epoch, sample)). A last global batch
// with fewer samples than ranks is left out (at most W - 1 samples, different ones each epoch as the
// order is reshuffled). Every rank gets batches_per_epoch() batches (the global count), so all take the
// same number of steps; a rank whose samples all failed to load gets a batch with no images, not none.

// On-demand loading (LoaderOptions::on_demand). When the training step itself runs on the CPU, its
// intra-op threads wait for each other at the end of every parallel operation, so a worker thread that
// takes a core from one of them stalls them all, and its memory traffic evicts theirs: on 2 cores,
// yolo-n's forward pass took 250-400 ms per batch of 8 mid-epoch with workers building batches ahead
// (at normal priority or at nice 19 alike), against ~210 ms without. Building each batch between steps
// on all cores costs its build time instead (a few per cent of the step with detkit's recipe), and the
// step then runs alone.

struct Batch {
  at::Tensor images;              // uint8 [B, 3, imgsz, imgsz] on the loader's device
  at::Tensor targets;             // float32 [M, 6] on the host: image position in the batch, class, x1, y1,
                                  // x2, y2 (pixels)
  std::vector<int64_t> indices;   // the image of each position, as an index into the split's images
  int64_t epoch = 0;
  int64_t number = 0;             // position of this batch in the epoch
  int64_t skipped = 0;            // samples left out because their image could not be read (including those
                                  // of preceding batches that were left out whole)
  double wait_seconds = 0;        // how long next() waited for this batch (data-wait time of the step)
  // Validation batches (augment=false) only, one per position: how original image pixels map to the
  // batch's pixels, x' = x * scale_x + pad_x (and y likewise), and the original (displayed) size. Lets
  // predictions be mapped back to the image's own coordinates. Empty for augmented batches.
  struct Geometry {
    double scale_x = 1, scale_y = 1, pad_x = 0, pad_y = 0;
    int64_t width = 0, height = 0;
  };
  std::vector<Geometry> geometry;
};

struct LoaderStats {
  int64_t batches = 0;
  int64_t samples = 0;
  int64_t skipped = 0;                 // sample loads that failed (a bad file counts each time it is met)
  double wait_seconds = 0;             // total time next() waited (with on_demand: building the batches)
  std::vector<std::string> bad_files;  // each unreadable image once, in the order found
  int64_t copies_ahead = 0;            // CUDA: batches whose copy started while the one before trained
};

struct CachePlan {
  int64_t images = 0;
  uint64_t bytes = 0;      // pixels at training size, all images
  uint64_t available = 0;  // RAM available when planned
};

// The memory a RAM cache of `split` at `imgsz` takes: for each image, its pixels with the longer side
// scaled to imgsz (declared sizes; the header is read when none is declared or the file cannot be probed,
// in which case imgsz x imgsz is assumed).
CachePlan plan_ram_cache(const Split& split, int64_t imgsz);
// The same for cache: decoded: each image's pixels as the loader decodes it for `imgsz` (a JPEG at the
// DCT scale its decoder picks, other formats at full size).
CachePlan plan_decoded_cache(const Split& split, int64_t imgsz);
// The plan of cache `mode` ("ram": plan_ram_cache; "decoded" and "auto": plan_decoded_cache).
CachePlan plan_cache(const Split& split, int64_t imgsz, const std::string& mode);

// cache: auto's rule: the decoded cache when it needs at most a quarter of the available RAM per rank
// (each rank caches what it reads, which with mosaic partners is everything).
inline constexpr double kAutoCacheShare = 0.25;
inline bool auto_cache_fits(uint64_t bytes, uint64_t available, int64_t world_size) {
  return static_cast<double>(bytes) <= kAutoCacheShare * static_cast<double>(available) / static_cast<double>(world_size);
}


class Loader {
 public:
  // Reads `split` of `dataset` (copied: the loader owns what it needs). Throws UsageError for invalid
  // options and ConfigError when the RAM cache would not fit.
  Loader(const Dataset& dataset, const Split& split, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t size() const { return static_cast<int64_t>(records_.size()); }
  // Changes the run length close_mosaic counts back from (a time-limited run shortened itself). Takes
  // effect from the next start_epoch().
  void set_run_epochs(int64_t epochs);
  // Batches per epoch (with world_size > 1, global batches: the same on every rank).
  int64_t batches_per_epoch() const;
  const CachePlan& cache_plan() const { return cache_plan_; }
  // The cache in use after cache: auto was resolved: "none", "ram" or "decoded".
  const std::string& cache_mode() const { return cache_mode_; }

  // Starts preparing `epoch` (stopping any epoch in progress) from batch `first_batch` on: a run resumed
  // in the middle of an epoch gets exactly the batches it had not trained on.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the epoch in order, or nullopt when the epoch is done. Batches whose samples all
  // failed are not returned (they are counted). Rethrows a worker's failure.
  std::optional<Batch> next();
  LoaderStats stats() const;

  // Sample `index` decoded, boxes in pixels, longer side imgsz (from the cache when on). Throws DataError
  // naming the file when the image cannot be read.
  Sample load(int64_t index);
  // Sample `index` as the recipe reads it: the decoded image at its decoded size (DCT-scaled JPEGs, else
  // full size), a [3, H, W] view of the decoder's interleaved buffer, boxes in its pixels. The recipe
  // scales it to training size in the same resampling as its affine. From the cache (training size) when
  // cache: ram is on. Throws DataError like load().
  Sample load_source(int64_t index);
  // Sample `index` of `epoch` as the recipe makes it (what a batch holds), without the loader's threads.
  Sample sample(int64_t epoch, int64_t index);

 private:
  // An image that could not be read while building a batch: applied to the stats (and logged) when the
  // batch is delivered, in the batch's order whichever thread made each sample.
  struct BadFile {
    int64_t index;
    std::string message;
  };
  struct Built {
    Batch batch;
    std::vector<BadFile> bad_files;
  };
  void stop_workers();
  void worker_main();
  // `spread`: the samples are made on thread_count() threads (on-demand loading).
  Built build_batch(int64_t number, bool spread);
  Sample sample(int64_t epoch, int64_t index, std::vector<BadFile>& bad_files);
  static void record_bad_file(std::vector<BadFile>& bad_files, int64_t index, const std::exception& error);
  void apply_bad_files(const std::vector<BadFile>& bad_files);  // with mutex_ held
  DecodedImage decode(int64_t index);  // with DCT scaling toward the training size; records the original size
  std::shared_ptr<const DecodedImage> decoded(int64_t index);  // decode(), through the decoded cache when on
  void boxes_of(int64_t index, int64_t width, int64_t height, int64_t full_width, int64_t full_height,
                std::vector<float>& boxes, std::vector<int64_t>& labels) const;

  LoaderOptions options_;
  std::vector<ImageRecord> records_;  // annotations' category_id replaced by the 0-based class index
  fs::path image_dir_;
  CachePlan cache_plan_;
  std::string cache_mode_ = "none";
  // CUDA: the next batch's images on their way to the device (next() started the copy), and its number.
  std::optional<compat::SideStreamCopy> ahead_;
  int64_t ahead_number_ = -1;

  std::mutex cache_mutex_;
  std::vector<std::optional<Sample>> cache_;                          // cache: ram
  std::vector<std::shared_ptr<const DecodedImage>> decoded_cache_;    // cache: decoded
  std::vector<std::array<int64_t, 2>> original_size_;  // displayed width, height of each image once loaded

  // Epoch state, guarded by mutex_.
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::thread> threads_;
  int64_t epoch_ = -1;
  bool mosaic_on_ = true;
  std::vector<int64_t> order_;
  int64_t batch_count_ = 0;
  int64_t next_claim_ = 0;
  int64_t consumed_ = 0;
  bool stop_ = false;
  std::exception_ptr failure_;
  std::map<int64_t, Built> ready_;
  std::set<std::string> bad_set_;
  LoaderStats stats_;
};

}  // namespace detkit::augment
