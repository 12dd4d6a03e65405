// The data loader on synthetic datasets: deterministic whatever the worker count, collation with a variable
// number of boxes, per-epoch shuffling, corrupt files skipped and named, the RAM cache's plan and refusal.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "augment/loader.h"
#include "core/memory.h"
#include "core/text.h"
#include "core/threads.h"
#include "data/formats_read.h"
#include "data/synth.h"
#include "test_util.h"

using namespace detkit;
using namespace detkit::augment;
using detkit::testing::TempDir;

namespace {

DatasetSource synth_dataset(const TempDir& dir, int64_t train_images = 10) {
  SynthOptions o;
  o.seed = 3;
  o.train_images = train_images;
  o.val_images = 2;
  o.sizes = {"96x64", "64x96", "80x80"};
  o.max_objects = 5;
  generate_synthetic_dataset(o, dir / "coco");
  return read_dataset(dir / "coco");
}

const Split& train(const DatasetSource& source) {
  for (const auto& s : source.dataset.splits)
    if (s.name == "train") return s;
  throw std::runtime_error("no train split");
}

LoaderOptions small_options(int64_t workers) {
  LoaderOptions o;
  o.imgsz = 64;
  o.batch = 4;
  o.workers = workers;
  o.seed = 9;
  o.recipe.mixup = 0.3;
  return o;
}

std::vector<Batch> epoch(Loader& loader, int64_t e) {
  loader.start_epoch(e);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

}  // namespace

TEST(Loader, CollatesVariableBoxCountsIntoTargets) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  Loader loader(source.dataset, train(source), small_options(2));
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  const auto batches = epoch(loader, 0);
  ASSERT_EQ(batches.size(), 3u);
  std::vector<int64_t> seen;
  for (const auto& b : batches) {
    const int64_t n = b.images.size(0);
    EXPECT_EQ(b.images.sizes(), (at::IntArrayRef{n, 3, 64, 64}));
    EXPECT_EQ(b.images.scalar_type(), at::kByte);
    ASSERT_EQ(b.targets.dim(), 2);
    ASSERT_EQ(b.targets.size(1), 6);
    EXPECT_EQ(static_cast<int64_t>(b.indices.size()), n);
    if (b.targets.size(0) > 0) {
      EXPECT_GE(b.targets.select(1, 0).min().item<float>(), 0);
      EXPECT_LT(b.targets.select(1, 0).max().item<float>(), n);
      EXPECT_GE(b.targets.select(1, 1).min().item<float>(), 0);
      EXPECT_LT(b.targets.select(1, 1).max().item<float>(), 5);
      const auto boxes = b.targets.slice(1, 2, 6);
      EXPECT_GE(boxes.min().item<float>(), 0);
      EXPECT_LE(boxes.max().item<float>(), 64);
      EXPECT_TRUE((boxes.select(1, 2) > boxes.select(1, 0)).all().item<bool>());
    }
    EXPECT_GE(b.wait_seconds, 0);
    seen.insert(seen.end(), b.indices.begin(), b.indices.end());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));  // each image once per epoch
  const LoaderStats stats = loader.stats();
  EXPECT_EQ(stats.samples, 10);
  EXPECT_EQ(stats.skipped, 0);
}

TEST(Loader, SameSeedSameBatchesWhateverTheWorkerCount) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  Loader one(source.dataset, train(source), small_options(1));
  Loader three(source.dataset, train(source), small_options(3));
  for (int64_t e = 0; e < 2; ++e) {
    const auto a = epoch(one, e), b = epoch(three, e);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].indices, b[i].indices);
      EXPECT_TRUE(at::equal(a[i].images, b[i].images)) << "epoch " << e << " batch " << i;
      EXPECT_TRUE(at::equal(a[i].targets, b[i].targets)) << "epoch " << e << " batch " << i;
    }
  }
  // A new epoch is a new order (and new augmentation), and still every image once.
  const auto e0 = epoch(one, 0), e1 = epoch(one, 1);
  std::vector<int64_t> o0, o1;
  for (const auto& b : e0) o0.insert(o0.end(), b.indices.begin(), b.indices.end());
  for (const auto& b : e1) o1.insert(o1.end(), b.indices.begin(), b.indices.end());
  EXPECT_NE(o0, o1);
  std::sort(o1.begin(), o1.end());
  std::sort(o0.begin(), o0.end());
  EXPECT_EQ(o0, o1);
  // A different seed augments differently.
  LoaderOptions other = small_options(1);
  other.seed = 10;
  Loader seeded(source.dataset, train(source), other);
  EXPECT_FALSE(at::equal(epoch(seeded, 0)[0].images, e0[0].images));
}

