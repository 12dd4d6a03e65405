// Decode throughput of detkit's image reader: every image in the given folders, on N threads, repeated.
//   detkit_bench_decode [--threads N] [--passes P] [--trials T] [--half] DIR...
// --half asks for a half-size target (DCT-domain scaling for JPEG). Prints one JSON object: images per
// second of wall-clock time and CPU milliseconds per image (user + system, all threads), each the median of
// the trials. On a shared machine the CPU time is the steadier figure: other jobs stretch the wall clock,
// not the CPU time a decode costs. A warm-up pass first reads every file once, so both this and
// pil_decode.py decode from the page cache.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "core/fs.h"
#include "data/image_io.h"

using namespace detkit;

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

int usage() {
  std::cerr << "usage: detkit_bench_decode [--threads N] [--passes P] [--trials T] [--half] DIR...\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, passes = 5, trials = 3;
  bool half = false;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--threads" || a == "--passes" || a == "--trials") && i + 1 < argc) {
      const int v = std::stoi(argv[++i]);
      (a == "--threads" ? threads : a == "--passes" ? passes : trials) = v;
    } else if (a == "--half") {
      half = true;
    } else if (!a.empty() && a[0] == '-') {
      return usage();
    } else {
      for (const auto& entry : fs::directory_iterator(a)) {
        const std::string ext = entry.path().extension().string();
        if (ext == ".jpg" || ext == ".jpeg" || ext == ".png") files.push_back(entry.path());
      }
    }
  }
  if (files.empty() || threads < 1 || passes < 1 || trials < 1) return usage();
  std::sort(files.begin(), files.end());

  // The target of --half is per image (half its displayed size), as PIL's draft() is given.
  std::vector<DecodeOptions> options(files.size());
  if (half)
    for (std::size_t i = 0; i < files.size(); ++i) {
      const ImageInfo info = probe_image(files[i]);
      options[i].target_width = info.width / 2;
      options[i].target_height = info.height / 2;
    }

  auto run_pass = [&](uint64_t& checksum) {
    std::atomic<std::size_t> next{0};
    std::vector<uint64_t> sums(threads, 0);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        for (std::size_t i; (i = next.fetch_add(1)) < files.size();) {
          const DecodedImage d = decode_image(files[i], options[i]);
          sums[t] += d.image.pixels[d.image.pixels.size() / 2] + d.image.width;  // keeps the work observable
        }
      });
    for (auto& th : pool) th.join();
    for (uint64_t s : sums) checksum += s;
  };

  uint64_t checksum = 0;
  run_pass(checksum);  // warm-up: page cache, allocator, thread start
  std::vector<double> rates, cpu_ms;
  for (int trial = 0; trial < trials; ++trial) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = cpu_seconds();
    for (int p = 0; p < passes; ++p) run_pass(checksum);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double images = static_cast<double>(files.size()) * passes;
    rates.push_back(images / seconds);
    cpu_ms.push_back((cpu_seconds() - cpu_start) * 1000 / images);
  }
  std::sort(rates.begin(), rates.end());
  std::sort(cpu_ms.begin(), cpu_ms.end());
  std::printf("{\"decoder\": \"detkit\", \"images\": %zu, \"threads\": %d, \"passes\": %d, \"half\": %s, "
              "\"images_per_s\": %.1f, \"cpu_ms_per_image\": %.3f, \"trials\": [",
              files.size(), threads, passes, half ? "true" : "false", rates[rates.size() / 2], cpu_ms[cpu_ms.size() / 2]);
  for (std::size_t i = 0; i < rates.size(); ++i) std::printf("%s%.1f", i ? ", " : "", rates[i]);
  std::printf("], \"checksum\": %llu}\n", static_cast<unsigned long long>(checksum));
  return 0;
}
