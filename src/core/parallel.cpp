#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/progress.h"
#include "core/threads.h"

namespace detkit {

void parallel_for(std::size_t count, const std::string& label, const std::string& unit, const std::string& doing,
                  const std::function<void(std::size_t)>& work) {
  std::atomic<std::size_t> next{0}, done{0};
  std::atomic<bool> stop{false};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto worker = [&] {
    while (!stop && !interrupt_requested()) {
      const std::size_t i = next++;
      if (i >= count) return;
      try {
        work(i);
        ++done;
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        stop = true;
      }
    }
  };
  Progress progress(label, count, unit);
  std::vector<std::thread> threads;
  const std::size_t workers = std::max<std::size_t>(1, std::min<std::size_t>(static_cast<std::size_t>(thread_count()), count));
  for (std::size_t t = 0; t < workers; ++t) threads.emplace_back(worker);
  std::size_t reported = 0;
  while (reported < count && !stop && !interrupt_requested()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::size_t now = done.load();
    if (now > reported) progress.advance(now - reported);
    reported = now;
  }
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
  throw_if_interrupted(doing);
  progress.finish();
}

}  // namespace detkit