TEST(Loader, LoadScalesBoxesWithTheImage) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  const Split& split = train(source);
  Loader loader(source.dataset, split, small_options(1));
  for (int64_t i = 0; i < loader.size(); ++i) {
    const Sample s = loader.load(i);
    const auto& record = split.images[static_cast<std::size_t>(i)];
    EXPECT_EQ(std::max(s.width(), s.height()), 64);
    // Each axis scales by the ratio of the sizes in whole pixels (64x96 becomes 43x64: 43/64 across).
    const double sx = static_cast<double>(s.width()) / static_cast<double>(record.width);
    const double sy = static_cast<double>(s.height()) / static_cast<double>(record.height);
    ASSERT_EQ(s.box_count(), static_cast<int64_t>(record.annotations.size()));
    for (int64_t k = 0; k < s.box_count(); ++k) {
      const Box& b = record.annotations[static_cast<std::size_t>(k)].box;
      EXPECT_NEAR(s.boxes[k][0].item<double>(), b.a * sx, 1e-3);
      EXPECT_NEAR(s.boxes[k][1].item<double>(), b.b * sy, 1e-3);
      EXPECT_NEAR(s.boxes[k][2].item<double>(), b.c * sx, 1e-3);
      EXPECT_NEAR(s.boxes[k][3].item<double>(), b.d * sy, 1e-3);
      EXPECT_EQ(s.labels[k].item<int64_t>(),
                source.dataset.category_index(record.annotations[static_cast<std::size_t>(k)].category_id));
    }
  }
}

TEST(Loader, CorruptImageIsNamedSkippedAndCounted) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  const Split& split = train(source);
  const fs::path bad = fs::path(split.image_dir) / split.images[3].file_name;
  {
    std::ofstream out(bad, std::ios::binary | std::ios::trunc);
    out << "\xff\xd8\xff\xe0 this is not a JPEG any more";
  }
  LoaderOptions o = small_options(2);
  o.recipe.mosaic = 0;  // so the bad file is only met as a sample of its own
  o.recipe.mixup = 0;
  Loader loader(source.dataset, split, o);
  for (int64_t e = 0; e < 2; ++e) {
    const auto batches = epoch(loader, e);
    int64_t samples = 0, skipped = 0;
    for (const auto& b : batches) {
      samples += static_cast<int64_t>(b.indices.size());
      skipped += b.skipped;
      EXPECT_EQ(std::count(b.indices.begin(), b.indices.end(), 3), 0);
    }
    EXPECT_EQ(samples, 9);
    EXPECT_EQ(skipped, 1);
  }
  const LoaderStats stats = loader.stats();
  EXPECT_EQ(stats.skipped, 2);  // met once per epoch
  ASSERT_EQ(stats.bad_files.size(), 1u);
  EXPECT_EQ(stats.bad_files[0], bad.string());
  EXPECT_THROW(loader.load(3), DataError);
}

// On-demand loading (no workers; each batch built when asked, its samples spread over the intra-op
// threads) delivers exactly the worker threads' batches, with the same bad-file counts and order.
TEST(Loader, OnDemandGivesTheSameBatchesAsWorkers) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir, 12);
  const Split& split = train(source);
  std::ofstream(fs::path(split.image_dir) / split.images[5].file_name, std::ios::binary | std::ios::trunc) << "not an image";
  LoaderOptions on_demand = small_options(2);
  on_demand.on_demand = true;
  // Two threads, so the samples of a batch really are made concurrently.
  const int threads = thread_count();
  set_thread_count(2);
  struct Restore {
    int threads;
    ~Restore() { set_thread_count(threads); }
  } restore{threads};
  Loader workers(source.dataset, split, small_options(2)), caller(source.dataset, split, on_demand);
  for (int64_t e = 0; e < 4; ++e) {
    const auto a = epoch(workers, e), b = epoch(caller, e);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].indices, b[i].indices);
      EXPECT_EQ(a[i].skipped, b[i].skipped);
      EXPECT_TRUE(at::equal(a[i].images, b[i].images)) << "epoch " << e << " batch " << i;
      EXPECT_TRUE(at::equal(a[i].targets, b[i].targets)) << "epoch " << e << " batch " << i;
    }
  }
  const LoaderStats w = workers.stats(), c = caller.stats();
  EXPECT_EQ(c.batches, w.batches);
  EXPECT_EQ(c.samples, w.samples);
  EXPECT_GT(w.skipped, 0);
  EXPECT_EQ(c.skipped, w.skipped);
  EXPECT_EQ(c.bad_files, w.bad_files);
  EXPECT_GT(c.wait_seconds, 0);  // the building is the caller's wait
  // Validation batches too, with their geometry.
  LoaderOptions val = small_options(2);
  val.augment = false;
  val.shuffle = false;
  LoaderOptions val_on_demand = val;
  val_on_demand.on_demand = true;
  Loader vw(source.dataset, split, val), vc(source.dataset, split, val_on_demand);
  const auto a = epoch(vw, 0), b = epoch(vc, 0);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(at::equal(a[i].images, b[i].images));
    ASSERT_EQ(a[i].geometry.size(), b[i].geometry.size());
    for (std::size_t k = 0; k < a[i].geometry.size(); ++k) {
      EXPECT_EQ(a[i].geometry[k].scale_x, b[i].geometry[k].scale_x);
      EXPECT_EQ(a[i].geometry[k].pad_y, b[i].geometry[k].pad_y);
    }
  }
}

