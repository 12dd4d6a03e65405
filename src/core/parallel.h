// Running independent work items on every core, with progress and clean interruption.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace detkit {

// Calls `work(i)` for every i in [0, count) on thread_count() threads, shows a Progress named `label`
// counting `unit`s on stderr, and returns when all are done. Items are handed out in order but finish in
// any order: `work` must only write to its own item's slot. The first exception a call throws stops the
// handing out and is rethrown here after the threads have joined; Ctrl-C does the same with an
// InterruptedError saying `doing` was interrupted.
void parallel_for(std::size_t count, const std::string& label, const std::string& unit, const std::string& doing,
                  const std::function<void(std::size_t)>& work);

// The same without progress or Ctrl-C handling, for short bursts inside a larger job (a batch's samples):
// the caller and up to thread_count() - 1 threads claim items in order; the first exception stops the
// handing out and is rethrown after the threads have joined. One item, or one thread, runs inline.
void run_in_parallel(std::size_t count, const std::function<void(std::size_t)>& work);

}  // namespace detkit
