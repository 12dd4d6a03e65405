// How many CPU threads detkit uses. LibTorch on Debian defaults to one intra-op thread; detkit uses every
// core it is allowed to run on unless told otherwise (--threads, DETKIT_THREADS, or `threads` in a config).
#pragma once

namespace detkit {

// Cores this process may run on (sched_getaffinity), at least 1.
int available_cores();
// `requested` when positive, else available_cores().
int resolve_thread_count(int requested);

// The thread count the process should use; set once by the CLI from --threads, read by the torch plugin
// when it loads and by thread pools.
void set_thread_count(int threads);
int thread_count();

}  // namespace detkit