TEST(Loader, EveryImageCorruptEndsTheEpochWithoutHanging) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir, 5);
  const Split& split = train(source);
  for (const auto& r : split.images) std::ofstream(fs::path(split.image_dir) / r.file_name, std::ios::trunc) << "x";
  Loader loader(source.dataset, split, small_options(2));
  EXPECT_TRUE(epoch(loader, 0).empty());
  EXPECT_EQ(loader.stats().bad_files.size(), 5u);
}

TEST(Loader, RamCacheIsPlannedAndRefusedWhenItWouldNotFit) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  const Split& split = train(source);
  const CachePlan plan = plan_ram_cache(split, 64);
  uint64_t expected = 0;
  for (const auto& r : split.images) {
    const double s = 64.0 / static_cast<double>(std::max(r.width, r.height));
    expected += static_cast<uint64_t>(std::llround(r.width * s)) * static_cast<uint64_t>(std::llround(r.height * s)) * 3;
  }
  EXPECT_EQ(plan.bytes, expected);
  EXPECT_EQ(plan.images, 10);

  LoaderOptions o = small_options(2);
  o.cache = "ram";
  o.available_ram = plan.bytes;  // the cache may take at most 90 % of what is available
  EXPECT_THROW_WITH(Loader(source.dataset, split, o), ConfigError, "cache: ram needs", "cache: none");
  o.available_ram = plan.bytes * 2;
  Loader cached(source.dataset, split, o);
  Loader cold(source.dataset, split, o);
  Loader plain(source.dataset, split, small_options(2));
  // The cache holds images at training size, so a warm cache gives exactly the batches of a cold one.
  epoch(cached, 0);
  const auto warm = epoch(cached, 1), fresh = epoch(cold, 1);
  ASSERT_EQ(warm.size(), fresh.size());
  for (std::size_t i = 0; i < warm.size(); ++i) {
    EXPECT_TRUE(at::equal(warm[i].images, fresh[i].images));
    EXPECT_TRUE(at::equal(warm[i].targets, fresh[i].targets));
  }
  // Without the cache the recipe resamples each decoded image once, straight into the output, where the
  // cached images were resized to training size first: the same samples within interpolation.
  for (int64_t e = 0; e < 2; ++e) {
    const auto a = epoch(cached, e), b = epoch(plain, e);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].indices, b[i].indices);
      const double mean_diff = (a[i].images.to(at::kFloat) - b[i].images.to(at::kFloat)).abs().mean().item<double>();
      EXPECT_LT(mean_diff, 6.0) << "epoch " << e << " batch " << i;
    }
  }
  EXPECT_GT(available_ram_bytes(), 0u);
}

