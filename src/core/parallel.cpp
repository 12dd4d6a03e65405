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

namespace {

// Items of [0, count) handed out in order to whichever thread asks; the first failure stops the handing
// out and is kept for the caller to rethrow.
struct Claims {
  Claims(std::size_t count_, const std::function<void(std::size_t)>& work_, bool honour_interrupt_)
      : count(count_), work(work_), honour_interrupt(honour_interrupt_) {}
  std::size_t count;
  const std::function<void(std::size_t)>& work;
  bool honour_interrupt;
  std::atomic<std::size_t> next{0}, done{0};
  std::atomic<bool> stop{false};
  std::exception_ptr failure;
  std::mutex failure_mutex;

  void run() {
    while (!stop && !(honour_interrupt && interrupt_requested())) {
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
  }
};

std::size_t threads_for(std::size_t count) {
  return std::max<std::size_t>(1, std::min<std::size_t>(static_cast<std::size_t>(thread_count()), count));
}

}  // namespace

void parallel_for(std::size_t count, const std::string& label, const std::string& unit, const std::string& doing,
                  const std::function<void(std::size_t)>& work) {
  Claims claims(count, work, true);
  Progress progress(label, count, unit);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < threads_for(count); ++t) threads.emplace_back([&claims] { claims.run(); });
  std::size_t reported = 0;
  while (reported < count && !claims.stop && !interrupt_requested()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::size_t now = claims.done.load();
    if (now > reported) progress.advance(now - reported);
    reported = now;
  }
  for (auto& t : threads) t.join();
  if (claims.failure) std::rethrow_exception(claims.failure);
  throw_if_interrupted(doing);
  progress.finish();
}

void run_in_parallel(std::size_t count, const std::function<void(std::size_t)>& work) {
  Claims claims(count, work, false);
  std::vector<std::thread> helpers;
  for (std::size_t t = 1; t < threads_for(count); ++t) helpers.emplace_back([&claims] { claims.run(); });
  claims.run();
  for (auto& t : helpers) t.join();
  if (claims.failure) std::rethrow_exception(claims.failure);
}

}  // namespace detkit
