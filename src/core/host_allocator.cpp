#include "core/host_allocator.h"

#include <cstdlib>
#include <cstring>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace detkit {

HostAllocatorSetup keep_freed_memory_for_reuse(const char* detkit_env, const char* glibc_tunables) {
  HostAllocatorSetup setup;
  if (detkit_env && std::strcmp(detkit_env, "system") == 0) {
    setup.reason = "the C library's default allocator settings (DETKIT_HOST_ALLOCATOR=system)";
    return setup;
  }
  if (glibc_tunables && std::strstr(glibc_tunables, "glibc.malloc.")) {
    setup.reason = "the allocator settings in GLIBC_TUNABLES";
    return setup;
  }
#ifdef __GLIBC__
  constexpr int kMmapThreshold = 1 << 30;  // 1 GiB: larger blocks are rare enough to map each time
  // mallopt returns 0 when it refuses a value; the two settings are independent, so both are tried.
  const bool threshold = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1;
  const bool trim = mallopt(M_TRIM_THRESHOLD, -1) == 1;  // -1: never give the heap's top back
  setup.applied = threshold && trim;
  setup.reason = setup.applied ? "freed blocks up to 1 GiB are kept for reuse (DETKIT_HOST_ALLOCATOR=system "
                                 "turns this off)"
                               : "glibc refused the allocator settings; its defaults are in use";
#else
  setup.reason = "the C library is not glibc; its default allocator settings are in use";
#endif
  return setup;
}

HostAllocatorSetup keep_freed_memory_for_reuse() {
  return keep_freed_memory_for_reuse(std::getenv("DETKIT_HOST_ALLOCATOR"), std::getenv("GLIBC_TUNABLES"));
}

}  // namespace detkit