TEST(Loader, DecodedCacheGivesTheBatchesOfNoCacheAndAutoPicksItWhenItFits) {
  TempDir dir;
  SynthOptions so;
  so.seed = 4;
  so.train_images = 9;
  so.val_images = 1;
  so.sizes = {"512x384", "80x96"};  // JPEGs of the first size are decoded at 1/8 in the DCT for 64 px
  so.max_objects = 4;
  so.png_fraction = 0.3;            // PNGs: decoded at full size
  generate_synthetic_dataset(so, dir / "coco");
  const DatasetSource source = read_dataset(dir / "coco");
  const Split& split = train(source);
  uint64_t expected = 0;
  std::set<std::string> kinds;
  for (const auto& r : split.images) {
    const bool jpeg = fs::path(r.file_name).extension() == ".jpg";
    kinds.insert(cat(jpeg ? "jpeg " : "png ", r.width));
    expected += jpeg && r.width == 512 ? 64 * 48 * 3 : static_cast<uint64_t>(r.width * r.height * 3);
  }
  ASSERT_TRUE(kinds.count("jpeg 512") && kinds.count("png 512")) << "the test needs both kinds of large image";
  const CachePlan plan = plan_decoded_cache(split, 64);
  EXPECT_EQ(plan.bytes, expected);
  EXPECT_EQ(plan.images, 9);

  LoaderOptions o = small_options(2);
  o.recipe.mosaic = 1;  // every sample reads four images: each is read several times per epoch
  o.cache = "decoded";
  o.available_ram = plan.bytes;
  EXPECT_THROW_WITH(Loader(source.dataset, split, o), ConfigError, "cache: decoded needs", "cache: none");
  o.available_ram = plan.bytes * 2;
  Loader cached(source.dataset, split, o);
  EXPECT_EQ(cached.cache_mode(), "decoded");
  Loader plain(source.dataset, split, small_options(2));
  EXPECT_EQ(plain.cache_mode(), "none");
  LoaderOptions po = small_options(2);
  po.recipe.mosaic = 1;
  Loader uncached(source.dataset, split, po);
  // Bit for bit the batches of no cache, also from a warm cache (epochs 1 and 2 read only cached images),
  // so the recipe never wrote into a cached image.
  for (int64_t e = 0; e < 3; ++e) {
    const auto a = epoch(cached, e), b = epoch(uncached, e);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(at::equal(a[i].images, b[i].images)) << "epoch " << e << " batch " << i;
      EXPECT_TRUE(at::equal(a[i].targets, b[i].targets)) << "epoch " << e << " batch " << i;
    }
  }
  // auto: decoded when the plan is at most a quarter of the available RAM (shared by the ranks), else none.
  o.cache = "auto";
  o.available_ram = plan.bytes * 4;
  EXPECT_EQ(Loader(source.dataset, split, o).cache_mode(), "decoded");
  o.available_ram = plan.bytes * 4 - 1;
  EXPECT_EQ(Loader(source.dataset, split, o).cache_mode(), "none");
  o.available_ram = plan.bytes * 4;
  o.world_size = 2;
  EXPECT_EQ(Loader(source.dataset, split, o).cache_mode(), "none");
  o.world_size = 1;
  o.cache = "disk";
  EXPECT_THROW_WITH(Loader(source.dataset, split, o), UsageError, "unknown loader cache 'disk'", "none, ram, decoded or auto");
}

TEST(Loader, MosaicIsSwitchedOffForTheLastEpochs) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  LoaderOptions o = small_options(1);
  o.recipe.mosaic = 1;
  o.recipe.mixup = 0;
  o.recipe.close_mosaic = 2;
  o.epochs = 5;
  o.recipe.scale = o.recipe.translate = 0;
  o.recipe.fliplr = 0;
  o.recipe.hsv_h = o.recipe.hsv_s = o.recipe.hsv_v = 0;
  Loader loader(source.dataset, train(source), o);
  // Without mosaic and with every other knob at zero, a sample is its letterboxed image.
  const auto plain = letterbox(loader.load(4), 64).sample;
  EXPECT_TRUE(at::equal(loader.sample(3, 4).image, plain.image));
  EXPECT_TRUE(at::equal(loader.sample(4, 4).image, plain.image));
  EXPECT_FALSE(at::equal(loader.sample(2, 4).image, plain.image));
}

TEST(Loader, RejectsBadOptions) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir, 2);
  LoaderOptions o = small_options(1);
  o.device = "tpu:0";
  EXPECT_THROW_WITH(Loader(source.dataset, train(source), o), UsageError, "invalid loader device", "cuda:N");
  o = small_options(1);
  o.batch = 0;
  EXPECT_THROW(Loader(source.dataset, train(source), o), UsageError);
}

