#include "core/threads.h"

#include <sched.h>

#include <atomic>
#include <thread>

namespace detkit {

namespace {
std::atomic<int> g_threads{0};
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

int resolve_thread_count(int requested) { return requested > 0 ? requested : available_cores(); }

void set_thread_count(int threads) { g_threads = resolve_thread_count(threads); }

int thread_count() {
  const int t = g_threads.load();
  return t > 0 ? t : available_cores();
}

}  // namespace detkit
