// Throughput of detkit's data loader: decode + the default augmentation recipe + collate, in samples per
// second, on a dataset's split.
//   detkit_bench_loader [--workers N] [--imgsz S] [--batch B] [--epochs E] [--trials T] [--no-augment]
//                       [--cache none|ram|decoded|auto] [--breakdown] DATASET [SPLIT]
// One warm-up epoch first (so files come from the page cache, as they do for the Python peer), then T
// trials of E epochs each; prints one JSON object with the median samples/s, the data-wait fraction and
// the CPU milliseconds per sample (user + system, all threads: the steadier figure on a shared machine).
// --breakdown instead times each stage of the recipe on one thread (ms per call, mean of 50 calls): the
// loader's path (load_source: decode only; mosaic_affine from the decoded tiles; colour on uint8; flip;
// the whole sample) and, for comparison, the older separate stages (load = decode + resize to imgsz,
// mosaic, warp) that the GPU and float paths still use.
// Intra-op threads of LibTorch are set to 1: the loader's parallelism is its workers, as the peer's is its
// worker processes.
#include <ATen/Parallel.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "augment/loader.h"
#include "core/run_config.h"
#include "data/formats_read.h"
#include "data/raster.h"

using namespace detkit;

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

int usage() {
  std::cerr << "usage: detkit_bench_loader [--workers N] [--imgsz S] [--batch B] [--epochs E] [--trials T] "
               "[--no-augment] [--cache none|ram|decoded|auto] [--breakdown] DATASET [SPLIT]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) try {
  int64_t workers = 2, imgsz = 416, batch = 16, epochs = 2, trials = 3;
  bool augment = true, breakdown = false;
  std::string cache = "none";
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--workers" || a == "--imgsz" || a == "--batch" || a == "--epochs" || a == "--trials") && i + 1 < argc) {
      const int64_t v = std::stoll(argv[++i]);
      (a == "--workers" ? workers : a == "--imgsz" ? imgsz : a == "--batch" ? batch : a == "--epochs" ? epochs : trials) = v;
    } else if (a == "--no-augment") {
      augment = false;
    } else if (a == "--cache" && i + 1 < argc) {
      cache = argv[++i];
    } else if (a == "--breakdown") {
      breakdown = true;
    } else if (!a.empty() && a[0] == '-') {
      return usage();
    } else {
      positional.push_back(a);
    }
  }
  if (positional.empty() || positional.size() > 2) return usage();
  at::set_num_threads(1);
  const DatasetSource source = read_dataset(positional[0]);
  const std::string split_name = positional.size() > 1 ? positional[1] : source.dataset.splits.front().name;
  const Split* split = nullptr;
  for (const auto& s : source.dataset.splits)
    if (s.name == split_name) split = &s;
  if (!split) return usage();

  augment::LoaderOptions options;
  options.imgsz = imgsz;
  options.batch = batch;
  options.workers = workers;
  options.augment = augment;
  options.cache = cache;
  options.recipe = RunConfig{}.augment;  // the default recipe
  augment::Loader loader(source.dataset, *split, options);
  if (breakdown) {
    using namespace augment;
    auto time_ms = [](const auto& fn) {
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < 50; ++i) fn(i);
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() * 1000.0 / 50;
    };
    const AugmentConfig cfg = options.recipe;
    const BoxFilter filter = BoxFilter::from(cfg);
    Rng rng(1);
    const Sample one = loader.load(0);
    const std::array<Sample, 4> tiles{loader.load(0), loader.load(1), loader.load(2), loader.load(3)};
    const Sample m = mosaic(tiles, imgsz, rng, filter);
    const Sample boxed = letterbox(one, imgsz).sample;
    std::cout << "load " << time_ms([&](int i) { loader.load(i % loader.size()); }) << " ms\n";
    std::cout << "load_source (decode only) " << time_ms([&](int i) { loader.load_source(i % loader.size()); }) << " ms\n";
    const Sample full = make_sample(at::zeros({3, 480, 640}, at::kByte), at::Tensor(), at::Tensor());
    std::cout << "resize 640x480->416x312 " << time_ms([&](int) { resize(full, 416, 312); }) << " ms\n";
    {
      RgbImage raw(640, 480);
      std::cout << "resize_linear 640x480->416x312 (8-bit) " << time_ms([&](int) { resize_linear(raw, 416, 312); }) << " ms\n";
    }
    std::cout << "mosaic_affine (fused, from training-size tiles) " << time_ms([&](int) {
      const int64_t xc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * static_cast<double>(imgsz));
      const int64_t yc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * static_cast<double>(imgsz));
      mosaic_affine(tiles, imgsz, xc, yc, random_affine(rng, cfg, 2 * imgsz, 2 * imgsz, imgsz, imgsz), imgsz, imgsz, filter);
    }) << " ms\n";
    std::cout << "mosaic " << time_ms([&](int) { mosaic(tiles, imgsz, rng, filter); }) << " ms\n";
    std::cout << "warp 2s->s " << time_ms([&](int) {
      warp_affine(m, random_affine(rng, cfg, 2 * imgsz, 2 * imgsz, imgsz, imgsz), imgsz, imgsz, filter);
    }) << " ms\n";
    const std::array<Sample, 4> sources{loader.load_source(0), loader.load_source(1), loader.load_source(2),
                                        loader.load_source(3)};
    std::cout << "mosaic_affine (fused, from decoded tiles) " << time_ms([&](int) {
      const int64_t xc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * static_cast<double>(imgsz));
      const int64_t yc = static_cast<int64_t>(rng.uniform(0.5, 1.5) * static_cast<double>(imgsz));
      mosaic_affine(sources, imgsz, xc, yc, random_affine(rng, cfg, 2 * imgsz, 2 * imgsz, imgsz, imgsz), imgsz, imgsz, filter);
    }) << " ms\n";
    std::cout << "letterbox " << time_ms([&](int) { letterbox(one, imgsz); }) << " ms\n";
    std::cout << "warp s->s " << time_ms([&](int) {
      warp_affine(boxed, random_affine(rng, cfg, imgsz, imgsz, imgsz, imgsz), imgsz, imgsz, filter);
    }) << " ms\n";
    std::cout << "colour " << time_ms([&](int) { adjust_color(boxed, ColorJitter::random(rng, cfg)); }) << " ms\n";
    std::cout << "flip " << time_ms([&](int) { flip_horizontal(boxed); }) << " ms\n";
    std::cout << "sample " << time_ms([&](int i) { loader.sample(0, i % loader.size()); }) << " ms\n";
    return 0;
  }
  auto run_epoch = [&](int64_t e) {
    loader.start_epoch(e);
    int64_t samples = 0;
    double wait = 0;
    while (auto b = loader.next()) {
      samples += b->images.size(0);
      wait += b->wait_seconds;
    }
    return std::make_pair(samples, wait);
  };
  run_epoch(0);  // warm-up: page cache (and the RAM cache when on)
  std::vector<double> rates, cpu_ms, wait_fraction;
  int64_t epoch = 1;
  for (int64_t t = 0; t < trials; ++t) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu0 = cpu_seconds();
    int64_t samples = 0;
    double wait = 0;
    for (int64_t e = 0; e < epochs; ++e) {
      const auto [n, w] = run_epoch(epoch++);
      samples += n;
      wait += w;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rates.push_back(static_cast<double>(samples) / seconds);
    cpu_ms.push_back((cpu_seconds() - cpu0) * 1000.0 / static_cast<double>(samples));
    wait_fraction.push_back(wait / seconds);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::cout << "{\"samples_per_s\": " << median(rates) << ", \"cpu_ms_per_sample\": " << median(cpu_ms)
            << ", \"wait_fraction\": " << median(wait_fraction) << ", \"workers\": " << workers << ", \"imgsz\": " << imgsz
            << ", \"batch\": " << batch << ", \"augment\": " << (augment ? "true" : "false") << ", \"cache\": \"" << loader.cache_mode() << "\", \"images\": " << loader.size()
            << ", \"skipped\": " << loader.stats().skipped << "}\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 1;
}
