// How detkit sets up the C library's allocator for tensor work on the CPU.
//
// LibTorch takes every CPU tensor from malloc. By default glibc serves large blocks (above 128 KiB, a
// threshold it raises by itself only up to 32 MiB) with mmap and returns them with munmap when they are
// freed, and it gives the top of the heap back to the kernel once more than a threshold is free. A
// training step frees and allocates the same activation-sized blocks every step, so each step paid the
// kernel to map and zero those pages again: on a 2-core CPU, yolo-n at 320 px and batch 8 took about
// 21,000 more page faults per step and its forward-loss-backward ran 10-14 % slower than with freed
// blocks kept for reuse.
//
// keep_freed_memory_for_reuse() raises the mmap threshold to 1 GiB and turns trimming off, so freed
// blocks stay in the heap and the next step reuses them. The price: the process keeps its peak heap
// size until it exits instead of shrinking between steps, which is what a training or inference process
// needs anyway.
#pragma once

#include <string>

namespace detkit {

struct HostAllocatorSetup {
  bool applied = false;  // whether the allocator's settings were changed
  std::string reason;    // one line: what was set, or why nothing was
};

// Applies the settings above unless `detkit_env` (the value of DETKIT_HOST_ALLOCATOR) is "system", or
// `glibc_tunables` (the value of GLIBC_TUNABLES) already sets any glibc.malloc tunable: a user's own
// allocator tuning wins. Either may be null. Does nothing, and says so, where the C library is not glibc.
// Never throws.
HostAllocatorSetup keep_freed_memory_for_reuse(const char* detkit_env, const char* glibc_tunables);

// The same, reading both variables from the environment. Meant to be called once per process, before
// the first tensor work (the LibTorch plugin does so when it loads).
HostAllocatorSetup keep_freed_memory_for_reuse();

}  // namespace detkit