TEST(Loader, ValidationGeometryMapsBatchBoxesBackToTheAnnotations) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  LoaderOptions o = small_options(2);
  o.augment = false;
  o.shuffle = false;
  o.recipe.mixup = 0;
  o.imgsz = 96;
  const Split& split = train(source);
  Loader loader(source.dataset, split, o);
  int64_t checked = 0;
  for (const auto& b : epoch(loader, 0)) {
    ASSERT_EQ(b.geometry.size(), b.indices.size());
    for (int64_t row = 0; row < b.targets.size(0); ++row) {
      const auto t = b.targets[row];
      const auto position = static_cast<std::size_t>(t[0].item<float>());
      const auto& g = b.geometry[position];
      const ImageRecord& record = split.images[static_cast<std::size_t>(b.indices[position])];
      EXPECT_EQ(g.width, record.width);
      EXPECT_EQ(g.height, record.height);
      // The box as the network sees it, mapped back with x = (x' - pad) / scale, equals an annotation.
      const double x1 = (t[2].item<float>() - g.pad_x) / g.scale_x, y1 = (t[3].item<float>() - g.pad_y) / g.scale_y;
      const double x2 = (t[4].item<float>() - g.pad_x) / g.scale_x, y2 = (t[5].item<float>() - g.pad_y) / g.scale_y;
      bool found = false;
      for (const auto& a : record.annotations) {
        const Box box = a.box.convert(BoxFormat::xyxy);
        found = found || (std::abs(box.a - x1) < 0.01 && std::abs(box.b - y1) < 0.01 && std::abs(box.c - x2) < 0.01 &&
                          std::abs(box.d - y2) < 0.01);
      }
      EXPECT_TRUE(found) << record.file_name << ": [" << x1 << ", " << y1 << ", " << x2 << ", " << y2 << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

// Distributed sharding: W ranks with batch b see exactly the batches one process with batch W * b sees,
// split in rank order, every sample once per epoch, the same number of batches on every rank.
TEST(Loader, ShardsEachGlobalBatchAcrossRanksWithoutOverlap) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir, 11);  // 11 samples: the last global batch of 8 is partial
  LoaderOptions whole = small_options(1);
  whole.batch = 8;
  Loader single(source.dataset, train(source), whole);
  for (int64_t e = 0; e < 2; ++e) {
    const auto reference = epoch(single, e);
    ASSERT_EQ(reference.size(), 2u);
    std::vector<std::vector<Batch>> ranks;
    for (int64_t r = 0; r < 2; ++r) {
      LoaderOptions o = small_options(r == 0 ? 2 : 1);  // worker count must not matter
      o.rank = r;
      o.world_size = 2;
      Loader loader(source.dataset, train(source), o);
      EXPECT_EQ(loader.batches_per_epoch(), 2);
      ranks.push_back(epoch(loader, e));
      ASSERT_EQ(ranks.back().size(), 2u) << "rank " << r;
    }
    std::multiset<int64_t> seen;
    for (std::size_t k = 0; k < reference.size(); ++k) {
      std::vector<int64_t> joined = ranks[0][k].indices;
      joined.insert(joined.end(), ranks[1][k].indices.begin(), ranks[1][k].indices.end());
      EXPECT_EQ(joined, reference[k].indices) << "epoch " << e << " batch " << k;
      seen.insert(joined.begin(), joined.end());
      // The same augmentation as the single process: rank 0's images are the first rows of the global batch.
      const int64_t n0 = static_cast<int64_t>(ranks[0][k].indices.size());
      if (n0 > 0) {
        EXPECT_TRUE(at::equal(ranks[0][k].images, reference[k].images.narrow(0, 0, n0)));
      }
    }
    EXPECT_EQ(seen.size(), 11u);
    EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 11u);  // none twice
    // 11 = 8 + 3: the last global batch is cut at 3 * 1 / 2, so each rank has at least one sample.
    EXPECT_EQ(ranks[0][1].indices.size(), 1u);
    EXPECT_EQ(ranks[1][1].indices.size(), 2u);
  }
}

// A last global batch with fewer samples than ranks would leave a rank without an image: it is left out
// (on every rank alike), and the order is reshuffled each epoch, so the left-out sample changes.
TEST(Loader, LastGlobalBatchSmallerThanTheRankCountIsLeftOut) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir, 9);  // 9 = 8 + 1 with 2 ranks of batch 4
  std::set<int64_t> left_out;
  for (int64_t e = 0; e < 4; ++e) {
    std::set<int64_t> seen;
    for (int64_t r = 0; r < 2; ++r) {
      LoaderOptions o = small_options(1);
      o.rank = r;
      o.world_size = 2;
      Loader loader(source.dataset, train(source), o);
      EXPECT_EQ(loader.batches_per_epoch(), 1);
      const auto batches = epoch(loader, e);
      ASSERT_EQ(batches.size(), 1u);
      EXPECT_EQ(batches[0].indices.size(), 4u);
      seen.insert(batches[0].indices.begin(), batches[0].indices.end());
    }
    ASSERT_EQ(seen.size(), 8u);
    for (int64_t i = 0; i < 9; ++i)
      if (!seen.count(i)) left_out.insert(i);
  }
  EXPECT_GT(left_out.size(), 1u);
}

TEST(Loader, RankOutsideTheWorldIsRefused) {
  TempDir dir;
  const DatasetSource source = synth_dataset(dir);
  LoaderOptions o = small_options(1);
  o.rank = 2;
  o.world_size = 2;
  EXPECT_THROW(Loader(source.dataset, train(source), o), UsageError);
}
